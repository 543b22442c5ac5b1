package register

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/handlers/internal/throttle"
	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/internal/audit"
	"github.com/smartcaddy/smartauth/store"
)

// clientInformation is the registration response (RFC 7591 §3.2.1) and
// the client configuration endpoint's response (RFC 7592 §3).
type clientInformation struct {
	ClientID         string `json:"client_id"`
	ClientSecret     string `json:"client_secret,omitempty"`
	ClientIDIssuedAt int64  `json:"client_id_issued_at"`
	// ClientSecretExpiresAt is 0 (never) for a client with a secret.
	ClientSecretExpiresAt   *int64          `json:"client_secret_expires_at,omitempty"`
	RegistrationAccessToken string          `json:"registration_access_token"`
	RegistrationClientURI   string          `json:"registration_client_uri"`
	ClientName              string          `json:"client_name,omitempty"`
	RedirectURIs            []string        `json:"redirect_uris,omitempty"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method"`
	GrantTypes              []string        `json:"grant_types"`
	ResponseTypes           []string        `json:"response_types,omitempty"`
	JWKS                    json.RawMessage `json:"jwks,omitempty"`
	JWKSURI                 string          `json:"jwks_uri,omitempty"`
	Scope                   string          `json:"scope,omitempty"`
	LaunchURI               string          `json:"launch_uri,omitempty"`
	// IDTokenSignedResponseAlg is echoed when the client registered one.
	IDTokenSignedResponseAlg string `json:"id_token_signed_response_alg,omitempty"`
}

// authMethodOf names a client's token endpoint authentication method: the
// one it registered. A symmetric client may use client_secret_basic or
// client_secret_post at the token endpoint whichever it registered.
func authMethodOf(c *store.Client) string {
	if c.TokenEndpointAuthMethod != "" {
		return c.TokenEndpointAuthMethod
	}
	switch c.Type {
	case store.ClientPublic:
		return authMethodNone
	case store.ClientConfidentialAsymmetric:
		return authMethodPrivateKeyJWT
	}
	return authMethodSecretBasic
}

// writeClientInformation answers with a client's registered metadata, the
// secret when one was just issued, and the current registration access
// token. The response is never cached.
func (s *Registrar) writeClientInformation(w http.ResponseWriter, status int, c *store.Client, secret, regToken string) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	oauth.WriteJSON(w, status, s.clientInformation(c, secret, regToken))
}

// clientInformation is a client's registered metadata, with the secret
// when one was just issued and the current registration access token.
func (s *Registrar) clientInformation(c *store.Client, secret, regToken string) *clientInformation {
	info := &clientInformation{
		ClientID:                c.ID,
		ClientSecret:            secret,
		ClientIDIssuedAt:        c.IssuedAt.Unix(),
		RegistrationAccessToken: regToken,
		RegistrationClientURI:   s.opts.Endpoint + "/" + c.ID,
		ClientName:              c.Name,
		RedirectURIs:            c.RedirectURIs,
		TokenEndpointAuthMethod: authMethodOf(c),
		GrantTypes:              c.GrantTypes,
		JWKS:                    c.JWKS,
		JWKSURI:                 c.JWKSURI,
		Scope:                   strings.Join(c.Scopes, " "),
		LaunchURI:               c.LaunchURI,

		IDTokenSignedResponseAlg: c.IDTokenSignedResponseAlg,
	}
	if c.Type == store.ClientConfidentialSymmetric {
		var never int64
		info.ClientSecretExpiresAt = &never
	}
	if oauth.GrantAuthorizationCode.In(c.GrantTypes) {
		info.ResponseTypes = []string{responseTypeCode}
	}
	return info
}

// errRegistrationToken means that a registration access token does not
// open the client named in the URL: wrong token, unknown client, or a
// client from the configuration.
var errRegistrationToken = errors.New("registration access token refused")

