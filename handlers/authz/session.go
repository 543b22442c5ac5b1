package authz

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
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

// loginCSRFCookieName names the cookie of the sign-in form's CSRF check
// before sign-in (a signed double submit): a random value, whose HMAC
// under the site keys is the form's token. Nothing is stored: any
// instance checks it.
const loginCSRFCookieName = "smart_auth_csrf"

// loginCSRFTTL is how long the sign-in form's CSRF cookie lives; a form
// shown again refreshes it.
const loginCSRFTTL = time.Hour

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
	// federation finds the identity providers' users without a
	// configured entry (Options.Federation).
	federation *users.Federation
	// pages answer a refused form.
	pages *pageRenderer
	// logger receives store failures.
	logger *zap.Logger
	// keys sign the sign-in form's CSRF cookie (seal.go).
	keys *siteKeys
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

// signedIn tells whether the session names a user who (still) exists: a
// configured user, or an identity provider's user without a configured
// entry whose provider still accepts it.
func (ss *sessions) signedIn(fs *flowSession) bool {
	return ss.user(fs) != nil
}

// user returns the session's user, or nil.
func (ss *sessions) user(fs *flowSession) *users.User {
	if fs == nil || fs.rec == nil || fs.rec.User == "" {
		return nil
	}
	return users.Lookup(ss.users, ss.federation, fs.rec.User, fs.rec.Federated)
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

// start stores a fresh session of a signed-in user under a new id and
// sets its cookie. An old session named by the request's cookie is
// deleted: the id changes at every sign-in, so that an id planted before
// sign-in is worthless. Sessions are only ever stored for a user who has
// signed in.
func (ss *sessions) start(ctx context.Context, w http.ResponseWriter, r *http.Request, user string, authTime time.Time) (*flowSession, error) {
	return ss.startRecord(ctx, w, r, &store.Session{User: user, AuthTime: authTime})
}

// startRecord is start with the session's record (its user, sign-in time
// and, for a sign-in through an identity provider, the provider and the
// unlisted user's profile); the CSRF secret is made here.
func (ss *sessions) startRecord(ctx context.Context, w http.ResponseWriter, r *http.Request, rec *store.Session) (*flowSession, error) {
	if old, err := r.Cookie(sessionCookieName); err == nil && old.Value != "" && len(old.Value) <= 128 {
		if err := ss.store.DeleteSession(ctx, old.Value); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	if rec.User == "" {
		return nil, errors.New("authz: a sign-in session without a user")
	}
	ttl := ss.lifetime
	rec.CSRF = store.NewSecret()
	fs := &flowSession{id: store.NewSecret(), rec: rec}
	if err := ss.store.SaveSession(ctx, fs.id, fs.rec, ttl); err != nil {
		return nil, err
	}
	ss.setCookie(w, fs.id, ttl)
	return fs, nil
}

// setCookie sets (or, with an empty id, clears) the session cookie.
func (ss *sessions) setCookie(w http.ResponseWriter, id string, ttl time.Duration) {
	ss.setNamedCookie(w, sessionCookieName, id, ttl)
}

// setNamedCookie sets (or, with an empty value, clears) a cookie of the
// flow: HttpOnly, SameSite=Lax, Secure except for a loopback http issuer,
// on the issuer's path.
func (ss *sessions) setNamedCookie(w http.ResponseWriter, name, value string, ttl time.Duration) {
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     ss.cookiePath(),
		HttpOnly: true,
		Secure:   ss.cookieSecure(),
		SameSite: http.SameSiteLaxMode,
	}
	if value == "" {
		c.MaxAge = -1
	} else {
		c.MaxAge = int(ttl / time.Second)
	}
	http.SetCookie(w, c)
}

// loginFormCSRF returns the sign-in form's CSRF token: the HMAC of the
// request's CSRF cookie, or of a new random value whose cookie it sets.
// The cookie is set again either way, to refresh its lifetime.
func (ss *sessions) loginFormCSRF(w http.ResponseWriter, r *http.Request) string {
	value := ""
	if c, err := r.Cookie(loginCSRFCookieName); err == nil && validCookieSecret(c.Value) {
		value = c.Value
	} else {
		value = store.NewSecret()
	}
	ss.setNamedCookie(w, loginCSRFCookieName, value, loginCSRFTTL)
	return ss.keys.csrfToken(ss.issuer.String(), value)
}

// validCookieSecret tells whether a cookie value has the form of
// store.NewSecret: 43 base64url characters.
func validCookieSecret(v string) bool {
	if len(v) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(v)
	return err == nil
}

// checkLoginCSRF tells whether a sign-in POST carries the token of its
// CSRF cookie and passes the origin check. Nothing is read from the
// store. The form must have been parsed.
func (ss *sessions) checkLoginCSRF(r *http.Request) bool {
	c, err := r.Cookie(loginCSRFCookieName)
	if err != nil || !validCookieSecret(c.Value) || !ss.sameOrigin(r) {
		return false
	}
	got := r.PostForm.Get(csrfFieldName)
	want := ss.keys.csrfToken(ss.issuer.String(), c.Value)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// checkCSRF tells whether a POST of a signed-in page carries the
// session's CSRF token and passes the origin check. The form must have
// been parsed.
func (ss *sessions) checkCSRF(r *http.Request, fs *flowSession) bool {
	if fs == nil || fs.rec == nil || fs.rec.CSRF == "" || !ss.sameOrigin(r) {
		return false
	}
	got := r.PostForm.Get(csrfFieldName)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(fs.rec.CSRF)) == 1
}

// sameOrigin tells whether a POST, when the browser says where it comes
// from, comes from this server's origin.
func (ss *sessions) sameOrigin(r *http.Request) bool {
	if origin := r.Header.Get("Origin"); origin != "" && origin != "null" && origin != ss.issuerOrigin() {
		return false
	}
	return r.Header.Get("Sec-Fetch-Site") != "cross-site"
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
