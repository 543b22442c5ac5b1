package token

import (
	"net/http"

	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/handlers/users"
	"go.uber.org/zap"
)

// serveUserinfo is the OpenID Connect UserInfo endpoint (OIDC Core §5.3):
// GET or POST with an access token in the Authorization header (RFC 6750
// §2.1). The token must carry openid. It answers sub and the claims the
// id_token carries: fhirUser and, with profile, name.
func (s *Service) serveUserinfo(w http.ResponseWriter, r *http.Request) {
	if oauth.AllowAnyOrigin(w, r, "GET, POST, OPTIONS") {
		return
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		h.Set("Allow", "GET, POST, OPTIONS")
		oauth.Write(w, &oauth.Error{Status: http.StatusMethodNotAllowed, Code: oauth.CodeInvalidRequest, Description: "use GET or POST"})
		return
	}
	raw, ok := oauth.BearerToken(r)
	if !ok {
		// RFC 6750 §3.1: no error code when no token was sent (the body
		// says invalid_request).
		oauth.Write(w, s.userinfoRefusal(http.StatusUnauthorized, "", "a Bearer access token is required"))
		return
	}
	tok, err := s.tokens.Verify(r.Context(), raw)
	if err != nil {
		s.logger.Debug("userinfo refused", zap.String("error", "invalid_token"), zap.Error(err))
		oauth.Write(w, s.userinfoRefusal(http.StatusUnauthorized, oauth.CodeInvalidToken, "the access token is invalid, expired or revoked"))
		return
	}
	clientID := tok.ClientID()
	scope := tok.Scope()
	if !scopeHas(scope, "openid") {
		s.logger.Debug("userinfo refused", zap.String("client_id", clientID), zap.String("error", "insufficient_scope"))
		oauth.Write(w, s.userinfoRefusal(http.StatusForbidden, oauth.CodeInsufficientScope, "the access token was not granted openid"))
		return
	}
	sub := tok.Subject()
	u := s.user(sub, users.FromToken(sub, tok.FHIRUser(), s.cfg.FHIRBase.String()))
	if u == nil {
		s.logger.Debug("userinfo refused", zap.String("client_id", clientID), zap.String("error", "invalid_token"), zap.String("reason", "unknown user"))
		oauth.Write(w, s.userinfoRefusal(http.StatusUnauthorized, oauth.CodeInvalidToken, "the access token's user no longer exists"))
		return
	}
	claims := map[string]any{"sub": sub}
	for _, c := range s.userClaims(u, scope) {
		claims[c.name] = c.value
	}
	s.logger.Debug("userinfo answered", zap.String("client_id", clientID))
	oauth.WriteJSON(w, http.StatusOK, claims)
}

// userinfoRefusal is a refused UserInfo request (RFC 6750 §3): the error
// as JSON and a Bearer challenge (realm: the issuer) with the same code and
// description; insufficient_scope names the scope needed, openid. code is
// "" when no token was sent.
func (s *Service) userinfoRefusal(status int, code, description string) *oauth.Error {
	e := &oauth.Error{Status: status, Code: code, Description: description}
	if code == oauth.CodeInsufficientScope {
		e.Scope = "openid"
	}
	return e.WithBearer(s.cfg.Issuer.String())
}
