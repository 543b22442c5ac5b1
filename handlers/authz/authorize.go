package authz

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/handlers/clients"
	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/handlers/users"
	"github.com/smartcaddy/smartauth/scopes"
	"github.com/smartcaddy/smartauth/store"
)

// authorizeParams are the parameters that must not be repeated.
var authorizeParams = []string{
	"response_type", "client_id", "redirect_uri", "scope", "state", "aud", "resource",
	"launch", "code_challenge", "code_challenge_method", "nonce", "prompt", "response_mode", "max_age",
}

// pkceChallengePattern is an S256 code challenge: BASE64URL(SHA-256), 43
// characters.
var pkceChallengePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// authorizeFailure is a validation failure of an authorization request.
// Without a redirect URI it is shown on an error page.
type authorizeFailure struct {
	redirectURI string
	state       string
	code        string
	description string
}

// serveAuthorize is the authorization endpoint (GET and POST).
func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	var params url.Values
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		params = r.URL.Query()
	case http.MethodPost:
		if err := parsePageForm(w, r); err != nil {
			s.pages.message(w, http.StatusBadRequest, "Invalid request", "The authorization request could not be read.")
			return
		}
		params = r.PostForm
	default:
		w.Header().Set("Allow", "GET, POST")
		s.pages.message(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET or POST.")
		return
	}
	p, fail := s.validateAuthorize(r.Context(), params)
	if fail != nil {
		if fail.redirectURI == "" {
			s.pages.message(w, http.StatusBadRequest, "This app's sign-in request is invalid", fail.description)
			return
		}
		s.redirectAuthorizeError(w, r, fail.redirectURI, fail.state, fail.code, fail.description)
		return
	}
	fs, err := s.currentSession(w, r)
	if err != nil {
		s.logger.Error("sign-in session", zap.Error(err))
		s.redirectAuthorizeError(w, r, p.redirectURI, p.state, failureCode(err), "the sign-in session could not be stored")
		return
	}
	// The request travels sealed as JSON, which keeps only UTF-8 text
	// (RFC 6749 allows printable ASCII in state).
	if !utf8.ValidString(p.state) || !utf8.ValidString(p.nonce) {
		s.redirectAuthorizeError(w, r, p.redirectURI, p.state, "invalid_request", "state and nonce must be UTF-8 text")
		return
	}
	if len(s.pending.begin(p)) > pendingMaxSealed {
		s.redirectAuthorizeError(w, r, p.redirectURI, p.state, "invalid_request",
			"the request is too large to keep (state, nonce or launch context)")
		return
	}
	if !s.sessions.signedIn(fs) || s.needsFreshSignIn(fs, *p) {
		if p.promptNone {
			s.redirectAuthorizeError(w, r, p.redirectURI, p.state, "login_required", "the user is not signed in")
			return
		}
		if !s.cfg.PasswordLogin && len(s.idps) == 0 {
			s.pages.message(w, http.StatusUnauthorized, "Not signed in",
				"This server signs you in through your organization's sign-in, which did not identify you. Sign in there, then start the app again.")
			return
		}
		seeOther(w, r, s.Endpoint(pathLogin)+"?"+url.Values{pendingFieldName: {s.pending.seal(*p)}}.Encode())
		return
	}
	p.session = store.HashID(fs.id)
	s.advanceAuthorization(w, r, fs, *p)
}

