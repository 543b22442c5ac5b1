package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/smartcaddy/smartauth/handlers"
	"github.com/smartcaddy/smartauth/store"
)

// TestStandaloneLaunchWithPicker runs a standalone launch as a browser
// does: sign-in, patient picker, consent, code.
func TestStandaloneLaunchWithPicker(t *testing.T) {
	env := newFlowEnv(t, flowOptions{})
	b := env.browser()
	params := env.authParams("openid fhirUser launch/patient patient/Observation.rs offline_access")
	p := b.get(env.authorizeURL(params))
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, env.issuer+"/login?") {
		t.Fatalf("authorize: want a redirect to sign-in, got %d %s", p.status, p.location)
	}
	p = b.follow(p)
	if p.status != http.StatusOK {
		t.Fatalf("login page: %d", p.status)
	}
	// The form's CSRF token is bound to a cookie, and nothing is stored
	// before sign-in: no session yet.
	anon := cookieNamed(p, "smart_auth_csrf")
	switch {
	case anon == nil:
		t.Fatal("the sign-in page set no cookie for its CSRF token")
	case cookieNamed(p, "smart_auth_session") != nil:
		t.Fatal("the sign-in page started a session before sign-in")
	case !anon.HttpOnly || anon.SameSite != http.SameSiteLaxMode || anon.Path != "/auth" || anon.Secure:
		t.Errorf("CSRF cookie attributes: HttpOnly=%v SameSite=%v Path=%q Secure=%v", anon.HttpOnly, anon.SameSite, anon.Path, anon.Secure)
	}
	if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'self';") || strings.Contains(csp, ehrFrame) {
		t.Errorf("login page CSP %q: want frame-ancestors 'self' only", csp)
	}

	p = b.login(p, "alice", alicePassword)
	sess := cookieNamed(p, "smart_auth_session")
	switch {
	case sess == nil:
		t.Fatal("sign-in set no session cookie")
	case sess.Value == anon.Value:
		t.Error("the session id was not rotated at sign-in")
	case !sess.HttpOnly || sess.SameSite != http.SameSiteLaxMode || sess.Path != "/auth":
		t.Errorf("session cookie attributes: HttpOnly=%v SameSite=%v Path=%q", sess.HttpOnly, sess.SameSite, sess.Path)
	case sess.Secure:
		t.Error("Secure cookie on an http loopback issuer: the browser would drop it")
	}
	if !strings.HasPrefix(p.location, env.issuer+"/select-patient?") {
		t.Fatalf("after sign-in: want the patient picker, got %d %s", p.status, p.location)
	}

	p = b.follow(p)
	f := onlyForm(t, p)
	var offered []string
	for _, in := range f.named("patient") {
		offered = append(offered, in.value)
	}
	if !slices.Equal(offered, []string{"pat1", "pat2"}) {
		t.Fatalf("picker offers %v, want alice's patients", offered)
	}
	// A patient that is not alice's is refused.
	refused := b.submit(f, func(v url.Values) { v.Set("patient", "pat9") })
	if refused.status != http.StatusForbidden || refused.location != "" {
		t.Fatalf("foreign patient: got %d %s", refused.status, refused.location)
	}
	p = b.submit(f, func(v url.Values) { v.Set("patient", "pat2") })
	if !strings.HasPrefix(p.location, env.issuer+"/consent?") {
		t.Fatalf("after the picker: want consent, got %d %s", p.status, p.location)
	}

	p = b.follow(p)
	csp := p.header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'self' " + ehrFrame, "form-action 'self' https://app.example", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("consent CSP %q lacks %q", csp, want)
		}
	}
	for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"} {
		if got := p.header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	f = onlyForm(t, p)
	p = b.submit(f, func(v url.Values) { v.Set("decision", "allow") })
	q := appRedirectParams(t, p, appRedirect)
	if q.Get("state") != params.Get("state") || q.Get("iss") != env.issuer || q.Get("error") != "" {
		t.Fatalf("redirect parameters %v", q)
	}
	rec := env.redeem(q.Get("code"))
	if rec.ClientID != "app" || rec.RedirectURI != appRedirect || rec.Subject != "alice" ||
		rec.Context.Patient != "pat2" || rec.CodeChallenge != params.Get("code_challenge") ||
		rec.Nonce != params.Get("nonce") || rec.SessionHash == "" || rec.FamilyID == "" || rec.AuthTime.IsZero() {
		t.Fatalf("code record %+v", rec)
	}
	if rec.Scope != "openid fhirUser launch/patient patient/Observation.rs offline_access" {
		t.Fatalf("granted scope %q", rec.Scope)
	}
	if _, err := env.db.GetSession(context.Background(), rec.SessionHash); err == nil {
		t.Errorf("the code record holds a usable session id; it must hold only its hash")
	}
	if _, err := env.db.GetSessionByHash(context.Background(), rec.SessionHash); err != nil {
		t.Errorf("the code's session hash names no session: %v", err)
	}
}

