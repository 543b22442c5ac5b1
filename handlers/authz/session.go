package authz

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/smartcaddy/smartauth/handlers/clients"
	"github.com/smartcaddy/smartauth/handlers/users"
	"github.com/smartcaddy/smartauth/store"
	"go.uber.org/zap"
)

// sessionCookieName names the sign-in session cookie. Its value is a random
// session id; the record (user, sign-in time, CSRF secret) is in the store,
// under the id's hash.
const sessionCookieName = "smart_auth_session"

// anonymousSessionTTL bounds a session that carries only a CSRF secret for
// the sign-in form, before anyone signed in.
const anonymousSessionTTL = 30 * time.Minute

// csrfFieldName is the hidden input of every form of the flow.
const csrfFieldName = "csrf_token"

// sessions are the sign-in sessions of the flow's pages: the session
// cookie (its path, its Secure attribute, its lifetime), the records in
// the store behind it, and the CSRF check of the forms, bound to a
// session. It is built by New and read-only afterwards.
type sessions struct {
	// store holds the session records (Options.Store).
	store SessionStore
	// issuer is the authorization server's URL (Options.Issuer): the
	// cookie's path and Secure attribute and the origin forms must come
	// from.
	issuer *url.URL
	// issuerPath is the issuer's path without a trailing slash, "" for
	// the root.
	issuerPath string
	// lifetime is how long a signed-in session lives
	// (Options.Lifetimes.Session).
	lifetime time.Duration
	// users are the configured users by name (Options.Users).
	users map[string]*users.User
	// pages answer a refused form.
	pages *pageRenderer
	// logger receives store failures.
	logger *zap.Logger
}

// cookiePath is the cookie path: the issuer's path, or "/".
func (ss *sessions) cookiePath() string {
	if ss.issuerPath == "" {
		return "/"
	}
	return ss.issuerPath
}

// cookieSecure tells whether cookies get the Secure attribute: always,
// except for an http issuer on a loopback host (development).
func (ss *sessions) cookieSecure() bool {
	return !(ss.issuer.Scheme == "http" && clients.IsLoopbackHost(ss.issuer.Hostname()))
}

// flowSession is the sign-in session of a request, if any.
type flowSession struct {
	id  string
	rec *store.Session
}

// signedIn tells whether the session names a configured user.
func (ss *sessions) signedIn(fs *flowSession) bool {
	return fs != nil && fs.rec != nil && fs.rec.User != "" && ss.users[fs.rec.User] != nil
}

// user returns the session's configured user, or nil.
func (ss *sessions) user(fs *flowSession) *users.User {
	if !ss.signedIn(fs) {
		return nil
	}
	return ss.users[fs.rec.User]
}

// read returns the live session named by the request's cookie, or nil.
func (ss *sessions) read(r *http.Request) *flowSession {
	c, err := r.Cookie(sessionCookieName)
	if err != nil || c.Value == "" || len(c.Value) > 128 {
		return nil
	}
	rec, err := ss.store.GetSession(r.Context(), c.Value)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			ss.logger.Error("reading a sign-in session failed", zap.Error(err))
		}
		return nil
	}
	return &flowSession{id: c.Value, rec: rec}
}

// start stores a fresh session under a new id and sets its cookie. An
// old session named by the request's cookie is deleted: the id changes at
// every sign-in, so that an id planted before sign-in is worthless.
func (ss *sessions) start(ctx context.Context, w http.ResponseWriter, r *http.Request, user string, authTime time.Time) (*flowSession, error) {
	if old, err := r.Cookie(sessionCookieName); err == nil && old.Value != "" && len(old.Value) <= 128 {
		if err := ss.store.DeleteSession(ctx, old.Value); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	ttl := ss.lifetime
	if user == "" {
		ttl = min(ttl, anonymousSessionTTL)
	}
	fs := &flowSession{id: store.NewSecret(), rec: &store.Session{User: user, AuthTime: authTime, CSRF: store.NewSecret()}}
	if err := ss.store.SaveSession(ctx, fs.id, fs.rec, ttl); err != nil {
		return nil, err
	}
	ss.setCookie(w, fs.id, ttl)
	return fs, nil
}

// setCookie sets (or, with an empty id, clears) the session cookie.
func (ss *sessions) setCookie(w http.ResponseWriter, id string, ttl time.Duration) {
	c := &http.Cookie{
		Name:     sessionCookieName,
		Value:    id,
		Path:     ss.cookiePath(),
		HttpOnly: true,
		Secure:   ss.cookieSecure(),
		SameSite: http.SameSiteLaxMode,
	}
	if id == "" {
		c.MaxAge = -1
	} else {
		c.MaxAge = int(ttl / time.Second)
	}
	http.SetCookie(w, c)
}

// forForm returns the request's session, creating an anonymous one when
// there is none, so that a form can carry a CSRF token bound to it.
func (ss *sessions) forForm(w http.ResponseWriter, r *http.Request) (*flowSession, error) {
	if fs := ss.read(r); fs != nil && fs.rec.CSRF != "" {
		return fs, nil
	}
	return ss.start(r.Context(), w, r, "", time.Time{})
}

// checkCSRF tells whether a POST carries the session's CSRF token and, when
// the browser says where it comes from, comes from this server's origin.
// The form must have been parsed.
func (ss *sessions) checkCSRF(r *http.Request, fs *flowSession) bool {
	if fs == nil || fs.rec == nil || fs.rec.CSRF == "" {
		return false
	}
	if origin := r.Header.Get("Origin"); origin != "" && origin != "null" && origin != ss.issuerOrigin() {
		return false
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return false
	}
	got := r.PostForm.Get(csrfFieldName)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(fs.rec.CSRF)) == 1
}

// issuerOrigin is the scheme and host of the issuer.
func (ss *sessions) issuerOrigin() string {
	return ss.issuer.Scheme + "://" + ss.issuer.Host
}

// refuseCSRF answers a form submission that failed the CSRF check.
func (ss *sessions) refuseCSRF(w http.ResponseWriter) {
	ss.pages.message(w, http.StatusForbidden, "Request refused",
		"This form expired or did not come from this site. Go back, reload the page and try again.")
}

// parsePageForm parses a form POST of a page, with a bounded body.
func parsePageForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	return r.ParseForm()
}

// seeOther redirects with 303 and the page headers (never cached, never
// leaking the URL in a Referer).
func seeOther(w http.ResponseWriter, r *http.Request, target string) {
	setPageHeaders(w.Header(), "default-src 'none'; frame-ancestors 'none'; base-uri 'none'")
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// withQuery appends parameters to a URL, keeping its existing query as it
// is.
func withQuery(base string, v url.Values) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	if u.RawQuery == "" {
		u.RawQuery = v.Encode()
	} else {
		u.RawQuery += "&" + v.Encode()
	}
	return u.String()
}