// validateAuthorize checks an authorization request and, for an EHR
// launch, reads the launch.
func (s *Server) validateAuthorize(ctx context.Context, params url.Values) (*pendingAuthorization, *authorizeFailure) {
	page := func(desc string) *authorizeFailure { return &authorizeFailure{description: desc} }
	if len(params["client_id"]) > 1 || len(params["redirect_uri"]) > 1 {
		return nil, page("The request repeats client_id or redirect_uri.")
	}
	clientID := params.Get("client_id")
	if clientID == "" {
		return nil, page("The request names no app (client_id is missing).")
	}
	client, err := s.registry.Lookup(ctx, clientID)
	if err != nil || client == nil {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.logger.Error("looking up a client failed", zap.Error(err))
		}
		return nil, page("The app is not registered with this server.")
	}
	redirectURI := params.Get("redirect_uri")
	switch {
	case redirectURI == "" && len(client.RedirectURIs) == 1:
		redirectURI = client.RedirectURIs[0]
	case redirectURI == "":
		return nil, page("The request has no redirect_uri.")
	case !clients.RedirectURIRegistered(client.RedirectURIs, redirectURI):
		return nil, page("The redirect URI is not registered for this app.")
	}

	// From here on, failures go back to the app.
	fail := &authorizeFailure{redirectURI: redirectURI, code: "invalid_request"}
	if len(params["state"]) == 1 {
		fail.state = params.Get("state")
	}
	bad := func(code, desc string) (*pendingAuthorization, *authorizeFailure) {
		fail.code, fail.description = code, desc
		return nil, fail
	}
	for _, name := range authorizeParams {
		if len(params[name]) > 1 {
			return bad("invalid_request", "parameter "+name+" is repeated")
		}
	}
	switch rt := params.Get("response_type"); rt {
	case "code":
	case "":
		return bad("invalid_request", "response_type is required")
	default:
		return bad("unsupported_response_type", "only response_type=code is supported")
	}
	if !oauth.GrantAuthorizationCode.In(client.GrantTypes) {
		return bad("unauthorized_client", "the client may not use the authorization code grant")
	}
	state := params.Get("state")
	if state == "" {
		return bad("invalid_request", "state is required")
	}
	if rm := params.Get("response_mode"); rm != "" && rm != "query" {
		return bad("invalid_request", "only response_mode=query is supported")
	}
	switch m := params.Get("code_challenge_method"); m {
	case "S256":
	case "":
		return bad("invalid_request", "code_challenge_method=S256 is required (PKCE)")
	default:
		return bad("invalid_request", "code_challenge_method must be S256")
	}
	challenge := params.Get("code_challenge")
	if challenge == "" {
		return bad("invalid_request", "code_challenge is required (PKCE with S256)")
	}
	if !pkceChallengePattern.MatchString(challenge) {
		return bad("invalid_request", "code_challenge is not an S256 challenge")
	}
	aud, resource := params.Get("aud"), params.Get("resource")
	if aud == "" && resource == "" {
		return bad("invalid_request", "aud is required: the FHIR base URL")
	}
	for _, a := range []string{aud, resource} {
		if a != "" && !s.isFHIRBase(a) {
			return bad("invalid_request", "aud is not this server's FHIR base URL")
		}
	}
	nonce := params.Get("nonce")
	if len(nonce) > 512 {
		return bad("invalid_request", "nonce is too long")
	}
	promptNone, promptLogin := false, false
	if pr := params.Get("prompt"); pr != "" {
		words := strings.Fields(pr)
		promptNone = slices.Contains(words, "none")
		promptLogin = slices.Contains(words, "login")
		if promptNone && len(words) > 1 {
			return bad("invalid_request", "prompt=none cannot be combined")
		}
	}
	maxAge, hasMaxAge := 0, params.Has("max_age")
	if hasMaxAge {
		n, err := strconv.Atoi(params.Get("max_age"))
		if err != nil || n < 0 {
			return bad("invalid_request", "max_age must be a number of seconds")
		}
		maxAge = n
	}
	requested := scopes.Split(params.Get("scope"))
	if len(requested) == 0 {
		return bad("invalid_scope", "scope is required")
	}
	// system/ scopes are for backend services (client_credentials) and
	// never part of a grant with a user (reach.go).
	offered := users.WithoutSystemScopes(scopes.Grant(requested, client.Scopes))
	if len(offered) == 0 {
		return bad("invalid_scope", "none of the requested scopes is allowed for this client (system/ scopes are only for backend services)")
	}
	p := &pendingAuthorization{
		issuer:      s.cfg.Issuer.String(),
		clientID:    client.ID,
		clientName:  clientDisplayName(client),
		redirectURI: redirectURI,
		state:       state,
		nonce:       nonce,
		challenge:   challenge,
		offered:     offered,
		promptNone:  promptNone,
		promptLogin: promptLogin,
		maxAge:      maxAge,
		hasMaxAge:   hasMaxAge,
	}
	if launchID := params.Get("launch"); launchID != "" && slices.Contains(offered, "launch") {
		// The launch is only read here: it is used up when the code is
		// issued (finishAuthorization), so that someone who merely sees
		// its id cannot spoil it, and checked against the user who signs
		// in (checkLaunchUser).
		l, err := s.cfg.Store.GetLaunch(ctx, launchID)
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				s.logger.Error("reading a launch failed", zap.Error(err))
				return bad(failureCode(err), "the launch could not be read")
			}
			return bad("invalid_request", "invalid launch")
		}
		if l.ClientID != client.ID {
			return bad("invalid_request", "invalid launch")
		}
		p.context = l.LaunchContext
		p.ehrLaunch = true
		p.launchID = launchID
		p.launchUser = l.User
	}
	return p, nil
}

