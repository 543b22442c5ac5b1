package handlers

import "net/http"

// buildRoutes maps exact request paths to the endpoints: first the
// authorization server's (authz.Server.Routes: the discovery documents at
// the FHIR base, the issuer and the site root, the JWKS, the OAuth
// endpoints and the pages), then dynamic registration at
// {issuer}/register where no authorization-server route took the path.
// The RFC 7592 client configuration endpoints under {issuer}/register/
// and the FHIR API are matched by prefix in ServeHTTP.
func (s *Server) buildRoutes() map[string]http.HandlerFunc {
	routes := s.authz.Routes()
	if _, taken := routes[s.issuerPath+pathRegister]; !taken {
		routes[s.issuerPath+pathRegister] = s.registrar.ServeRegister // handlers/register: RFC 7591
	}
	routes[s.issuerPath+pathHealth] = s.serveHealth // health.go: readiness
	return routes
}
