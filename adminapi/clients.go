package adminapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/store"
)

// Client is what the admin API shows of a client: never its secret hash
// nor its registration access token hash.
type Client struct {
	ID           string    `json:"client_id"`
	Name         string    `json:"client_name,omitempty"`
	Type         string    `json:"type"`
	GrantTypes   []string  `json:"grant_types"`
	RedirectURIs []string  `json:"redirect_uris,omitempty"`
	Scopes       []string  `json:"scopes,omitempty"`
	JWKSURI      string    `json:"jwks_uri,omitempty"`
	IssuedAt     time.Time `json:"issued_at,omitzero"`
	// Source is SourceConfiguration or SourceRegistration.
	Source string `json:"source"`
}

// Where a client comes from, in Client.Source.
const (
	SourceConfiguration = "configuration"
	SourceRegistration  = "registration"
)

// ClientOf is the listing of a registered (stored) client, or of a
// configured one with source SourceConfiguration.
func ClientOf(c *store.Client, source string) Client {
	out := Client{ID: c.ID, Name: c.Name, Type: c.Type, GrantTypes: c.GrantTypes,
		RedirectURIs: c.RedirectURIs, Scopes: c.Scopes, JWKSURI: c.JWKSURI, Source: source}
	if !c.IssuedAt.IsZero() {
		out.IssuedAt = c.IssuedAt.UTC()
	}
	return out
}

// Clients is the answer of GET /smart-auth/clients.
type Clients struct {
	Issuer     string   `json:"issuer"`
	Configured []Client `json:"configured"`
	Registered []Client `json:"registered"`
}

// listClients answers GET /smart-auth/clients: the configured clients and
// the dynamically registered ones, each by id.
func listClients(w http.ResponseWriter, r *http.Request, t *Target) error {
	out := Clients{Issuer: t.Issuer, Configured: []Client{}, Registered: []Client{}}
	for _, c := range t.Configured {
		out.Configured = append(out.Configured, ClientOf(c, SourceConfiguration))
	}
	slices.SortFunc(out.Configured, func(a, b Client) int { return strings.Compare(a.ID, b.ID) })
	list, err := t.Store.ListClients(r.Context())
	if err != nil {
		return storeError(t, "listing the registered clients", err)
	}
	for _, c := range list {
		out.Registered = append(out.Registered, ClientOf(c, SourceRegistration))
	}
	return writeJSON(w, http.StatusOK, out)
}

// registerClient answers POST /smart-auth/clients: RFC 7591 metadata in,
// the registration response (with the client's secret and registration
// access token, shown this once) out, 201.
func registerClient(w http.ResponseWriter, r *http.Request, t *Target) error {
	info, err := t.Register(w, r)
	if err != nil {
		return err
	}
	var id struct {
		ClientID string `json:"client_id"`
	}
	if b, err := json.Marshal(info); err == nil {
		_ = json.Unmarshal(b, &id)
	}
	audit(t, r, "client registered", zap.String("client_id", id.ClientID))
	return writeJSON(w, http.StatusCreated, info)
}

// revocationBody is the optional body of the revoke routes: how long the
// revocation is kept, as a Caddy duration ("90d", "2160h").
type revocationBody struct {
	For string `json:"for"`
}

// maxBody bounds the JSON bodies the revoke routes read.
const maxBody = 4 << 10

// revocationUntil reads the optional body of a revoke route and returns
// until when the revocation is kept: the target's RevocationPeriod by
// default, or the body's `for`, which may not be shorter.
func revocationUntil(w http.ResponseWriter, r *http.Request, t *Target) (time.Time, error) {
	period := t.RevocationPeriod
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return time.Time{}, apiError(http.StatusBadRequest, "the request body could not be read (at most 4 KiB)")
	}
	if len(strings.TrimSpace(string(raw))) > 0 {
		var body revocationBody
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			return time.Time{}, apiError(http.StatusBadRequest, `the body must be a JSON object such as {"for": "90d"}`)
		}
		if body.For != "" {
			d, err := caddy.ParseDuration(body.For)
			if err != nil || d <= 0 {
				return time.Time{}, apiError(http.StatusBadRequest, fmt.Sprintf("for: %q is not a positive duration such as 90d", body.For))
			}
			if d < t.RevocationPeriod {
				return time.Time{}, apiError(http.StatusBadRequest, fmt.Sprintf("for: at least %s, the longest token lifetime plus a margin, so that no revoked token outlives its revocation", t.RevocationPeriod))
			}
			period = d
		}
	}
	return time.Now().Add(period), nil
}

// removeClient answers DELETE /smart-auth/clients/{client_id}: the
// registered client is deleted and every token issued to it revoked
// (store.RevokedClient), in one transaction. A configured client cannot
// be removed here (409): it is in the configuration.
func removeClient(w http.ResponseWriter, r *http.Request, t *Target) error {
	id := r.PathValue("client_id")
	if t.Configured[id] != nil {
		return apiError(http.StatusConflict, fmt.Sprintf("client %q is in the configuration: remove it there (POST %sclients/%s/revoke revokes its tokens now)", id, BasePath, id))
	}
	until, err := revocationUntil(w, r, t)
	if err != nil {
		return err
	}
	err = t.Store.RemoveClient(r.Context(), id, nil, until)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return apiError(http.StatusNotFound, fmt.Sprintf("no registered client %q", id))
	case err != nil:
		return storeError(t, "removing a client", err)
	}
	audit(t, r, "client removed; its tokens are revoked", zap.String("client_id", id), zap.Time("revoked_until", until))
	return writeJSON(w, http.StatusOK, map[string]any{"client_id": id, "removed": true, "tokens_revoked": true})
}

// revokeClient answers POST /smart-auth/clients/{client_id}/revoke:
// every access and refresh token issued to the client until now is
// revoked (store.RevokedClient); the client stays.
func revokeClient(w http.ResponseWriter, r *http.Request, t *Target) error {
	id := r.PathValue("client_id")
	if t.Configured[id] == nil {
		_, err := t.Store.GetClient(r.Context(), id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return apiError(http.StatusNotFound, fmt.Sprintf("no client %q (configured or registered)", id))
		case err != nil:
			return storeError(t, "reading a client", err)
		}
	}
	until, err := revocationUntil(w, r, t)
	if err != nil {
		return err
	}
	if err := t.Store.Revoke(r.Context(), store.RevokedClient, id, until); err != nil {
		return storeError(t, "revoking a client's tokens", err)
	}
	audit(t, r, "every token of a client revoked", zap.String("client_id", id), zap.Time("revoked_until", until))
	return writeJSON(w, http.StatusOK, map[string]any{"client_id": id, "tokens_revoked": true, "until": until.UTC().Truncate(time.Second)})
}