// clientDisplayName is the name shown to users for a client.
func clientDisplayName(c *store.Client) string {
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

// isFHIRBase tells whether an aud value names the configured FHIR base; a
// trailing slash is tolerated.
func (s *Server) isFHIRBase(aud string) bool {
	want := strings.TrimSuffix(s.cfg.FHIRBase.String(), "/")
	return strings.TrimSuffix(aud, "/") == want
}

// redirectAuthorizeError sends an error back to the app (RFC 6749
// §4.1.2.1), with iss (RFC 9207).
func (s *Server) redirectAuthorizeError(w http.ResponseWriter, r *http.Request, redirectURI, state, code, description string) {
	v := url.Values{"error": {code}}
	if description != "" {
		v.Set("error_description", description)
	}
	if state != "" {
		v.Set("state", state)
	}
	v.Set("iss", s.cfg.Issuer.String())
	seeOther(w, r, withQuery(redirectURI, v))
}

// currentSession returns the request's sign-in session. In trusted
// identity mode, a user named by {http.auth.user.id} who is configured
// gets a session (a new one, when the session was someone else's).
func (s *Server) currentSession(w http.ResponseWriter, r *http.Request) (*flowSession, error) {
	fs := s.sessions.read(r)
	if !s.cfg.TrustedIdentity {
		return fs, nil
	}
	name := trustedUserID(r)
	if name == "" || s.cfg.Users[name] == nil {
		if name != "" && !s.sessions.signedIn(fs) {
			s.recordSignIn(r, signInTrusted, name, outcomeFailed) // an identity that names no user
		}
		return fs, nil
	}
	if s.sessions.signedIn(fs) && fs.rec.User == name {
		return fs, nil
	}
	nfs, err := s.sessions.start(r.Context(), w, r, name, time.Now())
	if err == nil {
		s.recordSignIn(r, signInTrusted, name, outcomeOK)
	}
	return nfs, err
}

// trustedUserID is the user a preceding Caddy authentication handler
// established. The candidate placeholders are never trusted.
func trustedUserID(r *http.Request) string {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok || repl == nil {
		return ""
	}
	v, _ := repl.GetString("http.auth.user.id")
	return v
}

// advanceAuthorization takes a signed-in user's pending request to its
// next step: the patient picker, the consent page, or the code. The
// request travels on sealed as it is now (bound to the session, with the
// patient chosen).
func (s *Server) advanceAuthorization(w http.ResponseWriter, r *http.Request, fs *flowSession, p pendingAuthorization) {
	user := s.sessions.user(fs)
	if user == nil || p.session != store.HashID(fs.id) {
		s.pending.showExpired(w)
		return
	}
	if p.ehrLaunch && !s.checkLaunchUser(w, r, p, user) {
		return
	}
	if fs.rec.Federated != nil && user.FHIRUser == "" && scopeNeedsFHIRUser(p.offered) {
		// An identity provider's user whose claims gave no usable
		// fhirUser can use apps that do not ask for it, not this one.
		s.idpFailure(w, http.StatusForbidden, "Your health-record identity is unknown",
			p.clientName+" needs to know who you are in the health record, and your organization's sign-in did not say. "+
				"Ask your organization's service desk to link your account to your health-record identity (fhirUser).",
			&p, "access_denied")
		return
	}
	if !p.ehrLaunch && p.context.Patient == "" && slices.Contains(p.offered, "launch/patient") {
		if own, ok := strings.CutPrefix(user.FHIRUser, "Patient/"); ok {
			p.context.Patient = own
		} else if len(user.Patients) > 0 || s.mayUsePatientSearch(user) {
			if p.promptNone {
				s.failPending(w, r, p, "interaction_required", "a patient must be chosen")
				return
			}
			seeOther(w, r, s.Endpoint(pathPicker)+"?"+url.Values{pendingFieldName: {s.pending.seal(p)}}.Encode())
			return
		}
	}
	shown := consentScopes(p, user)
	if s.cfg.RememberConsent > 0 {
		c, err := s.cfg.Store.GetConsent(r.Context(), user.Name, p.clientID)
		if err == nil && coversScopes(c.Scopes, shown) {
			s.finishAuthorization(w, r, fs, p, shown)
			return
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.logger.Error("reading a remembered consent failed", zap.Error(err))
		}
	}
	if p.promptNone {
		s.failPending(w, r, p, "consent_required", "the user must consent")
		return
	}
	seeOther(w, r, s.Endpoint(pathConsent)+"?"+url.Values{pendingFieldName: {s.pending.seal(p)}}.Encode())
}

// consentScopes are the scopes the user is asked about: the offered ones,
// without patient/ scopes when no patient is in context (they cannot be
// granted then).
//
// A user with configured scopes (User.Scopes) is asked only about the
// resource scopes those cover: a user cannot grant an app more than the
// user may do.
func consentScopes(p pendingAuthorization, u *users.User) []string {
	out := make([]string, 0, len(p.offered))
	for _, sc := range p.offered {
		if p.context.Patient == "" && scopes.NeedsPatient([]string{sc}) {
			continue
		}
		if !users.MayGrant(u, sc) {
			continue
		}
		out = append(out, sc)
	}
	return out
}

// coversScopes tells whether every wanted scope is in have.
func coversScopes(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// finishAuthorization issues the code for a signed-in user's pending
// request and sends the browser back to the app. The pending request is
// used up first, whatever follows: a request used before gets the expired
// page and no code.
func (s *Server) finishAuthorization(w http.ResponseWriter, r *http.Request, fs *flowSession, p pendingAuthorization, granted []string) {
	if !s.sessions.signedIn(fs) || p.session != store.HashID(fs.id) {
		s.pending.showExpired(w)
		return
	}
	if !s.usePending(w, r, p) {
		return
	}
	// The last word on what the grant may hold, whatever path led here.
	user := s.sessions.user(fs)
	rc := s.users.Reach(user)
	if user == nil || (p.context.Patient != "" && !rc.PatientAllowed(p.context.Patient)) {
		s.redirectAuthorizeError(w, r, p.redirectURI, p.state, "access_denied", "the patient in context is not one the user may reach")
		return
	}
	kept := granted[:0:0]
	for _, sc := range granted {
		if users.MayGrant(user, sc) {
			kept = append(kept, sc)
		}
	}
	granted = kept
	if p.launchID != "" {
		if _, err := s.cfg.Store.ConsumeLaunch(r.Context(), p.launchID); err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				s.logger.Error("using up a launch failed", zap.Error(err))
				s.redirectAuthorizeError(w, r, p.redirectURI, p.state, failureCode(err), "the launch could not be used")
				return
			}
			s.redirectAuthorizeError(w, r, p.redirectURI, p.state, "invalid_request", "the launch was already used or has expired")
			return
		}
	}
	if p.context.Patient == "" && scopes.NeedsPatient(granted) {
		kept := make([]string, 0, len(granted))
		for _, sc := range granted {
			if !scopes.NeedsPatient([]string{sc}) {
				kept = append(kept, sc)
			}
		}
		granted = kept
	}
	code := store.NewSecret()
	rec := &store.AuthCode{
		ClientID:      p.clientID,
		RedirectURI:   p.redirectURI,
		CodeChallenge: p.challenge,
		Scope:         strings.Join(granted, " "),
		Subject:       fs.rec.User,
		Nonce:         p.nonce,
		AuthTime:      fs.rec.AuthTime,
		SessionHash:   store.HashID(fs.id),
		Context:       p.context,
		FamilyID:      store.NewSecret(),
		Federated:     fs.rec.Federated,
	}
	ttl := s.cfg.Lifetimes.Code
	if err := s.cfg.Store.SaveCode(r.Context(), code, rec, ttl); err != nil {
		s.logger.Error("saving an authorization code failed", zap.Error(err))
		s.redirectAuthorizeError(w, r, p.redirectURI, p.state, failureCode(err), "the authorization could not be stored")
		return
	}
	seeOther(w, r, withQuery(p.redirectURI, url.Values{
		"code":  {code},
		"state": {p.state},
		"iss":   {s.cfg.Issuer.String()},
	}))
}

// redirectOrigin is the origin of a redirect URI as a CSP source: the
// scheme and host, or the scheme alone for a custom scheme.
func redirectOrigin(redirectURI string) string {
	u, err := url.Parse(redirectURI)
	if err != nil || u.Scheme == "" {
		return ""
	}
	if u.Host == "" {
		return u.Scheme + ":"
	}
	return u.Scheme + "://" + u.Host
}
