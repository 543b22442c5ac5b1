package token

import (
	"slices"
	"strings"

	"github.com/smartcaddy/smartauth/handlers/clients"
	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/scopes"
	"github.com/smartcaddy/smartauth/store"
)

// scopeIntrospect is the extension scope (SMART: extension scopes take a
// "__" prefix) that lets a backend client introspect tokens issued to any
// client: listed in a client's scopes, it may be requested with the
// client_credentials grant, and a client holding it may introspect with
// its own credentials too (introspect.go).
const scopeIntrospect = "__introspect"

// grantClientCredentials issues an access token to a backend client acting
// on its own behalf (SMART Backend Services; RFC 6749 §4.4):
//
//   - the client authenticates with private_key_jwt; a client secret is
//     accepted only from a symmetric client the operator explicitly
//     allowed (allow_secret_for_client_credentials), since SMART requires
//     asymmetric authentication; a public client is refused;
//   - the scope is required and may hold only system/ scopes (and
//     __introspect), each covered by the client's registered scopes;
//     anything else fails the request with invalid_scope;
//   - the token lives backend_token_lifetime (default 5 minutes) and no
//     refresh token is issued.
//
// The only store write is the assertion's jti.
func (s *Service) grantClientCredentials(ex *tokenExchange) (*tokenResponse, *oauth.Error) {
	if !clients.Presented(ex.r, ex.form) {
		return nil, oauth.New(oauth.CodeInvalidClient, "client_credentials requires client authentication (private_key_jwt)").WithBasic(s.cfg.Issuer.String())
	}
	client, f := s.registry.Authenticate(ex.r, ex.form)
	if f != nil {
		ex.clientID = ex.form.Get("client_id")
		return nil, f.WithBasic(s.cfg.Issuer.String())
	}
	ex.clientID = client.ID
	switch client.Type {
	case store.ClientConfidentialAsymmetric:
	case store.ClientConfidentialSymmetric:
		if !client.AllowSecretForClientCredentials {
			return nil, oauth.New(oauth.CodeUnauthorizedClient, "client_credentials requires private_key_jwt for this client (SMART Backend Services)")
		}
	default:
		return nil, oauth.New(oauth.CodeInvalidClient, "a public client cannot use client_credentials").WithBasic(s.cfg.Issuer.String())
	}
	if f := clients.MayUseGrant(client, string(oauth.GrantClientCredentials)); f != nil {
		return nil, f
	}
	scope, f := backendScope(client, ex.form.Get("scope"))
	if f != nil {
		return nil, f
	}
	return s.issueTokens(&tokenGrant{
		ClientID: client.ID,
		Scope:    scope,
		TTL:      s.backendTokenTTL(),
	}, "")
}

// backendScope checks a client_credentials scope request against the
// client's pre-authorized scopes and returns the scope to grant: the
// requested scopes, deduplicated, in their order.
func backendScope(c *store.Client, requested string) (string, *oauth.Error) {
	want := scopes.Split(requested)
	if len(want) == 0 {
		return "", oauth.New(oauth.CodeInvalidScope, "scope is required: the system/ scopes the client needs")
	}
	for _, w := range want {
		if w == scopeIntrospect {
			if !slices.Contains(c.Scopes, scopeIntrospect) {
				return "", oauth.New(oauth.CodeInvalidScope, "scope "+oauth.Truncate(w)+" is not registered for this client")
			}
			continue
		}
		sc, err := scopes.Parse(w)
		switch {
		case err != nil:
			return "", oauth.New(oauth.CodeInvalidScope, "scope "+oauth.Truncate(w)+" is not a scope this server knows")
		case sc.Context != scopes.System:
			return "", oauth.New(oauth.CodeInvalidScope, "scope "+oauth.Truncate(w)+": client_credentials grants only system/ scopes")
		case !scopes.Covers(c.Scopes, []string{w}):
			return "", oauth.New(oauth.CodeInvalidScope, "scope "+oauth.Truncate(w)+" is not registered for this client")
		}
	}
	return strings.Join(want, " "), nil
}
