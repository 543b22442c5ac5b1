package handlers

import (
	"net/http"
	"time"

	"github.com/smartcaddy/smartauth/handlers/oauth"
)

// This file is what the admin API (package adminapi, wired by the Caddy
// module) needs of a running Server beyond its store and keys.

// RegisterForOperator registers a client from RFC 7591 metadata an
// operator sent to the admin API, with the registration endpoint's checks
// (register.Registrar.RegisterForOperator).
func (s *Server) RegisterForOperator(w http.ResponseWriter, r *http.Request) (any, *oauth.Error) {
	return s.registrar.RegisterForOperator(w, r)
}

// RevocationPeriod is how long a revocation of every token of a client or
// user must be kept: as long as any token issued until now can live (the
// longest token lifetime), plus a margin, as deleting a registered client
// does.
func (s *Server) RevocationPeriod() time.Duration {
	l := s.cfg.Lifetimes
	return max(l.AccessToken, l.RefreshToken, l.Backend) + revocationMargin
}

// revocationMargin is added to the longest token lifetime in
// RevocationPeriod, for clock skew.
const revocationMargin = 5 * time.Minute
