package token

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/handlers/clients"
	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/store"
)

// introspection is an RFC 7662 introspection response as SMART profiles
// it: for an active token, scope, client_id, exp, iat, sub, aud, iss,
// token_type, fhirUser and every launch-context parameter of the token
// response. An inactive token is answered with active alone.
type introspection struct {
	Active    bool   `json:"active"`
	Scope     string `json:"scope,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	Exp       int64  `json:"exp,omitempty"`
	Iat       int64  `json:"iat,omitempty"`
	Sub       string `json:"sub,omitempty"`
	Aud       string `json:"aud,omitempty"`
	Iss       string `json:"iss,omitempty"`
	FHIRUser  string `json:"fhirUser,omitempty"`
	// The launch context: patient, encounter, fhirContext,
	// need_patient_banner, smart_style_url, intent, tenant.
	store.LaunchContext
}

// introspectCaller is who asks: a client authenticated with its
// credentials, or the holder of a bearer token with __introspect.
type introspectCaller struct {
	clientID string
	// any lets the caller introspect tokens issued to every client;
	// otherwise only its own.
	any bool
}

// serveIntrospect is the introspection endpoint: POST {issuer}/introspect
// (RFC 7662; SMART App Launch "Token Introspection").
//
// Access control: the caller authenticates either as a confidential client
// (client_secret_basic, client_secret_post or private_key_jwt; a public
// client may not introspect) or with a bearer access token of this server
// whose scope holds __introspect. A bearer token with __introspect, or a
// client whose registered scopes list __introspect, may introspect tokens
// issued to any client (SMART: "tokens issued to any client"); any other
// client only tokens issued to itself. A token the caller may not see is
// answered as inactive, as are revoked, expired, malformed and foreign
// tokens: {"active": false} and nothing else.
//
// Access tokens and refresh tokens are both introspected; token_type_hint
// decides which is looked up first, never which is looked up.
func (s *Service) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	form, ok := s.readOAuthPost(w, r, "POST", "the introspection endpoint")
	if !ok {
		return
	}
	caller, done := s.introspectionCaller(w, r, form)
	if done {
		return
	}
	token := form.Get("token")
	if token == "" {
		oauth.Write(w, oauth.New(oauth.CodeInvalidRequest, "token is required"))
		return
	}
	resp, err := s.introspect(r.Context(), token, form.Get("token_type_hint"))
	if err != nil {
		s.logger.Error("introspection", zap.Error(err))
		oauth.Write(w, failure(err))
		return
	}
	if resp.Active && !caller.any && resp.ClientID != caller.clientID {
		resp = &introspection{}
	}
	s.logger.Debug("token introspected",
		zap.String("caller", caller.clientID),
		zap.Bool("active", resp.Active),
		zap.String("token_type", resp.TokenType))
	if !resp.Active {
		oauth.WriteJSON(w, http.StatusOK, map[string]bool{"active": false})
		return
	}
	oauth.WriteJSON(w, http.StatusOK, resp)
}

// introspectionCaller authenticates the caller. done reports that an error
// response was written.
func (s *Service) introspectionCaller(w http.ResponseWriter, r *http.Request, form url.Values) (introspectCaller, bool) {
	scheme, bearer, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if strings.EqualFold(scheme, "Bearer") {
		if form.Has("client_assertion") || form.Has("client_secret") {
			oauth.Write(w, oauth.New(oauth.CodeInvalidRequest, "use exactly one client authentication method"))
			return introspectCaller{}, true
		}
		tok, err := s.tokens.Verify(r.Context(), strings.TrimSpace(bearer))
		if err != nil {
			// The challenge carries the code alone, no description.
			oauth.Write(w, &oauth.Error{Status: http.StatusUnauthorized, Code: oauth.CodeInvalidToken,
				Description: "the bearer token is invalid, expired or revoked",
				Challenge:   oauth.BearerChallenge(s.cfg.Issuer.String(), oauth.CodeInvalidToken, "", "")})
			return introspectCaller{}, true
		}
		if !scopeHas(tok.Scope(), scopeIntrospect) {
			oauth.Write(w, &oauth.Error{Status: http.StatusForbidden, Code: oauth.CodeInsufficientScope,
				Description: "the bearer token lacks the " + scopeIntrospect + " scope",
				Challenge:   oauth.BearerChallenge(s.cfg.Issuer.String(), oauth.CodeInsufficientScope, "", scopeIntrospect)})
			return introspectCaller{}, true
		}
		return introspectCaller{clientID: tok.ClientID(), any: true}, false
	}
	if !clients.Presented(r, form) {
		oauth.Write(w, oauth.New(oauth.CodeInvalidClient, "authenticate as a confidential client, or with a bearer token holding "+scopeIntrospect).WithBasic(s.cfg.Issuer.String()))
		return introspectCaller{}, true
	}
	c, f := s.registry.AuthenticateAt(r, form, s.cfg.IntrospectEndpoint)
	if f == nil && c.Type == store.ClientPublic {
		f = oauth.New(oauth.CodeInvalidClient, "a public client may not introspect tokens")
	}
	if f != nil {
		oauth.Write(w, f.WithBasic(s.cfg.Issuer.String()))
		return introspectCaller{}, true
	}
	return introspectCaller{clientID: c.ID, any: slices.Contains(c.Scopes, scopeIntrospect)}, false
}

// introspect looks a token up as an access token and as a refresh token,
// in the order the hint suggests. err is a failure of the server.
func (s *Service) introspect(ctx context.Context, token, hint string) (*introspection, error) {
	if hint == "refresh_token" {
		if resp, err := s.introspectRefresh(ctx, token); err != nil || resp.Active {
			return resp, err
		}
		return s.introspectAccess(ctx, token), nil
	}
	if resp := s.introspectAccess(ctx, token); resp.Active {
		return resp, nil
	}
	return s.introspectRefresh(ctx, token)
}

// introspectAccess checks an access token with accesstoken.Profile.Verify
// (signature, typ, iss, aud, exp, nbf, revocation) and describes it.
func (s *Service) introspectAccess(ctx context.Context, token string) *introspection {
	if strings.Count(token, ".") != 2 {
		return &introspection{}
	}
	tok, err := s.tokens.Verify(ctx, token)
	if err != nil {
		return &introspection{}
	}
	resp := &introspection{
		Active:    true,
		Scope:     tok.Scope(),
		ClientID:  tok.ClientID(),
		TokenType: "Bearer",
		FHIRUser:  tok.FHIRUser(),
		Sub:       tok.Subject(),
		Iss:       tok.Issuer(),
		Aud:       tok.Audience(),
	}
	if exp, ok := tok.Expiration(); ok {
		resp.Exp = exp.Unix()
	}
	if iat, ok := tok.IssuedAt(); ok {
		resp.Iat = iat.Unix()
	}
	resp.LaunchContext = tok.LaunchContext()
	return resp
}

// introspectRefresh looks a refresh token up in the store: live, unused,
// its family not revoked.
func (s *Service) introspectRefresh(ctx context.Context, token string) (*introspection, error) {
	rec, err := s.cfg.Store.GetRefresh(ctx, token)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &introspection{}, nil
	case err != nil:
		return nil, err
	}
	if rec.Subject != "" && s.user(rec.Subject, rec.Federated) == nil {
		// The refresh grant refuses it: the user no longer exists.
		return &introspection{}, nil
	}
	sub := rec.Subject
	if sub == "" {
		sub = rec.ClientID
	}
	resp := &introspection{
		Active:        true,
		Scope:         rec.Scope,
		ClientID:      rec.ClientID,
		TokenType:     "refresh_token",
		Exp:           rec.IssuedAt.Add(s.refreshTokenTTL()).Unix(),
		Iat:           rec.IssuedAt.Unix(),
		Sub:           sub,
		Iss:           s.cfg.Issuer.String(),
		LaunchContext: rec.Context,
	}
	if u := s.user(rec.Subject, rec.Federated); rec.Subject != "" && u != nil && u.FHIRUser != "" {
		resp.FHIRUser = s.absoluteFHIRUser(u.FHIRUser)
	}
	return resp, nil
}
