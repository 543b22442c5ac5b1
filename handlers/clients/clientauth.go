package clients

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/store"
)

// Presented tells whether a request carries any client identification:
// HTTP Basic credentials, client_id, client_secret or a client assertion.
// A public client refreshing a token may send none.
func Presented(r *http.Request, form url.Values) bool {
	return HasBasicAuth(r) || form.Has("client_id") || form.Has("client_secret") ||
		form.Has("client_assertion") || form.Has("client_assertion_type")
}

// HasBasicAuth tells whether the request carries an Authorization header
// with the Basic scheme.
func HasBasicAuth(r *http.Request) bool {
	scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	return strings.EqualFold(scheme, "Basic")
}

// Resolve returns a client from the configuration or from dynamic
// registration, as an OAuth endpoint sees it: an unknown client is
// invalid_client, a store failure server_error (logged).
func (r *Registry) Resolve(ctx context.Context, id string) (*store.Client, *oauth.Error) {
	c, err := r.Lookup(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, oauth.New(oauth.CodeInvalidClient, "unknown client")
	case err != nil:
		return nil, r.serverError("looking up a client", err)
	}
	return c, nil
}

// serverError answers a failure of the server itself: 503
// temporarily_unavailable when the store cannot be reached now
// (store.ErrUnavailable), server_error otherwise. The cause is logged,
// never sent.
func (r *Registry) serverError(what string, err error) *oauth.Error {
	r.logger.Error("token endpoint: "+what, zap.Error(err))
	if errors.Is(err, store.ErrUnavailable) {
		return oauth.Unavailable()
	}
	return oauth.New(oauth.CodeServerError, "internal error")
}

// MayUseGrant refuses (unauthorized_client) a grant type the client is
// not registered for.
func MayUseGrant(c *store.Client, grantType string) *oauth.Error {
	if !slices.Contains(c.GrantTypes, grantType) {
		return oauth.New(oauth.CodeUnauthorizedClient, "the client is not allowed to use grant_type "+grantType)
	}
	return nil
}

// Authenticate identifies and authenticates the client of a request
// to the token endpoint:
//
//   - public clients send client_id in the form and no secret;
//   - confidential symmetric clients use client_secret_basic (RFC 6749
//     §2.3.1, id and secret form-url-decoded) or client_secret_post;
//   - confidential asymmetric clients use private_key_jwt (RFC 7523, SMART
//     App Launch "Client Authentication: Asymmetric").
//
// Using two methods at once is invalid_request; any other failure is
// invalid_client (401, with a Basic challenge when HTTP Basic was tried).
// A request carrying no client identification at all fails as well; a
// caller that accepts that (a public refresh) checks Presented first.
func (r *Registry) Authenticate(req *http.Request, form url.Values) (*store.Client, *oauth.Error) {
	return r.AuthenticateAt(req, form, "")
}

// AuthenticateAt is Authenticate for a request to another
// endpoint (introspection, revocation): a client assertion's aud may then
// be that endpoint's URL as well as the token endpoint's.
func (r *Registry) AuthenticateAt(req *http.Request, form url.Values, endpoint string) (*store.Client, *oauth.Error) {
	basic := HasBasicAuth(req)
	post := form.Has("client_secret")
	assertion := form.Has("client_assertion") || form.Has("client_assertion_type")
	methods := 0
	for _, m := range []bool{basic, post, assertion} {
		if m {
			methods++
		}
	}
	if methods > 1 {
		return nil, oauth.New(oauth.CodeInvalidRequest, "use exactly one client authentication method")
	}
	switch {
	case basic:
		c, f := r.AuthenticateBasic(req, form)
		if f != nil {
			f.WithBasic(r.opts.Issuer)
		}
		return c, f
	case post:
		id := form.Get("client_id")
		if id == "" {
			return nil, oauth.New(oauth.CodeInvalidRequest, "client_id is required with client_secret")
		}
		return r.authenticateSecret(req.Context(), id, form.Get("client_secret"))
	case assertion:
		return r.authenticateAssertion(req.Context(), form, endpoint)
	}
	id := form.Get("client_id")
	if id == "" {
		return nil, oauth.New(oauth.CodeInvalidClient, "client authentication is required")
	}
	c, f := r.Resolve(req.Context(), id)
	if f != nil {
		return nil, f
	}
	if c.Type != store.ClientPublic {
		return nil, oauth.New(oauth.CodeInvalidClient, "this client must authenticate")
	}
	return c, nil
}

// AuthenticateBasic checks client_secret_basic (RFC 6749 §2.3.1: id and
// secret form-url-encoded); a client_id in form, if any, must be the same
// client. It sets no challenge: the caller adds one (WithBasic).
func (r *Registry) AuthenticateBasic(req *http.Request, form url.Values) (*store.Client, *oauth.Error) {
	rawID, rawSecret, ok := req.BasicAuth()
	if !ok {
		return nil, oauth.New(oauth.CodeInvalidClient, "malformed Basic credentials")
	}
	id, err1 := url.QueryUnescape(rawID)
	secret, err2 := url.QueryUnescape(rawSecret)
	if err1 != nil || err2 != nil || id == "" {
		return nil, oauth.New(oauth.CodeInvalidClient, "malformed Basic credentials: the client id and secret must be form-url-encoded")
	}
	if fid := form.Get("client_id"); fid != "" && fid != id {
		return nil, oauth.New(oauth.CodeInvalidRequest, "client_id does not match the authenticated client")
	}
	return r.authenticateSecret(req.Context(), id, secret)
}

// authenticateSecret checks a symmetric client's secret in constant time.
func (r *Registry) authenticateSecret(ctx context.Context, id, secret string) (*store.Client, *oauth.Error) {
	c, f := r.Resolve(ctx, id)
	if f != nil {
		return nil, f
	}
	switch c.Type {
	case store.ClientConfidentialSymmetric:
	case store.ClientPublic:
		return nil, oauth.New(oauth.CodeInvalidClient, "a public client does not authenticate with a secret")
	default:
		return nil, oauth.New(oauth.CodeInvalidClient, "this client must authenticate with private_key_jwt")
	}
	if c.SecretHash == "" || !store.VerifySecret(c.SecretHash, secret) {
		return nil, oauth.New(oauth.CodeInvalidClient, "client authentication failed")
	}
	return c, nil
}