// registrationTokenOpens tells whether token is the registration access
// token of c, in constant time. Configured clients have none.
func registrationTokenOpens(c *store.Client, token string) bool {
	if !c.Dynamic || c.RegistrationTokenHash == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(store.HashID(token)), []byte(c.RegistrationTokenHash)) == 1
}

// ServeClientConfiguration is the client configuration endpoint (RFC
// 7592) at {issuer}/register/{client_id}, authenticated with the
// registration access token as a Bearer token: GET reads the client, PUT
// replaces its metadata, DELETE removes it and revokes every token issued
// to it. GET and PUT answer with a new registration access token, which
// replaces the one presented (only its hash is stored, so it cannot be
// shown again). Clients from the configuration are never found here.
func (s *Registrar) ServeClientConfiguration(w http.ResponseWriter, r *http.Request) {
	if !s.opts.Enabled {
		oauth.Write(w, registrationDisabled())
		return
	}
	if oauth.AllowAnyOrigin(w, r, "GET, PUT, DELETE, OPTIONS") {
		return
	}
	id := strings.TrimPrefix(r.URL.Path, s.opts.Path+"/")
	token, ok := oauth.BearerToken(r)
	switch {
	case r.Method != http.MethodGet && r.Method != http.MethodPut && r.Method != http.MethodDelete:
		w.Header().Set("Allow", "GET, PUT, DELETE, OPTIONS")
		oauth.Write(w, &oauth.Error{Status: http.StatusMethodNotAllowed, Code: oauth.CodeInvalidRequest,
			Description: "the client configuration endpoint accepts GET, PUT and DELETE"})
		return
	case !ok:
		oauth.Write(w, s.registrationTokenRefused(false, "the registration access token is required (Authorization: Bearer)"))
		return
	}
	// RFC 7592 §2: an unknown client and a wrong token get the same 401,
	// so that the endpoint tells nothing about which client ids exist.
	current, err := s.registeredClient(r, id, token)
	switch {
	case errors.Is(err, errRegistrationToken):
		oauth.Write(w, s.registrationTokenRefused(true, "the registration access token is not valid for this client"))
		return
	case err != nil:
		oauth.Write(w, s.registrationServerFault("reading a registered client", err))
		return
	}
	switch r.Method {
	case http.MethodGet:
		_ = s.rotateAndAnswer(w, r, id, token, http.StatusOK, func(c *store.Client) (*store.Client, string, error) {
			return c, "", nil
		})
	case http.MethodPut:
		s.updateRegisteredClient(w, r, current, token)
	case http.MethodDelete:
		s.deleteRegisteredClient(w, r, id, token)
	}
}

// registeredClient returns the dynamically registered client id if token
// opens it, else errRegistrationToken.
func (s *Registrar) registeredClient(r *http.Request, id, token string) (*store.Client, error) {
	if id == "" || strings.Contains(id, "/") || s.opts.Configured[id] != nil {
		return nil, errRegistrationToken
	}
	c, err := s.opts.Store.GetClient(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, errRegistrationToken
	case err != nil:
		return nil, err
	case !registrationTokenOpens(c, token):
		return nil, errRegistrationToken
	}
	return c, nil
}

// rotateAndAnswer applies change to the client inside one store
// transaction that also checks the presented registration access token
// and replaces it with a new one, then answers with the client's
// information. change returns the new record and a client secret it
// issued, if any. It reports whether the change was made.
func (s *Registrar) rotateAndAnswer(w http.ResponseWriter, r *http.Request, id, token string, status int,
	change func(c *store.Client) (*store.Client, string, error)) bool {
	next := store.NewSecret()
	var updated *store.Client
	var secret string
	err := s.opts.Store.UpdateClient(r.Context(), id, func(c *store.Client) (*store.Client, error) {
		if !registrationTokenOpens(c, token) {
			return nil, errRegistrationToken
		}
		n, sec, err := change(c)
		if err != nil {
			return nil, err
		}
		cp := *n
		cp.RegistrationTokenHash = store.HashID(next)
		updated, secret = &cp, sec
		return &cp, nil
	})
	var fault *oauth.Error
	switch {
	case errors.As(err, &fault):
		s.refuseRegistration(w, fault)
		return false
	case errors.Is(err, errRegistrationToken), errors.Is(err, store.ErrNotFound):
		oauth.Write(w, s.registrationTokenRefused(true, "the registration access token is not valid for this client"))
		return false
	case err != nil:
		oauth.Write(w, s.registrationServerFault("updating a registered client", err))
		return false
	}
	s.writeClientInformation(w, status, updated, secret, next)
	return true
}

