package authz

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"go.uber.org/zap"
	"golang.org/x/oauth2"

	"github.com/smartcaddy/smartauth/store"
)

// Sign-in through an identity provider, the relying-party side of the
// OpenID Connect authorization code flow:
//
//   - GET {issuer}/login/idp?provider=…[&req=…|&return=…] (the sign-in
//     page's "Sign in with …" link) makes a state, a nonce and a PKCE
//     verifier, seals them with the pending request into the state
//     cookie (idp_state.go) and sends the browser to the provider's
//     authorization endpoint, with prompt=login and max_age when the app
//     asked for a fresh sign-in;
//   - GET {issuer}/login/idp/callback is where the provider sends the
//     browser back: the state must match the browser's state cookie, the
//     RFC 9207 iss parameter the provider's issuer (required when the
//     provider advertises it), the code is exchanged with the verifier,
//     the id_token verified (go-oidc: signature, issuer, audience, expiry
//     with the configured clock skew; here: nonce, azp, at_hash and
//     auth_time when a fresh sign-in was asked for), the user mapped
//     (idp_users.go), the state recorded as used, and only then a session
//     started. The provider's tokens are dropped there: never stored,
//     logged nor passed to an app.
const (
	pathIDPStart    = "/login/idp"
	pathIDPCallback = "/login/idp/callback"
	// idpJTIPrefix namespaces the used states in UseJTI, followed by
	// the provider's issuer.
	idpJTIPrefix = "idp-state:"
)

// pageLink is a link offered on a message page.
type pageLink struct {
	Href string
	Text string
}

// idpStartURL is the sign-in page's link to a provider.
func (s *Server) idpStartURL(provider, req, ret string) string {
	v := url.Values{"provider": {provider}}
	if req != "" {
		v.Set(pendingFieldName, req)
	}
	if ret != "" {
		v.Set("return", ret)
	}
	return s.Endpoint(pathIDPStart) + "?" + v.Encode()
}

// serveIDPStart sends the browser to a provider's sign-in.
func (s *Server) serveIDPStart(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		s.pages.message(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET.")
		return
	}
	q := r.URL.Query()
	c := s.idps[q.Get("provider")]
	if c == nil {
		s.pages.message(w, http.StatusNotFound, "Unknown sign-in service", "This server does not sign in through that service. Go back and choose another.")
		return
	}
	now := time.Now()
	st := idpState{
		Provider: c.cfg.Name, State: store.NewSecret(), Nonce: store.NewSecret(), Verifier: oauth2.GenerateVerifier(),
		Req: q.Get(pendingFieldName), Return: loginReturn(q.Get("return")),
		Started: now.UnixNano(), Expires: now.Add(idpStateTTL).UnixNano(),
	}
	p, ok := s.idpPending(w, st.Req)
	if !ok {
		return
	}
	if p != nil {
		st.PromptLogin = p.promptLogin
		if p.hasMaxAge {
			ma := p.maxAge
			st.MaxAge = &ma
		}
	}
	d, ok := s.idpDiscover(w, r, c, p)
	if !ok {
		return
	}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(st.Verifier), oidc.Nonce(st.Nonce)}
	if st.PromptLogin {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", "login"))
	}
	if st.MaxAge != nil {
		opts = append(opts, oauth2.SetAuthURLParam("max_age", strconv.Itoa(*st.MaxAge)))
	}
	if !s.setIDPState(w, st) {
		s.idpFailure(w, http.StatusBadRequest, "Sign-in not possible", "This app's request is too large to sign in through "+
			c.cfg.DisplayName+". Ask the app's vendor to send a smaller request.", p, "invalid_request")
		return
	}
	seeOther(w, r, c.oauth2Config(d, s.Endpoint(pathIDPCallback)).AuthCodeURL(st.State, opts...))
}