// consentPageOf runs a request up to its consent page for alice, picking
// pat1 when the picker appears.
func consentPageOf(t *testing.T, env *flowEnv, b *browser, params url.Values) page {
	t.Helper()
	return consentPageAs(t, env, b, params, "alice")
}

// consentPageAs is consentPageOf signing in as another user (who has
// alice's password).
func consentPageAs(t *testing.T, env *flowEnv, b *browser, params url.Values, user string) page {
	t.Helper()
	p := b.follow(b.get(env.authorizeURL(params)))
	if strings.Contains(p.body, `name="password"`) {
		pw := alicePassword
		if user == "bob" {
			pw = bobPassword
		}
		p = b.login(p, user, pw)
	}
	if strings.HasPrefix(p.location, env.issuer+"/select-patient?") {
		p = b.submit(onlyForm(t, b.follow(p)), func(v url.Values) { v.Set("patient", "pat1") })
	}
	if !strings.HasPrefix(p.location, env.issuer+"/consent?") {
		t.Fatalf("want the consent page, got %d %s %s", p.status, p.location, p.body)
	}
	return b.follow(p)
}

func TestConsentUntickAndLockedScopes(t *testing.T) {
	env := newFlowEnv(t, flowOptions{})
	b := env.browser()
	params := env.authParams("openid launch/patient patient/Observation.rs patient/Patient.rs")
	p := consentPageOf(t, env, b, params)
	f := onlyForm(t, p)
	boxes := map[string]formInput{}
	for _, in := range f.named("scope") {
		if in.typ == "checkbox" {
			boxes[in.value] = in
		}
	}
	for _, sc := range scopesOf(params) {
		in, ok := boxes[sc]
		if !ok || !in.checked {
			t.Errorf("scope %s: no checked box", sc)
		}
		locked := sc == "openid" || strings.HasPrefix(sc, "launch")
		if in.disabled != locked {
			t.Errorf("scope %s: disabled=%v, want %v", sc, in.disabled, locked)
		}
	}
	// Untick patient/Observation.rs, and try to drop the locked scopes
	// too by leaving them out of the post.
	p = b.submit(f, func(v url.Values) {
		v["scope"] = []string{"patient/Patient.rs"}
		v.Set("decision", "allow")
	})
	q := appRedirectParams(t, p, appRedirect)
	rec := env.redeem(q.Get("code"))
	if rec.Scope != "openid launch/patient patient/Patient.rs" {
		t.Fatalf("granted %q, want the locked scopes kept and Observation dropped", rec.Scope)
	}
}

func scopesOf(v url.Values) []string { return strings.Fields(v.Get("scope")) }

func TestConsentDeny(t *testing.T) {
	env := newFlowEnv(t, flowOptions{})
	b := env.browser()
	params := env.authParams("openid patient/Observation.rs launch/patient")
	f := onlyForm(t, consentPageOf(t, env, b, params))
	q := appRedirectParams(t, b.submit(f, func(v url.Values) { v.Set("decision", "deny") }), appRedirect)
	if q.Get("error") != "access_denied" || q.Get("state") != params.Get("state") || q.Get("code") != "" {
		t.Fatalf("deny: %v", q)
	}
	// The pending request is gone: allowing now issues nothing.
	p := b.submit(f, func(v url.Values) { v.Set("decision", "allow") })
	if p.location != "" || p.status != http.StatusBadRequest {
		t.Fatalf("allow after deny: %d %s", p.status, p.location)
	}
}

