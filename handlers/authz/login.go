package authz

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/handlers/internal/throttle"
	"github.com/smartcaddy/smartauth/handlers/users"
	"github.com/smartcaddy/smartauth/store"
)

// Sign-in throttling: failed password sign-ins are counted per user name
// and per client address over a fixed window. Once a count reaches its
// limit, sign-ins for that name or from that address are refused with 429
// and Retry-After until the window ends, before any password is checked.
// An attempt is counted when it starts, so that parallel guesses cannot
// race past the limit; a successful one gives its count back. The counts
// (Server.logins, a throttle.Limiter) are the issuer's and live in the
// reload-surviving state (Options.Logins, made by NewLoginLimiter), so that a Caddy config reload does not
// reset the throttle and two sites do not share counts.
const (
	loginMaxFailuresPerUser = 5
	loginMaxFailuresPerIP   = 20
	loginFailureWindow      = 15 * time.Minute
	loginLimiterMaxEntries  = 50000
	loginMaxUsernameLength  = 256
)

// NewLoginLimiter makes an empty sign-in throttle (Options.Logins).
func NewLoginLimiter() *throttle.Limiter {
	return throttle.NewLimiter(loginFailureWindow, loginLimiterMaxEntries)
}

// loginGenericError is the only message a failed sign-in gets.
const loginGenericError = "The user name or password is incorrect."

// loginThrottledError is shown when a sign-in is throttled.
const loginThrottledError = "Too many failed sign-in attempts. Wait a few minutes and try again."

// loginPage is the data of login.html.
type loginPage struct {
	Action     string
	CSRF       string
	Req        string
	Return     string
	ClientName string
	Username   string
	Error      string
	// Password shows the password form; Providers are the identity
	// providers' "Sign in with …" links.
	Password  bool
	Providers []pageLink
}

// The return targets of the sign-in page besides a pending authorization:
// the launcher and the management page.
const (
	loginReturnLauncher = "launcher"
	loginReturnManage   = "manage"
)

// serveLogin shows the sign-in form and signs users in.
func (s *Server) serveLogin(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.showLogin(w, r)
	case http.MethodPost:
		s.postLogin(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		s.pages.message(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET or POST.")
	}
}

// loginReturnURL is where a return target sends the browser after
// sign-in.
func (s *Server) loginReturnURL(ret string) string {
	if ret == loginReturnManage {
		return s.Endpoint(PathManage)
	}
	return s.Endpoint(pathLauncher)
}

// loginReturn keeps only the return values the page knows.
func loginReturn(v string) string {
	if v == loginReturnLauncher || v == loginReturnManage {
		return v
	}
	return ""
}

// showLogin answers GET on the sign-in page: a signed-in user goes on
// with the pending request or return target, anyone else gets the form.
func (s *Server) showLogin(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req, ret := q.Get(pendingFieldName), loginReturn(q.Get("return"))
	fs, err := s.currentSession(w, r)
	if err != nil {
		s.logger.Error("sign-in session", zap.Error(err))
		s.pages.storeFailure(w, err, "The sign-in session could not be stored.")
		return
	}
	if s.sessions.signedIn(fs) {
		// Already signed in: continue a pending request not bound to
		// another session, unless the app asked for a fresh sign-in.
		if req != "" {
			if p0, ok := s.pending.peek(req); ok && !s.needsFreshSignIn(fs, p0) {
				if p, ok := s.pending.claim(fs, req, ""); ok {
					s.advanceAuthorization(w, r, fs, p)
					return
				}
			}
		}
		if ret != "" {
			seeOther(w, r, s.loginReturnURL(ret))
			return
		}
	}
	if req != "" {
		// A request that does not open (expired, altered, another
		// issuer's) is said to be gone here, not dropped from the form:
		// else the user signs in and the app never hears back.
		if _, ok := s.pending.peek(req); !ok {
			s.pending.showExpired(w)
			return
		}
	}
	if !s.cfg.PasswordLogin && len(s.idps) == 0 {
		s.pages.message(w, http.StatusUnauthorized, "Not signed in",
			"This server signs you in through your organization's sign-in, which did not identify you.")
		return
	}
	if !s.cfg.PasswordLogin && len(s.idpOrder) == 1 {
		// One way to sign in: go there directly.
		seeOther(w, r, s.idpStartURL(s.idpOrder[0], req, ret))
		return
	}
	s.renderLogin(w, r, http.StatusOK, req, ret, "", "")
}

// needsFreshSignIn tells whether a signed-in session is not enough for a
// pending request: the app asked for prompt=login, or for a sign-in no
// older than max_age, and the session is older. A request bound to the
// session already was signed in for.
func (s *Server) needsFreshSignIn(fs *flowSession, p pendingAuthorization) bool {
	if fs == nil || fs.rec == nil || (p.session != "" && p.session == store.HashID(fs.id)) {
		return false
	}
	if p.promptLogin {
		return true
	}
	return p.hasMaxAge && time.Since(fs.rec.AuthTime) > time.Duration(p.maxAge)*time.Second
}

// renderLogin shows the sign-in form with the CSRF token of its cookie
// (loginFormCSRF): nothing is stored before someone signs in.
func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, status int, req, ret, username, message string) {
	data := loginPage{Action: s.Endpoint(pathLogin), Return: ret, Username: username, Error: message, Password: s.cfg.PasswordLogin}
	if s.cfg.PasswordLogin {
		data.CSRF = s.sessions.loginFormCSRF(w, r)
	}
	sec := pageSecurity{}
	if req != "" {
		if p, ok := s.pending.peek(req); ok {
			data.Req = req
			data.ClientName = p.clientName
			// A remembered consent sends the browser from the form's
			// POST straight on to the app.
			sec.formTargets = []string{redirectOrigin(p.redirectURI)}
		}
	}
	for _, name := range s.idpOrder {
		data.Providers = append(data.Providers, pageLink{Href: s.idpStartURL(name, data.Req, ret), Text: "Sign in with " + s.idps[name].cfg.DisplayName})
	}
	s.pages.render(w, status, pageLogin, sec, data)
}

