package authz

import "net/http"

// serveJWKS publishes the server's public signing keys: the keys that sign
// now, keys about to sign, and retired keys until every token they signed
// has expired.
func (s *Server) serveJWKS(w http.ResponseWriter, r *http.Request) {
	servePublicJSON(w, r, s.cfg.Keys.JWKS())
}