func TestCSRFMissingOrWrong(t *testing.T) {
	env := newFlowEnv(t, flowOptions{})
	b := env.browser()
	params := env.authParams("openid launch/patient patient/Observation.rs")
	f := onlyForm(t, consentPageOf(t, env, b, params))
	for name, edit := range map[string]func(url.Values){
		"missing": func(v url.Values) { v.Del("csrf_token") },
		"wrong":   func(v url.Values) { v.Set("csrf_token", store.NewSecret()) },
	} {
		p := b.submit(f, func(v url.Values) { edit(v); v.Set("decision", "allow") })
		if p.status != http.StatusForbidden || p.location != "" {
			t.Errorf("consent with %s CSRF token: %d %s", name, p.status, p.location)
		}
	}
	// A cross-site post with the right token is refused too.
	v := f.values()
	v.Set("decision", "allow")
	req, _ := http.NewRequest(http.MethodPost, f.action, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	if p := b.do(req); p.status != http.StatusForbidden {
		t.Errorf("cross-origin consent: %d", p.status)
	}
	// Sign-in without the token is refused as well.
	b2 := env.browser()
	lp := b2.get(env.issuer + "/login")
	p := b2.submit(onlyForm(t, lp), func(v url.Values) {
		v.Del("csrf_token")
		v.Set("username", "alice")
		v.Set("password", alicePassword)
	})
	if p.status != http.StatusForbidden || cookieNamed(p, "smart_auth_session") != nil {
		t.Errorf("sign-in without CSRF token: %d", p.status)
	}
	// The genuine form still works: nothing was granted before.
	q := appRedirectParams(t, b.submit(f, func(v url.Values) { v.Set("decision", "allow") }), appRedirect)
	if q.Get("code") == "" {
		t.Fatal("no code after a genuine consent")
	}
}

func TestLoginGenericMessage(t *testing.T) {
	env := newFlowEnv(t, flowOptions{})
	b := env.browser()
	var bodies []string
	for _, user := range []string{"alice", "nobody"} {
		p := b.login(b.get(env.issuer+"/login"), user, "wrong-password")
		if p.status != http.StatusOK || cookieNamed(p, "smart_auth_session") != nil && p.location != "" {
			t.Fatalf("%s: %d %s", user, p.status, p.location)
		}
		if !strings.Contains(p.body, "The user name or password is incorrect.") {
			t.Fatalf("%s: no generic message: %s", user, p.body)
		}
		bodies = append(bodies, strings.ReplaceAll(p.body, user, "USER"))
	}
	// Apart from the echoed name and the CSRF token, the two answers are
	// the same.
	strip := func(s string) string {
		i := strings.Index(s, `name="csrf_token" value="`)
		j := strings.Index(s[i+25:], `"`)
		return s[:i] + s[i+25+j:]
	}
	if strip(bodies[0]) != strip(bodies[1]) {
		t.Error("the answers for a known and an unknown user differ")
	}
}

func TestLoginRateLimit(t *testing.T) {
	env := newFlowEnv(t, flowOptions{})
	b := env.browser()
	for i := range 5 {
		p := b.login(b.get(env.issuer+"/login"), "alice", "wrong-"+strconv.Itoa(i))
		if p.status != http.StatusOK {
			t.Fatalf("failure %d: status %d", i+1, p.status)
		}
	}
	p := b.login(b.get(env.issuer+"/login"), "alice", alicePassword)
	if p.status != http.StatusTooManyRequests {
		t.Fatalf("sixth attempt: want 429, got %d", p.status)
	}
	if ra, err := strconv.Atoi(p.header.Get("Retry-After")); err != nil || ra <= 0 || ra > 15*60 {
		t.Errorf("Retry-After %q", p.header.Get("Retry-After"))
	}
	if cookie := cookieNamed(p, "smart_auth_session"); cookie != nil && p.location != "" {
		t.Error("a throttled sign-in signed in")
	}
	// Another name from the same address is not throttled yet...
	p = b.login(b.get(env.issuer+"/login"), "bob", bobPassword)
	if p.status != http.StatusOK || !strings.Contains(p.body, "signed in") {
		t.Fatalf("bob: %d %s", p.status, p.body)
	}
	// ...until the address reaches 20 failures (5 for alice, 15 more).
	for i := range 15 {
		p = b.login(b.get(env.issuer+"/login"), "guess"+strconv.Itoa(i), "x")
		if p.status != http.StatusOK {
			t.Fatalf("guess %d: %d", i, p.status)
		}
	}
	p = b.login(b.get(env.issuer+"/login"), "bob", bobPassword)
	if p.status != http.StatusTooManyRequests {
		t.Fatalf("after 20 failures from one address: want 429, got %d", p.status)
	}
}

func TestTrustedIdentity(t *testing.T) {
	identity := map[string]string{}
	env := newFlowEnv(t, flowOptions{
		config: func(c *handlers.Config) { c.Authz.PasswordLogin = false; c.Authz.TrustedIdentity = true },
		wrap: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				repl := caddy.NewReplacer()
				for k, v := range identity {
					repl.Set(k, v)
				}
				h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)))
			})
		},
	})
	b := env.browser()
	params := env.authParams("openid launch/patient patient/Observation.rs")

	// Only a candidate (not authenticated) identity: not signed in.
	identity["http.auth.candidate.user.id"] = "alice"
	if p := b.get(env.authorizeURL(params)); p.status != http.StatusUnauthorized || p.location != "" {
		t.Fatalf("candidate identity: %d %s", p.status, p.location)
	}
	// An authenticated user who is not configured: not signed in.
	identity["http.auth.user.id"] = "mallory"
	if p := b.get(env.authorizeURL(params)); p.status != http.StatusUnauthorized {
		t.Fatalf("unknown trusted user: %d %s", p.status, p.location)
	}
	identity["http.auth.user.id"] = "alice"
	p := b.get(env.authorizeURL(params))
	if !strings.HasPrefix(p.location, env.issuer+"/select-patient?") {
		t.Fatalf("trusted alice: want the picker, got %d %s", p.status, p.location)
	}
	p = b.submit(onlyForm(t, b.follow(p)), func(v url.Values) { v.Set("patient", "pat1") })
	p = b.submit(onlyForm(t, b.follow(p)), func(v url.Values) { v.Set("decision", "allow") })
	rec := env.redeem(appRedirectParams(t, p, appRedirect).Get("code"))
	if rec.Subject != "alice" || rec.Context.Patient != "pat1" {
		t.Fatalf("code %+v", rec)
	}
	// The password form is off in this mode.
	if p := b.post(env.issuer+"/login", url.Values{"username": {"alice"}, "password": {alicePassword}}); p.status != http.StatusForbidden {
		t.Errorf("password sign-in in trusted mode: %d", p.status)
	}
	// The management page knows the trusted user too; without the
	// identity it refuses.
	if p := b.get(env.issuer + "/manage"); p.status != http.StatusOK || !strings.Contains(p.body, "Dr Alice") {
		t.Errorf("manage page for trusted alice: %d", p.status)
	}
	delete(identity, "http.auth.user.id")
	if p := env.browser().get(env.issuer + "/manage"); p.status != http.StatusUnauthorized {
		t.Errorf("manage page without an identity: %d", p.status)
	}
}

