package handlers

import "net/http"

// addRoutes registers the endpoints under the issuer's path that are not
// the authorization server's, where no route (authz.Server.Routes) took
// the path already.
func (s *Server) addRoutes() {
	for p, h := range map[string]http.HandlerFunc{
		pathRegister: s.serveRegister, // register.go: RFC 7591 (register_manage.go: RFC 7592)
	} {
		if _, taken := s.routes[s.issuerPath+p]; !taken {
			s.routes[s.issuerPath+p] = h
		}
	}
}