// serveIDPCallback receives the provider's answer and signs the user in.
// Every failure shows a page saying what happened and what to do (with a
// way back to the app, which then gets the error), and leaves nothing
// behind: no session, no used request.
func (s *Server) serveIDPCallback(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		s.pages.message(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET.")
		return
	}
	q := r.URL.Query()
	state := q.Get("state")
	st, ok := s.readIDPState(r, state, time.Now())
	if state != "" {
		s.clearIDPState(w, state)
	}
	c := s.idps[st.Provider]
	if !ok || c == nil {
		s.pages.message(w, http.StatusBadRequest, "Sign-in could not be completed",
			"This answer from the sign-in service does not belong to a sign-in started in this browser, was already used, "+
				"or came after more than 10 minutes. Go back to the app and start again.")
		return
	}
	p, ok := s.idpPending(w, st.Req)
	if !ok {
		return
	}
	d, ok := s.idpDiscover(w, r, c, p)
	if !ok {
		return
	}
	if iss := q.Get("iss"); q.Has("iss") || d.meta.IssParam {
		if iss != c.cfg.Issuer {
			s.logger.Warn("identity provider answer with the wrong iss (RFC 9207): refused as a possible mix-up attack",
				zap.String("identity_provider", c.cfg.Name), zap.String("iss", iss))
			s.idpFailure(w, http.StatusBadRequest, "Sign-in refused", "The answer did not come from "+c.cfg.DisplayName+
				", where this sign-in was sent. You are not signed in. Start again from the app; if it happens again, tell the service desk.",
				p, "access_denied")
			return
		}
	}
	if e := q.Get("error"); e != "" {
		s.idpProviderError(w, c, p, e)
		return
	}
	code := q.Get("code")
	if code == "" {
		s.idpInvalid(w, c, p, errors.New("no code in the answer"))
		return
	}
	s.idpFinish(w, r, c, d, st, p, code)
}

// idpFinish exchanges the code, verifies the id_token, maps the user and
// signs the user in.
func (s *Server) idpFinish(w http.ResponseWriter, r *http.Request, c *idpClient, d *idpDiscovery, st idpState, p *pendingAuthorization, code string) {
	ctx, cancel := context.WithTimeout(oidc.ClientContext(r.Context(), c.http), idpHTTPTimeout)
	defer cancel()
	tok, err := c.oauth2Config(d, s.Endpoint(pathIDPCallback)).Exchange(ctx, code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.Response == nil || re.Response.StatusCode >= 500 {
			s.logger.Error("identity provider token endpoint unreachable", zap.String("identity_provider", c.cfg.Name), zap.Error(idpSafeError(err)))
			s.idpUnavailable(w, c, p)
			return
		}
		s.idpInvalid(w, c, p, errors.New("code exchange refused: "+re.ErrorCode))
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		s.idpInvalid(w, c, p, errors.New("no id_token in the token response"))
		return
	}
	idt, err := c.verifier(d).Verify(ctx, raw)
	if err != nil {
		s.idpInvalid(w, c, p, err)
		return
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(st.Nonce)) != 1 {
		s.idpInvalid(w, c, p, errors.New("the id_token's nonce is not this sign-in's"))
		return
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		s.idpInvalid(w, c, p, err)
		return
	}
	if azp, _ := claims["azp"].(string); len(idt.Audience) > 1 && azp != c.cfg.ClientID {
		s.idpInvalid(w, c, p, errors.New("the id_token has several audiences and another authorized party"))
		return
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			s.idpInvalid(w, c, p, err)
			return
		}
	}
	now := time.Now()
	authTime, fresh := idpAuthTime(claims, st, c.cfg.ClockSkew, now)
	if !fresh {
		s.logger.Warn("identity provider did not confirm the fresh sign-in the app asked for", zap.String("identity_provider", c.cfg.Name))
		s.idpFailure(w, http.StatusForbidden, "Sign-in not recent enough", "The app asked you to sign in again, and "+
			c.cfg.DisplayName+" did not confirm that you did. Go back to the app and start again.", p, "login_required")
		return
	}
	subject, fed, err := c.mapUser(claims, s.cfg.Users, s.cfg.FHIRBase.String())
	if err != nil {
		s.logger.Info("identity provider user refused", zap.String("identity_provider", c.cfg.Name),
			zap.String("sub", idt.Subject), zap.String("reason", err.Error()))
		s.idpFailure(w, http.StatusForbidden, "Not allowed", err.Error()+
			" If you think you should have access, contact your organization's service desk.", p, "access_denied")
		return
	}
	s.idpSignIn(w, r, c, st, p, subject, fed, authTime)
}