func TestPatientUserSkipsPicker(t *testing.T) {
	env := newFlowEnv(t, flowOptions{config: func(c *handlers.Config) { c.Authz.RememberConsent = 3600e9 }})
	b := env.browser()
	params := env.authParams("openid launch/patient patient/*.rs")
	p := b.login(b.follow(b.get(env.authorizeURL(params))), "bob", bobPassword)
	if !strings.HasPrefix(p.location, env.issuer+"/consent?") {
		t.Fatalf("patient user: want consent directly, got %s", p.location)
	}
	p = b.submit(onlyForm(t, b.follow(p)), func(v url.Values) { v.Set("decision", "allow") })
	rec := env.redeem(appRedirectParams(t, p, appRedirect).Get("code"))
	if rec.Context.Patient != "pat9" || rec.Scope != "openid launch/patient patient/*.rs" {
		t.Fatalf("code %+v", rec)
	}
	// The consent is remembered: the same request skips the page.
	params = env.authParams("openid launch/patient patient/*.rs")
	p = b.get(env.authorizeURL(params))
	q := appRedirectParams(t, p, appRedirect)
	if q.Get("state") != params.Get("state") || env.redeem(q.Get("code")).Scope != "openid launch/patient patient/*.rs" {
		t.Fatalf("remembered consent: %v", q)
	}
	// A wider request asks again.
	p = b.get(env.authorizeURL(env.authParams("openid launch/patient patient/*.cruds")))
	if !strings.HasPrefix(p.location, env.issuer+"/consent?") {
		t.Fatalf("wider request: want consent, got %s", p.location)
	}
}

