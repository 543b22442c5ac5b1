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
// the pending request. The table (pendingRequests.table) is the issuer's and
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

// pendingRequests are the issuer's pending authorization requests as the
// flow's pages see them: the shared table (Options.Pending) with the
// issuer each entry must belong to and the sign-in session it must be
// bound to, and the answers of a page whose request is gone. It is built
// by New and read-only afterwards; the table is safe for concurrent use.
type pendingRequests struct {
	// table is the issuer's table, shared across config reloads.
	table *throttle.Map[pendingAuthorization]
	// issuer is the issuer's URL as a string: an entry of another
	// issuer is not found.
	issuer string
	// sessions tell whether a request's session is signed in and read
	// it for the pages.
	sessions *sessions
	// pages answer a request whose pending authorization is gone.
	pages *pageRenderer
}

// add stores a new pending request (or replaces one) for
// pendingAuthorizationTTL from now.
func (pr *pendingRequests) add(id string, p pendingAuthorization, now time.Time) {
	pr.table.Set(id, p, now.Add(pendingAuthorizationTTL), now)
}

// peek returns the live pending request of this issuer named by id,
// whatever session it is bound to, leaving it in place.
func (pr *pendingRequests) peek(id string) (pendingAuthorization, bool) {
	p, ok := pr.table.Get(id, time.Now())
	if !ok || p.issuer != pr.issuer {
		return pendingAuthorization{}, false
	}
	return p, true
}

// remove forgets a pending request.
func (pr *pendingRequests) remove(id string) {
	pr.table.Remove(id)
}

// take removes a pending request and returns it when it is this issuer's
// and bound to the session, which is signed in. The request is used up
// either way.
func (pr *pendingRequests) take(fs *flowSession, id string) (pendingAuthorization, bool) {
	p, ok := pr.table.Take(id, time.Now())
	if !ok || p.issuer != pr.issuer || !pr.sessions.signedIn(fs) || p.session != store.HashID(fs.id) {
		return pendingAuthorization{}, false
	}
	return p, true
}

// claim binds a pending request to a session: one not bound yet, or
// bound to the session the user just replaced by signing in.
func (pr *pendingRequests) claim(fs *flowSession, id, previous string) (pendingAuthorization, bool) {
	now := time.Now()
	var claimed bool
	p := pr.table.Update(id, now, func(cur pendingAuthorization, found bool) (pendingAuthorization, time.Time, bool) {
		if !found {
			return cur, now, false
		}
		if cur.issuer == pr.issuer && (cur.session == "" || (previous != "" && cur.session == previous) || cur.session == store.HashID(fs.id)) {
			cur.session = store.HashID(fs.id)
			claimed = true
		}
		return cur, now.Add(pendingAuthorizationTTL), true
	})
	return p, claimed
}

// forSession returns a pending request bound to the session.
func (pr *pendingRequests) forSession(fs *flowSession, id string) (pendingAuthorization, bool) {
	if id == "" || !pr.sessions.signedIn(fs) {
		return pendingAuthorization{}, false
	}
	p, ok := pr.table.Get(id, time.Now())
	if !ok || p.issuer != pr.issuer || p.session != store.HashID(fs.id) {
		return pendingAuthorization{}, false
	}
	return p, true
}

// save writes back a changed pending request.
func (pr *pendingRequests) save(id string, p pendingAuthorization) {
	now := time.Now()
	pr.table.Update(id, now, func(cur pendingAuthorization, found bool) (pendingAuthorization, time.Time, bool) {
		return p, now.Add(pendingAuthorizationTTL), found
	})
}

// showExpired answers a page request whose pending authorization is gone.
func (pr *pendingRequests) showExpired(w http.ResponseWriter) {
	pr.pages.message(w, http.StatusBadRequest, "Request expired",
		"This sign-in request has expired or belongs to another sign-in. Return to the app and start again.")
}

// failPending ends a pending request with an error sent to the app.
func (s *Server) failPending(w http.ResponseWriter, r *http.Request, id string, p pendingAuthorization, code, description string) {
	s.pending.remove(id)
	s.redirectAuthorizeError(w, r, p.redirectURI, p.state, code, description)
}

// readForm reads a posted flow form (picker, consent): it checks the
// CSRF token and finds the pending authorization the form names. When it
// returns false it has already answered the request.
func (pr *pendingRequests) readForm(w http.ResponseWriter, r *http.Request) (*flowSession, string, pendingAuthorization, bool) {
	if err := parsePageForm(w, r); err != nil {
		pr.pages.message(w, http.StatusBadRequest, "Invalid request", "The form could not be read.")
		return nil, "", pendingAuthorization{}, false
	}
	fs := pr.sessions.read(r)
	if !pr.sessions.checkCSRF(r, fs) {
		pr.sessions.refuseCSRF(w)
		return nil, "", pendingAuthorization{}, false
	}
	id := r.PostForm.Get(pendingFieldName)
	p, ok := pr.forSession(fs, id)
	if !ok {
		pr.showExpired(w)
		return nil, "", pendingAuthorization{}, false
	}
	return fs, id, p, true
}

// readPage finds the pending authorization a flow page (picker, consent)
// is shown for: the one its req query parameter names, bound to the
// request's session. When it returns false it has already answered.
func (pr *pendingRequests) readPage(w http.ResponseWriter, r *http.Request) (*flowSession, string, pendingAuthorization, bool) {
	fs := pr.sessions.read(r)
	id := r.URL.Query().Get(pendingFieldName)
	p, ok := pr.forSession(fs, id)
	if !ok {
		pr.showExpired(w)
		return nil, "", pendingAuthorization{}, false
	}
	return fs, id, p, true
}
