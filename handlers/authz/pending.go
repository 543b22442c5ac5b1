package authz

import (
	"net/http"
	"time"

	"github.com/smartcaddy/smartauth/handlers/internal/throttle"
	"github.com/smartcaddy/smartauth/store"
)

// A pending authorization request lives in memory, keyed by a random id
// that the login, picker and consent pages carry. Nothing the pages post
// back about the client, redirect URI or scopes is trusted: they only name
// the pending request. The table (Server.pending) is the issuer's and
// lives in the reload-surviving state (Options.Pending), so that a Caddy config
// reload does not lose requests in flight; it is bounded and entries
// expire.
const (
	pendingAuthorizationTTL = 30 * time.Minute
	pendingAuthorizationMax = 10000
	// pendingFieldName is the query parameter and hidden input naming a
	// pending request.
	pendingFieldName = "req"
)

// Pending is an issuer's table of pending authorization requests. The
// router keeps one per issuer across config reloads and passes it in
// Options.Pending.
type Pending struct {
	table *throttle.Map[pendingAuthorization]
}

// NewPending makes an empty table of pending authorization requests,
// bounded to pendingAuthorizationMax entries.
func NewPending() *Pending {
	return &Pending{table: throttle.NewMap[pendingAuthorization](pendingAuthorizationMax)}
}

// pendingAuthorization is a validated authorization request waiting for
// sign-in, a patient choice or consent. Its slices are never modified in
// place.
type pendingAuthorization struct {
	issuer      string
	clientID    string
	clientName  string
	redirectURI string
	state       string
	nonce       string
	challenge   string
	// offered are the requested scopes the client may have
	// (scopes.Grant), in the requested form and order.
	offered []string
	context store.LaunchContext
	// ehrLaunch is set when the context came from an EHR launch;
	// launchID is then the launch's id (used up with the code) and
	// launchUser the user it is bound to, if any.
	ehrLaunch  bool
	launchID   string
	launchUser string
	promptNone bool
	// session is the hash of the sign-in session the request is bound to,
	// empty until someone signs in.
	session string
}

// pendingFor returns a pending request bound to the session.
func (s *Server) pendingFor(fs *flowSession, id string) (pendingAuthorization, bool) {
	if id == "" || !s.sessions.signedIn(fs) {
		return pendingAuthorization{}, false
	}
	p, ok := s.pending.Get(id, time.Now())
	if !ok || p.issuer != s.cfg.Issuer.String() || p.session != store.HashID(fs.id) {
		return pendingAuthorization{}, false
	}
	return p, true
}

// savePending writes back a changed pending request.
func (s *Server) savePending(id string, p pendingAuthorization) {
	now := time.Now()
	s.pending.Update(id, now, func(cur pendingAuthorization, found bool) (pendingAuthorization, time.Time, bool) {
		return p, now.Add(pendingAuthorizationTTL), found
	})
}

// showPendingExpired answers a page request whose pending authorization is
// gone.
func (s *Server) showPendingExpired(w http.ResponseWriter) {
	s.pages.message(w, http.StatusBadRequest, "Request expired",
		"This sign-in request has expired or belongs to another sign-in. Return to the app and start again.")
}

// failPending ends a pending request with an error sent to the app.
func (s *Server) failPending(w http.ResponseWriter, r *http.Request, id string, p pendingAuthorization, code, description string) {
	s.pending.Remove(id)
	s.redirectAuthorizeError(w, r, p.redirectURI, p.state, code, description)
}

// readPendingForm reads a posted flow form (picker, consent): it checks
// the CSRF token and finds the pending authorization the form names. When
// it returns false it has already answered the request.
func (s *Server) readPendingForm(w http.ResponseWriter, r *http.Request) (*flowSession, string, pendingAuthorization, bool) {
	if err := parsePageForm(w, r); err != nil {
		s.pages.message(w, http.StatusBadRequest, "Invalid request", "The form could not be read.")
		return nil, "", pendingAuthorization{}, false
	}
	fs := s.sessions.read(r)
	if !s.sessions.checkCSRF(r, fs) {
		s.sessions.refuseCSRF(w)
		return nil, "", pendingAuthorization{}, false
	}
	id := r.PostForm.Get(pendingFieldName)
	p, ok := s.pendingFor(fs, id)
	if !ok {
		s.showPendingExpired(w)
		return nil, "", pendingAuthorization{}, false
	}
	return fs, id, p, true
}

// readPendingPage finds the pending authorization a flow page (picker,
// consent) is shown for: the one its req query parameter names, bound to
// the request's session. When it returns false it has already answered.
func (s *Server) readPendingPage(w http.ResponseWriter, r *http.Request) (*flowSession, string, pendingAuthorization, bool) {
	fs := s.sessions.read(r)
	id := r.URL.Query().Get(pendingFieldName)
	p, ok := s.pendingFor(fs, id)
	if !ok {
		s.showPendingExpired(w)
		return nil, "", pendingAuthorization{}, false
	}
	return fs, id, p, true
}