// idpSignIn records the state as used and starts the user's session,
// then continues where the sign-in page would have.
func (s *Server) idpSignIn(w http.ResponseWriter, r *http.Request, c *idpClient, st idpState, p *pendingAuthorization,
	subject string, fed *store.FederatedUser, authTime time.Time) {
	exp := time.Unix(0, st.Expires).Add(pendingClockLeeway)
	if err := s.cfg.Store.UseJTI(r.Context(), idpJTIPrefix+c.cfg.Issuer, st.State, exp); err != nil {
		if errors.Is(err, store.ErrReplayed) {
			s.logger.Warn("identity provider answer replayed", zap.String("identity_provider", c.cfg.Name))
			s.pages.message(w, http.StatusBadRequest, "Sign-in could not be completed",
				"This answer from the sign-in service was already used. Go back to the app and start again.")
			return
		}
		s.logger.Error("recording a sign-in state failed", zap.Error(err))
		s.pages.storeFailure(w, err, "The sign-in could not be recorded.")
		return
	}
	old := s.sessions.read(r)
	oldHash := ""
	if old != nil {
		oldHash = store.HashID(old.id)
	}
	fs, err := s.sessions.startRecord(r.Context(), w, r, &store.Session{User: subject, AuthTime: authTime, Provider: c.cfg.Name, Federated: fed})
	if err != nil {
		s.logger.Error("storing a sign-in session failed", zap.Error(err))
		s.pages.storeFailure(w, err, "The sign-in session could not be stored.")
		return
	}
	s.logger.Info("signed in through an identity provider", zap.String("identity_provider", c.cfg.Name), zap.String("user", subject))
	switch {
	case p != nil:
		if pp, ok := s.pending.claim(fs, st.Req, oldHash); ok {
			s.advanceAuthorization(w, r, fs, pp)
			return
		}
		s.pending.showExpired(w)
	case st.Return != "":
		seeOther(w, r, s.loginReturnURL(st.Return))
	default:
		s.pages.message(w, http.StatusOK, "Signed in", "You are signed in as "+displayUserName(s.sessions.user(fs))+".")
	}
}

// idpAuthTime is when the provider says the user authenticated (auth_time,
// never later than now; now without one), and whether that satisfies
// what the app asked: with prompt=login a sign-in after this one
// started, with max_age one no older than that; either needs auth_time.
func idpAuthTime(claims map[string]any, st idpState, skew time.Duration, now time.Time) (time.Time, bool) {
	at, has := claims["auth_time"].(float64)
	authTime := now
	if has {
		authTime = time.Unix(int64(at), 0)
		if authTime.After(now) {
			authTime = now
		}
	}
	if st.PromptLogin && (!has || authTime.Before(time.Unix(0, st.Started).Add(-skew))) {
		return authTime, false
	}
	if st.MaxAge != nil && (!has || now.Sub(authTime) > time.Duration(*st.MaxAge)*time.Second+skew) {
		return authTime, false
	}
	return authTime, true
}

// idpSafeError keeps the text of a failed call to a provider free of
// what must not be logged: an oauth2.RetrieveError carries the
// provider's response body, of which only the error code is kept.
func idpSafeError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return errors.New("token endpoint answered " + strconv.Itoa(status) + " " + re.ErrorCode)
	}
	return err
}

// idpPending opens the app's request a provider sign-in carries (nil for
// a sign-in without one); false when it no longer opens, after showing
// the "Request expired" page.
func (s *Server) idpPending(w http.ResponseWriter, req string) (*pendingAuthorization, bool) {
	if req == "" {
		return nil, true
	}
	p, ok := s.pending.peek(req)
	if !ok {
		s.pending.showExpired(w)
		return nil, false
	}
	return &p, true
}

// idpDiscover returns the provider's discovery document; false when the
// provider cannot be reached, after logging it and showing the page that
// says so (with the way back to the app of p).
func (s *Server) idpDiscover(w http.ResponseWriter, r *http.Request, c *idpClient, p *pendingAuthorization) (*idpDiscovery, bool) {
	d, _, err := c.discover(r.Context(), idpDiscoveryTTL)
	if err != nil {
		s.logger.Error("identity provider unreachable", zap.String("identity_provider", c.cfg.Name), zap.Error(err))
		s.idpUnavailable(w, c, p)
		return nil, false
	}
	return d, true
}
