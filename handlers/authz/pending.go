package authz

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/store"
)

// A pending authorization request is not kept by the server: the value
// the login, picker and consent pages carry (req) is the request itself,
// sealed (seal.go), so that any instance of the authorization server
// continues it and an unauthenticated caller writes nothing anywhere.
// Nothing the pages post back about the client, redirect URI or scopes is
// trusted: only what opens from the sealed value is.
//
// A sealed request expires pendingAuthorizationTTL after the authorization
// endpoint made it, by the server's clock; a change (binding it to the
// session that signs in, the patient chosen in the picker) seals it again,
// with the same request id and expiry, and the new value travels in the
// redirect or the form. A request is used up, once, when a signed-in user
// ends it (the code issued, or an error sent to the app): its request id
// is recorded in the store (UseJTI under pendingJTIIssuer) until it
// expires, and a used id does not continue.
const (
	pendingAuthorizationTTL = 30 * time.Minute
	// pendingClockLeeway keeps a used request id recorded this much
	// longer than the request lives, for instances whose clocks run
	// behind the one that sealed it.
	pendingClockLeeway = 5 * time.Minute
	// pendingFieldName is the query parameter and hidden input
	// carrying a sealed pending request.
	pendingFieldName = "req"
	// pendingJTIPrefix namespaces the used request ids (UseJTI's
	// issuer, with the authorization server's issuer after it) apart
	// from the JWT ids of clients.
	pendingJTIPrefix = "pending:"
)

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
	// promptLogin (prompt=login) and maxAge (max_age, when hasMaxAge, in
	// seconds) ask for a fresh sign-in (needsFreshSignIn); a sign-in
	// through an identity provider passes them on.
	promptLogin bool
	maxAge      int
	hasMaxAge   bool
	// session is the hash of the sign-in session the request is bound to,
	// empty until someone signs in.
	session string
	// requestID is a random 128-bit id (base32), the same in every
	// sealing of the request: what is recorded when it is used up.
	requestID string
	// expires is when the request stops opening.
	expires time.Time
}

// pendingRequests are the issuer's pending authorization requests as the
// flow's pages see them: sealed values opened with the site keys, the
// sign-in session each must be bound to, the store where used ones are
// recorded, and the answers of a page whose request is gone. It is built
// by New and read-only afterwards.
type pendingRequests struct {
	// keys seal and open the requests.
	keys *siteKeys
	// issuer is the issuer's URL as a string: a request sealed for
	// another issuer does not open.
	issuer string
	// used records used request ids (Options.Store).
	used JTIStore
	// sessions tell whether a request's session is signed in and read
	// it for the pages.
	sessions *sessions
	// pages answer a request whose pending authorization is gone.
	pages *pageRenderer
	// now is the clock requests expire by.
	now func() time.Time
}

// begin gives a new request its id and expiry and seals it.
func (pr *pendingRequests) begin(p *pendingAuthorization) string {
	p.requestID = rand.Text()
	p.expires = pr.now().Add(pendingAuthorizationTTL)
	return pr.seal(*p)
}

// seal seals a pending request of this issuer.
func (pr *pendingRequests) seal(p pendingAuthorization) string {
	p.issuer = pr.issuer
	return pr.keys.sealPending(p)
}

// peek opens a sealed request of this issuer, whatever session it is
// bound to.
func (pr *pendingRequests) peek(req string) (pendingAuthorization, bool) {
	return pr.keys.openPending(req, pr.issuer, pr.now())
}

// claim binds a pending request to a signed-in session: one not bound
// yet, or bound to the session the user just replaced by signing in
// (previous, a session hash), or to this one already.
func (pr *pendingRequests) claim(fs *flowSession, req, previous string) (pendingAuthorization, bool) {
	p, ok := pr.peek(req)
	if !ok || !pr.sessions.signedIn(fs) {
		return pendingAuthorization{}, false
	}
	current := store.HashID(fs.id)
	if p.session != "" && p.session != current && (previous == "" || p.session != previous) {
		return pendingAuthorization{}, false
	}
	p.session = current
	return p, true
}

// forSession opens a pending request bound to the session, which is
// signed in.
func (pr *pendingRequests) forSession(fs *flowSession, req string) (pendingAuthorization, bool) {
	if req == "" || !pr.sessions.signedIn(fs) {
		return pendingAuthorization{}, false
	}
	p, ok := pr.peek(req)
	if !ok || p.session != store.HashID(fs.id) {
		return pendingAuthorization{}, false
	}
	return p, true
}

// use records a request as used, once: store.ErrReplayed when it was
// used before. Only a signed-in user's request gets here.
func (pr *pendingRequests) use(ctx context.Context, p pendingAuthorization) error {
	return pr.used.UseJTI(ctx, pendingJTIPrefix+pr.issuer, p.requestID, p.expires.Add(pendingClockLeeway))
}

// showExpired answers a page request whose pending authorization is gone.
func (pr *pendingRequests) showExpired(w http.ResponseWriter) {
	pr.pages.message(w, http.StatusBadRequest, "Request expired",
		"This sign-in request has expired or belongs to another sign-in. Return to the app and start again.")
}

// readForm reads a posted flow form (picker, consent): it checks the
// CSRF token and opens the pending authorization the form carries. When
// it returns false it has already answered the request.
func (pr *pendingRequests) readForm(w http.ResponseWriter, r *http.Request) (*flowSession, pendingAuthorization, bool) {
	if err := parsePageForm(w, r); err != nil {
		pr.pages.message(w, http.StatusBadRequest, "Invalid request", "The form could not be read.")
		return nil, pendingAuthorization{}, false
	}
	fs := pr.sessions.read(r)
	if !pr.sessions.checkCSRF(r, fs) {
		pr.sessions.refuseCSRF(w)
		return nil, pendingAuthorization{}, false
	}
	p, ok := pr.forSession(fs, r.PostForm.Get(pendingFieldName))
	if !ok {
		pr.showExpired(w)
		return nil, pendingAuthorization{}, false
	}
	return fs, p, true
}

// readPage opens the pending authorization a flow page (picker, consent)
// is shown for: the one its req query parameter carries, bound to the
// request's session. When it returns false it has already answered.
func (pr *pendingRequests) readPage(w http.ResponseWriter, r *http.Request) (*flowSession, pendingAuthorization, bool) {
	fs := pr.sessions.read(r)
	p, ok := pr.forSession(fs, r.URL.Query().Get(pendingFieldName))
	if !ok {
		pr.showExpired(w)
		return nil, pendingAuthorization{}, false
	}
	return fs, p, true
}

// failPending ends a signed-in user's pending request with an error sent
// to the app, using the request up.
func (s *Server) failPending(w http.ResponseWriter, r *http.Request, p pendingAuthorization, code, description string) {
	if s.usePending(w, r, p) {
		s.redirectAuthorizeError(w, r, p.redirectURI, p.state, code, description)
	}
}

// usePending uses up a signed-in user's pending request. A request used
// before gets the expired page; a store failure goes back to the app as
// an error. When it returns false it has answered the request.
func (s *Server) usePending(w http.ResponseWriter, r *http.Request, p pendingAuthorization) bool {
	err := s.pending.use(r.Context(), p)
	switch {
	case err == nil:
		return true
	case errors.Is(err, store.ErrReplayed):
		s.pending.showExpired(w)
	default:
		s.logger.Error("using up a pending authorization request failed", zap.Error(err))
		s.redirectAuthorizeError(w, r, p.redirectURI, p.state, failureCode(err), "the authorization request could not be recorded")
	}
	return false
}