// updateRegisteredClient replaces a client's metadata (RFC 7592 §2.2).
// The body carries the complete metadata: omitted fields take their
// defaults. client_id must be the client's; client_secret, when sent, must
// be its current secret. A symmetric client keeps its secret; a client
// that becomes symmetric gets a new one, returned once.
func (s *Registrar) updateRegisteredClient(w http.ResponseWriter, r *http.Request, current *store.Client, token string) {
	md, fault := readClientMetadata(w, r)
	switch {
	case fault != nil:
		s.refuseRegistration(w, fault)
		return
	case md.ClientID != current.ID:
		s.refuseRegistration(w, oauth.New(oauth.CodeInvalidClientMetadata, "client_id: the body must name the client being updated"))
		return
	case md.SoftwareStatement != "":
		s.refuseRegistration(w, oauth.New(oauth.CodeInvalidSoftwareStatement, "software statements are not supported; send the metadata as plain JSON fields"))
		return
	}
	reg, fault := s.checkClientMetadata(md, s.opts.Open)
	if fault != nil {
		s.refuseRegistration(w, fault)
		return
	}
	ok := s.rotateAndAnswer(w, r, current.ID, token, http.StatusOK, func(old *store.Client) (*store.Client, string, error) {
		if md.ClientSecret != "" && (old.SecretHash == "" || !store.VerifySecret(old.SecretHash, md.ClientSecret)) {
			return nil, "", oauth.New(oauth.CodeInvalidClientMetadata, "client_secret: does not match the client's secret")
		}
		c := reg.client(old.ID)
		c.IssuedAt = old.IssuedAt
		var secret string
		if c.Type == store.ClientConfidentialSymmetric {
			if old.Type == store.ClientConfidentialSymmetric && old.SecretHash != "" {
				c.SecretHash = old.SecretHash
			} else {
				secret = store.NewSecret()
				c.SecretHash = store.HashSecret(secret)
			}
		}
		return c, secret, nil
	})
	if ok {
		s.logger.Info("registered client updated", zap.String("client_id", current.ID), zap.String("client_type", reg.clientType))
	}
}

// deleteRegisteredClient removes a client (RFC 7592 §2.3) and revokes
// every token issued to it (store.RevokedClient), for as long as any of
// them can live, in one store transaction that also checks the
// registration access token: of concurrent deletions with one token
// exactly one succeeds, and a token replaced meanwhile revokes nothing.
func (s *Registrar) deleteRegisteredClient(w http.ResponseWriter, r *http.Request, id, token string) {
	until := time.Now().Add(s.opts.TokenLifetime + 5*time.Minute)
	err := s.opts.Store.RemoveClient(r.Context(), id, func(c *store.Client) error {
		if !registrationTokenOpens(c, token) {
			return errRegistrationToken
		}
		return nil
	}, until)
	switch {
	case errors.Is(err, errRegistrationToken), errors.Is(err, store.ErrNotFound):
		oauth.Write(w, s.registrationTokenRefused(true, "the registration access token is not valid for this client"))
		return
	case err != nil:
		oauth.Write(w, s.registrationServerFault("deleting a registered client", err))
		return
	}
	s.logger.Info("registered client deleted; its tokens are revoked", zap.String("client_id", id))
	s.opts.Audit.Record(audit.Event{Action: audit.ActionRevocation, Outcome: audit.OutcomeSuccess, Client: id,
		Remote: throttle.ClientIP(r), Detail: "registered client deleted (RFC 7592); its tokens are revoked", Target: "client"})
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}
