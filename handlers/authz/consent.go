package authz

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/smartcaddy/smartauth/scopes"
	"github.com/smartcaddy/smartauth/store"
	"go.uber.org/zap"
)

// consentPage is the data of consent.html.
type consentPage struct {
	Action     string
	CSRF       string
	Req        string
	ClientName string
	User       string
	Patient    string
	Scopes     []consentScope
	// Wildcard is set when a scope covers every resource type.
	Wildcard bool
}

// consentScope is one checkbox of the consent page.
type consentScope struct {
	Value       string
	Description string
	// Locked scopes (openid, launch…) cannot be unticked.
	Locked bool
}

// serveConsent shows the scopes a pending request asks for (GET) and
// records the user's decision (POST: decision=allow|deny, scope=… per
// ticked box, csrf_token).
func (s *Server) serveConsent(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		fs, p, ok := s.pending.readPage(w, r)
		if !ok {
			return
		}
		s.renderConsent(w, fs, p)
	case http.MethodPost:
		s.postConsent(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		s.pages.message(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET or POST.")
	}
}

// renderConsent shows the consent page of a pending request.
func (s *Server) renderConsent(w http.ResponseWriter, fs *flowSession, p pendingAuthorization) {
	data := consentPage{
		Action:     s.Endpoint(pathConsent),
		CSRF:       fs.rec.CSRF,
		Req:        s.pending.seal(p),
		ClientName: p.clientName,
		User:       displayUserName(s.sessions.user(fs)),
		Patient:    p.context.Patient,
	}
	for _, sc := range consentScopes(p, s.sessions.user(fs)) {
		data.Scopes = append(data.Scopes, consentScope{Value: sc, Description: scopes.Describe(sc), Locked: scopes.Locked(sc)})
		if strings.Contains(sc, "/*.") {
			data.Wildcard = true
		}
	}
	s.pages.render(w, http.StatusOK, pageConsent, s.flowPageSecurity(p), data)
}

// flowPageSecurity lets the consent and picker pages be framed by the
// configured EHR origins and post on to the app.
func (s *Server) flowPageSecurity(p pendingAuthorization) pageSecurity {
	return pageSecurity{framable: true, formTargets: []string{redirectOrigin(p.redirectURI)}}
}

// postConsent records the user's consent decision and, when allowed,
// issues the code with the ticked scopes.
func (s *Server) postConsent(w http.ResponseWriter, r *http.Request) {
	fs, p, ok := s.pending.readForm(w, r)
	if !ok {
		return
	}
	switch r.PostForm.Get("decision") {
	case "allow":
	case "deny":
		s.recordConsent(r, fs, p, nil)
		s.failPending(w, r, p, "access_denied", "the user denied access")
		return
	default:
		s.renderConsent(w, fs, p)
		return
	}
	ticked := r.PostForm["scope"]
	var granted []string
	for _, sc := range consentScopes(p, s.sessions.user(fs)) {
		if scopes.Locked(sc) || slices.Contains(ticked, sc) {
			granted = append(granted, sc)
		}
	}
	s.recordConsent(r, fs, p, granted)
	if s.cfg.RememberConsent > 0 {
		rec := &store.Consent{User: fs.rec.User, ClientID: p.clientID, Scopes: granted, GrantedAt: time.Now()}
		if err := s.cfg.Store.PutConsent(r.Context(), rec, s.cfg.RememberConsent); err != nil {
			s.logger.Error("remembering a consent failed", zap.Error(err))
		}
	}
	s.finishAuthorization(w, r, fs, p, granted)
}