// postLogin checks a posted sign-in form (CSRF, throttle, password) and
// signs the user in with a new session.
func (s *Server) postLogin(w http.ResponseWriter, r *http.Request) {
	if !s.cfg.PasswordLogin {
		s.pages.message(w, http.StatusForbidden, "Sign-in disabled", "Password sign-in is not enabled on this server.")
		return
	}
	if err := parsePageForm(w, r); err != nil {
		s.pages.message(w, http.StatusBadRequest, "Invalid request", "The form could not be read.")
		return
	}
	if !s.sessions.checkLoginCSRF(r) {
		s.sessions.refuseCSRF(w)
		return
	}
	fs := s.sessions.read(r)
	req, ret := r.PostForm.Get(pendingFieldName), loginReturn(r.PostForm.Get("return"))
	username, password := r.PostForm.Get("username"), r.PostForm.Get("password")
	if len(username) > loginMaxUsernameLength {
		username = username[:loginMaxUsernameLength]
	}
	now := time.Now()
	userKey := "u\x00" + username
	ipKey := "a\x00" + throttle.ClientIP(r)
	if wait, ok := s.logins.Reserve(ipKey, loginMaxFailuresPerIP, now); !ok {
		s.refuseThrottled(w, r, req, ret, username, wait)
		return
	}
	if wait, ok := s.logins.Reserve(userKey, loginMaxFailuresPerUser, now); !ok {
		s.logins.Release(ipKey, false, now)
		s.refuseThrottled(w, r, req, ret, username, wait)
		return
	}
	user := s.checkPassword(username, password)
	if user == nil {
		s.logger.Info("failed sign-in", zap.String("user", s.loggableUser(username)), zap.String("remote", throttle.ClientIP(r)))
		s.recordSignIn(r, signInPassword, s.loggableUser(username), outcomeFailed)
		s.renderLogin(w, r, http.StatusOK, req, ret, username, loginGenericError)
		return
	}
	s.logins.Release(userKey, true, now)
	s.logins.Release(ipKey, false, now)
	s.recordSignIn(r, signInPassword, user.Name, outcomeOK)
	oldHash := ""
	if fs != nil {
		oldHash = store.HashID(fs.id)
	}
	nfs, err := s.sessions.start(r.Context(), w, r, user.Name, now)
	if err != nil {
		s.logger.Error("storing a sign-in session failed", zap.Error(err))
		s.pages.storeFailure(w, err, "The sign-in session could not be stored.")
		return
	}
	if req != "" {
		if p, ok := s.pending.claim(nfs, req, oldHash); ok {
			s.advanceAuthorization(w, r, nfs, p)
			return
		}
		s.pending.showExpired(w)
		return
	}
	if ret != "" {
		seeOther(w, r, s.loginReturnURL(ret))
		return
	}
	s.pages.message(w, http.StatusOK, "Signed in", "You are signed in as "+displayUserName(user)+".")
}

// displayUserName is how a user is named on the pages.
func displayUserName(u *users.User) string {
	if u.DisplayName != "" {
		return u.DisplayName
	}
	return u.Name
}

