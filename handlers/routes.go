package handlers

import "net/http"

// Paths of the pages under the issuer.
const (
	pathLogin    = "/login"
	pathLogout   = "/logout"
	pathConsent  = "/consent"
	pathPicker   = "/select-patient"
	pathLauncher = "/launcher"
)

// addRoutes registers the OAuth and OpenID endpoints and the pages under
// the issuer's path. Each endpoint lives in its own file.
func (s *Server) addRoutes() error {
	var err error
	if s.pages, err = loadPages(s.cfg.TemplatesDir); err != nil {
		return err
	}
	for p, h := range map[string]http.HandlerFunc{
		pathAuthorize:  s.serveAuthorize,  // authorize.go
		pathLogin:      s.serveLogin,      // login.go
		pathLogout:     s.serveLogout,     // login.go
		pathConsent:    s.serveConsent,    // consent.go
		pathPicker:     s.servePicker,     // picker.go
		pathLaunch:     s.serveLaunch,     // launch.go: the EHR launch API
		pathLauncher:   s.serveLauncher,   // launcher.go: the launcher page
		pathToken:      s.serveToken,      // token.go (grants in grant_*.go)
		pathUserinfo:   s.serveUserinfo,   // userinfo.go
		pathManage:     s.serveManage,     // manage.go: the user's authorized apps
		pathIntrospect: s.serveIntrospect, // introspect.go: RFC 7662
		pathRevoke:     s.serveRevoke,     // revoke.go: RFC 7009
		// pathRegister: handlers/register, added by New
	} {
		if _, taken := s.routes[s.issuerPath+p]; !taken {
			s.routes[s.issuerPath+p] = h
		}
	}
	return nil
}
