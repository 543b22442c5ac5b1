package handlers

import (
	"net/http"
	"strings"

	"go.uber.org/zap"
)

// serveUserinfo is the OpenID Connect UserInfo endpoint (OIDC Core §5.3):
// GET or POST with an access token in the Authorization header (RFC 6750
// §2.1). The token must carry openid. It answers sub and the claims the
// id_token carries: fhirUser and, with profile, name.
func (s *Server) serveUserinfo(w http.ResponseWriter, r *http.Request) {
	if allowAnyOrigin(w, r, "GET, POST, OPTIONS") {
		return
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		h.Set("Allow", "GET, POST, OPTIONS")
		writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", "use GET or POST")
		return
	}
	scheme, raw, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	raw = strings.TrimSpace(raw)
	if !strings.EqualFold(scheme, "Bearer") || raw == "" {
		// RFC 6750 §3.1: no error code when no token was sent.
		h.Set("WWW-Authenticate", `Bearer realm="`+s.cfg.Issuer.String()+`"`)
		writeOAuthError(w, http.StatusUnauthorized, "invalid_request", "a Bearer access token is required")
		return
	}
	tok, err := s.tokens.Verify(r.Context(), raw)
	if err != nil {
		s.logger.Debug("userinfo refused", zap.String("error", "invalid_token"), zap.Error(err))
		s.userinfoBearerError(w, http.StatusUnauthorized, "invalid_token", "the access token is invalid, expired or revoked")
		return
	}
	clientID := tok.ClientID()
	scope := tok.Scope()
	if !scopeHas(scope, "openid") {
		s.logger.Debug("userinfo refused", zap.String("client_id", clientID), zap.String("error", "insufficient_scope"))
		s.userinfoBearerError(w, http.StatusForbidden, "insufficient_scope", "the access token was not granted openid")
		return
	}
	sub := tok.Subject()
	u := s.cfg.Users[sub]
	if u == nil {
		s.logger.Debug("userinfo refused", zap.String("client_id", clientID), zap.String("error", "invalid_token"), zap.String("reason", "unknown user"))
		s.userinfoBearerError(w, http.StatusUnauthorized, "invalid_token", "the access token's user no longer exists")
		return
	}
	claims := map[string]any{"sub": sub}
	for _, c := range s.userClaims(u, scope) {
		claims[c.name] = c.value
	}
	s.logger.Debug("userinfo answered", zap.String("client_id", clientID))
	writeJSON(w, http.StatusOK, claims)
}

// userinfoBearerError answers a resource request refused per RFC 6750 §3: a
// WWW-Authenticate challenge with the error code, and the same error as
// JSON.
func (s *Server) userinfoBearerError(w http.ResponseWriter, status int, code, description string) {
	challenge := `Bearer realm="` + s.cfg.Issuer.String() + `", error="` + code + `", error_description="` + description + `"`
	if code == "insufficient_scope" {
		challenge += `, scope="openid"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	writeOAuthError(w, status, code, description)
}
