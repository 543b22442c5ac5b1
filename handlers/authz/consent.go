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
	// User is the signed-in user's name, SignOut the sign-out page.
	User    string
	SignOut string
	// Patient is the patient in context (ID "" for none), named as on the
	// picker; Notice says when the name could not be read.
	Patient patientChoice
	Notice  string
	// ForOther is set when the user is not the patient in context (a
	// practitioner): the permissions then read "this patient's …".
	ForOther bool
	Scopes   []consentScope
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
		s.renderConsent(w, r, fs, p)
	case http.MethodPost:
		s.postConsent(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		s.pages.message(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET or POST.")
	}
}

// renderConsent shows the consent page of a pending request.
func (s *Server) renderConsent(w http.ResponseWriter, r *http.Request, fs *flowSession, p pendingAuthorization) {
	u := s.sessions.user(fs)
	data := consentPage{
		Action:     s.Endpoint(pathConsent),
		CSRF:       fs.rec.CSRF,
		Req:        s.pending.seal(p),
		ClientName: p.clientName,
		User:       displayUserName(u),
		SignOut:    s.Endpoint(pathLogout),
		ForOther:   u.OwnPatient() == "",
	}
	if p.context.Patient != "" {
		var named []patientChoice
		named, data.Notice = s.describePatients(r.Context(), []string{p.context.Patient})
		data.Patient = named[0]
	}
	for _, sc := range consentScopes(p, u) {
		desc := scopes.Describe(sc)
		if data.ForOther {
			desc = forThisPatient(sc, desc)
		}
		data.Scopes = append(data.Scopes, consentScope{Value: sc, Description: desc, Locked: scopes.Locked(sc)})
		if strings.Contains(sc, "/*.") {
			data.Wildcard = true
		}
	}
	s.pages.render(w, http.StatusOK, pageConsent, s.flowPageSecurity(p), data)
}

// forThisPatient words a patient/ scope's description for a user who is
// not the patient: "Read this patient's lab results", not "Read your lab
// results".
func forThisPatient(scope, desc string) string {
	if !strings.HasPrefix(scope, "patient/") {
		return desc
	}
	return strings.Replace(desc, "your ", "this patient's ", 1)
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
		s.renderConsent(w, r, fs, p)
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