func TestNoPatientDropsPatientScopes(t *testing.T) {
	env := newFlowEnv(t, flowOptions{})
	b := env.browser()
	// No launch/patient: no patient in context, so patient/ scopes go.
	params := env.authParams("openid user/Observation.rs patient/Observation.rs")
	p := consentPageAs(t, env, b, params, "carol")
	f := onlyForm(t, p)
	for _, in := range f.named("scope") {
		if strings.HasPrefix(in.value, "patient/") {
			t.Errorf("consent offers %s without a patient", in.value)
		}
	}
	q := appRedirectParams(t, b.submit(f, func(v url.Values) { v.Add("scope", "patient/Observation.rs"); v.Set("decision", "allow") }), appRedirect)
	if rec := env.redeem(q.Get("code")); rec.Scope != "openid user/Observation.rs" || rec.Context.Patient != "" {
		t.Fatalf("code %+v", rec)
	}
}

func TestLogout(t *testing.T) {
	env := newFlowEnv(t, flowOptions{})
	b := env.browser()
	p := b.login(b.get(env.issuer+"/login"), "alice", alicePassword)
	sess := cookieNamed(p, "smart_auth_session")
	if sess == nil {
		t.Fatal("no session")
	}
	p = b.get(env.issuer + "/logout")
	f := onlyForm(t, p)
	if p := b.submit(f, func(v url.Values) { v.Del("csrf_token") }); p.status != http.StatusForbidden {
		t.Fatalf("logout without CSRF: %d", p.status)
	}
	if _, err := env.db.GetSession(context.Background(), sess.Value); err != nil {
		t.Fatal("the session ended without a CSRF token")
	}
	p = b.submit(f, nil)
	if p.status != http.StatusOK {
		t.Fatalf("logout: %d", p.status)
	}
	if _, err := env.db.GetSession(context.Background(), sess.Value); err == nil {
		t.Fatal("the session outlived the logout")
	}
	// Signed out, authorize asks for sign-in again.
	if p := b.get(env.authorizeURL(env.authParams("openid"))); !strings.HasPrefix(p.location, env.issuer+"/login?") {
		t.Fatalf("after logout: %s", p.location)
	}
}

func TestTemplateOverride(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "login.html"), []byte(`<!DOCTYPE html><title>Acme</title><p>ACME SIGN-IN</p>
<form method="post" action="{{.Action}}"><input type="hidden" name="csrf_token" value="{{.CSRF}}">
<input name="username"><input type="password" name="password"></form>`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := newFlowEnv(t, flowOptions{config: func(c *handlers.Config) { c.Authz.TemplatesDir = dir }})
	b := env.browser()
	p := b.get(env.issuer + "/login")
	if !strings.Contains(p.body, "ACME SIGN-IN") {
		t.Fatalf("the operator template was not used: %s", p.body)
	}
	if p = b.login(p, "alice", alicePassword); !strings.Contains(p.body, "signed in") {
		t.Fatalf("sign-in through the operator template: %d %s", p.status, p.body)
	}
	// Other pages keep the built-in template.
	if p := b.get(env.issuer + "/logout"); !strings.Contains(p.body, "Sign out") {
		t.Fatalf("logout page: %s", p.body)
	}

	// A broken template fails New, naming the file.
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "consent.html"), []byte(`{{if}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := tryFlowEnv(t, flowOptions{config: func(c *handlers.Config) { c.Authz.TemplatesDir = bad }})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(bad, "consent.html")) {
		t.Fatalf("broken template: err = %v", err)
	}
}
