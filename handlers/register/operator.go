package register

import (
	"net/http"

	"github.com/smartcaddy/smartauth/handlers/oauth"
)

// RegisterForOperator registers a client an operator submits through
// Caddy's admin API (package adminapi): the body is RFC 7591 client
// metadata, checked exactly as ServeRegister checks it, and the answer is
// the registration response (RFC 7591 §3.2.1: client_id, a client_secret
// for a symmetric client, the registration access token). The admin
// endpoint's access controls stand for the initial access token, so the
// client may use client_credentials, as with an initial access token, and
// nothing is throttled; it works whether or not registration is enabled
// (the token endpoint finds registered clients in the store either way).
// The caller writes the answer, or the RFC 7591 error.
func (s *Registrar) RegisterForOperator(w http.ResponseWriter, r *http.Request) (any, *oauth.Error) {
	md, fault := readClientMetadata(w, r)
	if fault != nil {
		return nil, fault
	}
	if md.SoftwareStatement != "" {
		return nil, oauth.New(oauth.CodeInvalidSoftwareStatement, "software statements are not supported; send the metadata as plain JSON fields")
	}
	reg, fault := s.checkClientMetadata(md, false)
	if fault != nil {
		return nil, fault
	}
	info, fault := s.createClient(r, reg)
	s.recordRegistration(r, info.id(), fault)
	if fault != nil {
		return nil, fault
	}
	return info, nil
}