// refuseThrottled answers a throttled sign-in with 429.
func (s *Server) refuseThrottled(w http.ResponseWriter, r *http.Request, req, ret, username string, wait time.Duration) {
	secs := int((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	s.logger.Warn("sign-in throttled", zap.String("user", s.loggableUser(username)), zap.String("remote", throttle.ClientIP(r)))
	s.recordSignIn(r, signInPassword, s.loggableUser(username), outcomeThrottled)
	s.renderLogin(w, r, http.StatusTooManyRequests, req, ret, username, loginThrottledError)
}

// unknownUserLogged stands in the logs and the audit trail for a typed
// user name that names no configured user.
const unknownUserLogged = "(unknown user)"

// loggableUser is the user name a failed or throttled sign-in is logged
// with: the name when it is a configured user's, else unknownUserLogged,
// since whatever else was typed may be a password typed in the wrong
// field (and the logs must never hold one).
func (s *Server) loggableUser(username string) string {
	if _, ok := s.cfg.Users[username]; ok {
		return username
	}
	return unknownUserLogged
}

// checkPassword returns the configured user whose password this is. The
// hash may be bcrypt or argon2id, as `caddy hash-password` prints them
// (users.ComparePassword). An unknown user costs a comparison too, against
// a decoy made like the costliest configured hash, so that the time taken
// does not tell whether the name exists.
func (s *Server) checkPassword(username, password string) *users.User {
	u := s.cfg.Users[username]
	if u == nil || u.PasswordHash == "" {
		_ = users.ComparePassword(string(users.DecoyHash(s.passwordHashes())), password)
		return nil
	}
	if !users.ComparePassword(u.PasswordHash, password) {
		return nil
	}
	return u
}

// passwordHashes are the configured users' password hashes.
func (s *Server) passwordHashes() []string {
	hashes := make([]string, 0, len(s.cfg.Users))
	for _, u := range s.cfg.Users {
		if u.PasswordHash != "" {
			hashes = append(hashes, u.PasswordHash)
		}
	}
	return hashes
}

// logoutPage is the data of logout.html.
type logoutPage struct {
	Action string
	CSRF   string
	User   string
}

// serveLogout shows a sign-out button (GET) and ends the session (POST with
// the CSRF token).
func (s *Server) serveLogout(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		fs := s.sessions.read(r)
		data := logoutPage{Action: s.Endpoint(pathLogout)}
		sec := pageSecurity{}
		if s.sessions.signedIn(fs) {
			data.CSRF, data.User = fs.rec.CSRF, displayUserName(s.sessions.user(fs))
			if end := s.idpLogoutURL(r.Context(), fs.rec.Provider); end != "" {
				// The form's POST goes on to the provider's sign-out.
				sec.formTargets = []string{redirectOrigin(end)}
			}
		}
		s.pages.render(w, http.StatusOK, pageLogout, sec, data)
	case http.MethodPost:
		if err := parsePageForm(w, r); err != nil {
			s.pages.message(w, http.StatusBadRequest, "Invalid request", "The form could not be read.")
			return
		}
		fs := s.sessions.read(r)
		if !s.sessions.checkCSRF(r, fs) {
			s.sessions.refuseCSRF(w)
			return
		}
		if err := s.cfg.Store.DeleteSession(r.Context(), fs.id); err != nil {
			s.logger.Error("deleting a sign-in session failed", zap.Error(err))
		}
		s.sessions.setCookie(w, "", 0)
		if end := s.idpLogoutURL(r.Context(), fs.rec.Provider); end != "" {
			seeOther(w, r, end)
			return
		}
		s.pages.message(w, http.StatusOK, "Signed out", "You are signed out.")
	default:
		w.Header().Set("Allow", "GET, POST")
		s.pages.message(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET or POST.")
	}
}

// signedInPage starts a page for signed-in users only (the launcher, the
// management page), answering GET, HEAD and POST. A visitor who is not
// signed in is sent to the sign-in page, which returns to ret; a POST, or
// a server without password sign-in, gets a message saying why instead.
// When it returns false it has answered the request.
func (s *Server) signedInPage(w http.ResponseWriter, r *http.Request, ret, why string) (*flowSession, bool) {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST")
		s.pages.message(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET or POST.")
		return nil, false
	}
	fs, err := s.currentSession(w, r)
	if err != nil {
		s.logger.Error("sign-in session", zap.Error(err))
		s.pages.storeFailure(w, err, "The sign-in session could not be stored.")
		return nil, false
	}
	if !s.sessions.signedIn(fs) {
		if r.Method == http.MethodPost || (!s.cfg.PasswordLogin && len(s.idps) == 0) {
			s.pages.message(w, http.StatusUnauthorized, "Not signed in", why)
			return nil, false
		}
		seeOther(w, r, s.Endpoint(pathLogin)+"?"+url.Values{"return": {ret}}.Encode())
		return nil, false
	}
	return fs, true
}
