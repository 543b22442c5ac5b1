package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// The identity-provider tests run the flow site (flow_integration_test.go)
// as a relying party of the example OpenID Provider of
// github.com/zitadel/oidc/v3 (idp_op_test.go), both on real ports, with a
// cookie-keeping HTTP client that fills the forms of both (browser).

// idpSite is a flow site signing in through the test OP.
type idpSite struct {
	flowSite
	op *testOP
}

// idpBlock is the site's identity_provider block: users named by
// preferred_username, unlisted ones accepted as Practitioner/<employee_id>
// with user/*.rs patient/*.rs at most, and only members of smart-users.
const idpBlock = `
		identity_provider hospital {
			display_name "Test Hospital"
			issuer %s
			client_id %s
			client_secret {env.SMARTAUTH_TEST_IDP_SECRET}
			scopes openid profile email
			username_claim preferred_username
			accept_unlisted
			fhir_user_claim Practitioner/{claims.employee_id}
			user_scopes user/*.rs patient/*.rs
			require_claim groups smart-users
			%s
		}`

// startIDPSite starts the OP (unless opDown) and the site; signIn is the
// sign_in line's methods, more goes into the identity_provider block.
func startIDPSite(t *testing.T, signIn, more string, opDown bool) idpSite {
	t.Helper()
	op := newTestOP(t)
	t.Setenv("SMARTAUTH_TEST_IDP_SECRET", opClientSecret)
	s := newFlowSite(t, "sign_in "+signIn+fmt.Sprintf(idpBlock, op.issuer, opClientID, more))
	op.register(s.issuer()+"/login/idp/callback", s.issuer()+"/logout")
	if !opDown {
		op.start(t)
	}
	startCaddyfile(t, s.caddyfile())
	return idpSite{flowSite: s, op: op}
}

// idpResult is where a browser run ended: the app's redirect (query), or
// a page without a form (status, body).
type idpResult struct {
	app    url.Values
	status int
	body   string
	// visited are the URLs the browser requested.
	visited []string
}

// runIDP drives a browser from start until it is sent to prefix (the
// app) or stops at a page without a form (an error or a notice),
// filling every form on the way: the OP's sign-in, the picker, consent.
// edit, when set, may rewrite each URL before it is requested.
func runIDP(t testing.TB, b *browser, start, prefix string, edit func(*url.URL)) idpResult {
	t.Helper()
	var res idpResult
	req, _ := http.NewRequest("GET", start, nil)
	for range 30 {
		if edit != nil {
			edit(req.URL)
		}
		res.visited = append(res.visited, req.URL.String())
		resp, err := b.c.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", req.URL, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			loc, err := resp.Location()
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(loc.String(), prefix) {
				res.app = loc.Query()
				return res
			}
			req, _ = http.NewRequest("GET", loc.String(), nil)
		case resp.StatusCode == 200 && strings.Contains(string(body), "<form"):
			req = b.submit(resp.Request.URL, string(body))
		default:
			res.status, res.body = resp.StatusCode, string(body)
			return res
		}
	}
	t.Fatal("too many steps")
	return res
}

// visitedOP tells whether a run went to the OP.
func (r idpResult) visitedOP(o *testOP) bool {
	for _, v := range r.visited {
		if strings.HasPrefix(v, o.issuer) {
			return true
		}
	}
	return false
}

// authURL is an authorization request of an app with PKCE.
func (s idpSite) authURL(cfg *oauth2.Config, verifier string, opts ...oauth2.AuthCodeOption) string {
	return cfg.AuthCodeURL(randomString2(), append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("aud", s.fhirBase())}, opts...)...)
}

// randomString2 is a random state.
func randomString2() string { return oauth2.GenerateVerifier()[:22] }

// exchange redeems a code and returns the token and its verified
// id_token's claims.
func (s idpSite) exchange(t *testing.T, cfg *oauth2.Config, code, verifier string) (*oauth2.Token, map[string]any) {
	t.Helper()
	ctx := context.Background()
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	claims := map[string]any{}
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		p, err := oidc.NewProvider(ctx, s.issuer())
		if err != nil {
			t.Fatal(err)
		}
		idt, err := p.Verifier(&oidc.Config{ClientID: cfg.ClientID}).Verify(ctx, raw)
		if err != nil {
			t.Fatalf("our id_token: %v", err)
		}
		_ = idt.Claims(&claims)
	}
	return tok, claims
}

// TestIDPStandaloneLaunchSSOAndSignOut: a standalone launch signs alice
// in through the OP (mapped by preferred_username to the configured
// alice), a second app then needs no sign-in, and after signing out
// (here and, RP-initiated, at the OP) the next app needs one again.
func TestIDPStandaloneLaunchSSOAndSignOut(t *testing.T) {
	s := startIDPSite(t, "identity_provider", "", false)
	b := newBrowser(t)
	cfg := s.oauth("public-app", "", "launch/patient", "openid", "fhirUser", "patient/*.rs")
	v := oauth2.GenerateVerifier()
	r := runIDP(t, b, s.authURL(cfg, v), s.redirect, nil)
	if r.app.Get("code") == "" || !r.visitedOP(s.op) {
		t.Fatalf("first launch: %+v", r)
	}
	tok, idt := s.exchange(t, cfg, r.app.Get("code"), v)
	if tok.Extra("patient") != "p1" || idt["sub"] != "alice" || idt["fhirUser"] != s.fhirBase()+"/Practitioner/dr-alice" {
		t.Errorf("token: patient %v, id_token %v", tok.Extra("patient"), idt)
	}
	if s.op.st.logins.Load() != 1 {
		t.Fatalf("OP sign-ins: %d", s.op.st.logins.Load())
	}

	// Single sign-on: another app, no second sign-in.
	cfg2 := s.oauth("confidential-app", confSecret, "openid", "fhirUser")
	v2 := oauth2.GenerateVerifier()
	r = runIDP(t, b, s.authURL(cfg2, v2), s.redirect, nil)
	if r.app.Get("code") == "" || r.visitedOP(s.op) || s.op.st.logins.Load() != 1 {
		t.Fatalf("second app signed in again: OP visited %v, sign-ins %d, %+v", r.visitedOP(s.op), s.op.st.logins.Load(), r)
	}
	if _, idt := s.exchange(t, cfg2, r.app.Get("code"), v2); idt["sub"] != "alice" {
		t.Errorf("second app's id_token: %v", idt)
	}

	// Sign-out: the form posts, the browser goes on to the OP's
	// end_session_endpoint and back to our sign-out page.
	r = runIDP(t, b, s.issuer()+"/logout", "http://nowhere.invalid", nil)
	var endSession bool
	for _, u := range r.visited {
		endSession = endSession || strings.HasPrefix(u, s.op.issuer+"/end_session")
	}
	if !endSession || r.status != 200 || !strings.Contains(r.body, "not signed in") {
		t.Fatalf("sign-out: end_session visited %v, %d %s", endSession, r.status, r.body)
	}
	v3 := oauth2.GenerateVerifier()
	r = runIDP(t, b, s.authURL(cfg2, v3), s.redirect, nil)
	if r.app.Get("code") == "" || !r.visitedOP(s.op) || s.op.st.logins.Load() != 2 {
		t.Fatalf("after sign-out: OP visited %v, sign-ins %d", r.visitedOP(s.op), s.op.st.logins.Load())
	}
}

// TestIDPEHRLaunch: an EHR launch completes through the OP.
func TestIDPEHRLaunch(t *testing.T) {
	s := startIDPSite(t, "identity_provider", "", false)
	launch := createLaunch(t, s.flowSite, `{"patient":"p2","encounter":"e1","client_id":"confidential-app"}`)
	cfg := s.oauth("confidential-app", confSecret, "launch", "openid", "fhirUser", "patient/*.rs")
	v := oauth2.GenerateVerifier()
	r := runIDP(t, newBrowser(t), s.authURL(cfg, v, oauth2.SetAuthURLParam("launch", launch)), s.redirect, nil)
	if r.app.Get("code") == "" {
		t.Fatalf("EHR launch: %+v", r)
	}
	tok, idt := s.exchange(t, cfg, r.app.Get("code"), v)
	if tok.Extra("patient") != "p2" || tok.Extra("encounter") != "e1" || idt["sub"] != "alice" {
		t.Errorf("EHR launch token: patient %v encounter %v sub %v", tok.Extra("patient"), tok.Extra("encounter"), idt["sub"])
	}
}

// createLaunch creates an EHR launch through the launch API.
func createLaunch(t *testing.T, s flowSite, body string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", s.issuer()+"/launch", strings.NewReader(body))
	req.SetBasicAuth("ehr", ehrSecret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var created struct {
		Launch string `json:"launch"`
	}
	if err := json.Unmarshal(b, &created); err != nil || resp.StatusCode != 201 || created.Launch == "" {
		t.Fatalf("create launch: %d %s", resp.StatusCode, b)
	}
	return created.Launch
}

// TestIDPUnlistedUserByTemplate: erin has no configured entry; the
// provider accepts unlisted users, so erin signs in as hospital|erin,
// Practitioner/E123 from the template, with the operator's bound
// (user/*.rs): the token works at the guard and refreshes.
func TestIDPUnlistedUserByTemplate(t *testing.T) {
	s := startIDPSite(t, "identity_provider", "", false)
	b := newBrowser(t)
	b.choose["username"], b.choose["password"] = "erin", "erin-pw"
	cfg := s.oauth("public-app", "", "openid", "profile", "fhirUser", "user/*.rs", "user/Observation.cruds", "offline_access")
	v := oauth2.GenerateVerifier()
	r := runIDP(t, b, s.authURL(cfg, v), s.redirect, nil)
	if r.app.Get("code") == "" {
		t.Fatalf("unlisted user: %+v", r)
	}
	tok, idt := s.exchange(t, cfg, r.app.Get("code"), v)
	if idt["sub"] != "hospital|erin" || idt["fhirUser"] != s.fhirBase()+"/Practitioner/E123" || idt["name"] != "Erin Nurse" {
		t.Errorf("id_token of an unlisted user: %v", idt)
	}
	// Nothing beyond the operator's bound (user/*.rs): the write scope
	// is not granted.
	if sc, _ := tok.Extra("scope").(string); strings.Contains(sc, "cruds") || !strings.Contains(sc, "user/*.rs") {
		t.Errorf("granted scope %q", sc)
	}
	resp, body := fetch(t, "GET", s.fhirBase()+"/Observation", http.Header{"Authorization": {"Bearer " + tok.AccessToken}})
	if resp.StatusCode != 200 || !strings.Contains(body, "upstream") {
		t.Fatalf("guard with an unlisted user's token: %d %s", resp.StatusCode, body)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	m := refresh(t, s.flowSite, tok.RefreshToken, "public-app")
	if m["access_token"] == nil {
		t.Fatalf("refresh of an unlisted user's token: %v", m)
	}
}

// TestIDPPromptLogin: with a live session, an app sending prompt=login
// (and one sending max_age=0) gets a fresh sign-in at the OP, which is
// asked for one.
func TestIDPPromptLogin(t *testing.T) {
	s := startIDPSite(t, "password identity_provider", "", false)
	b := newBrowser(t)
	cfg := s.oauth("confidential-app", confSecret, "openid")
	// The sign-in page offers both; the browser follows the provider's link.
	resp, body := fetch(t, "GET", s.issuer()+"/login", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "Sign in with Test Hospital") || !strings.Contains(body, `name="password"`) {
		t.Fatalf("sign-in page: %d %s", resp.StatusCode, body)
	}
	r := runIDP(t, b, s.issuer()+"/login/idp?provider=hospital", "http://nowhere.invalid", nil)
	if r.status != 200 || !strings.Contains(r.body, "Signed in") || s.op.st.logins.Load() != 1 {
		t.Fatalf("sign-in through the provider: %d %s", r.status, r.body)
	}
	for i, opt := range []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("prompt", "login"), oauth2.SetAuthURLParam("max_age", "0")} {
		v := oauth2.GenerateVerifier()
		start := s.authURL(cfg, v, opt)
		// The sign-in page comes first (password or provider): take the provider.
		page := pageOf(t, b, start)
		if !strings.Contains(page, "Sign in with") {
			t.Fatalf("fresh sign-in %d: no sign-in page: %s", i, page)
		}
		link := s.issuer() + "/login/idp?" + htmlAttr(t, page, `class="provider" href="`)
		r := runIDP(t, b, link, s.redirect, nil)
		var forwarded bool
		for _, u := range r.visited {
			forwarded = forwarded || strings.HasPrefix(u, s.op.issuer) && (strings.Contains(u, "prompt=login") || strings.Contains(u, "max_age=0"))
		}
		if r.app.Get("code") == "" || !forwarded || s.op.st.logins.Load() != int64(i+2) {
			t.Fatalf("fresh sign-in %d: forwarded %v, sign-ins %d, %+v", i, forwarded, s.op.st.logins.Load(), r)
		}
	}
}

// pageOf follows redirects from start and returns the page it ends on.
func pageOf(t *testing.T, b *browser, start string) string {
	t.Helper()
	next := start
	for range 10 {
		resp, err := b.c.Get(next)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		loc, err := resp.Location()
		if err != nil {
			return string(body)
		}
		next = loc.String()
	}
	t.Fatal("too many redirects")
	return ""
}

// htmlAttr returns the (unescaped) query of the first link after marker.
func htmlAttr(t *testing.T, body, marker string) string {
	t.Helper()
	_, rest, ok := strings.Cut(body, marker)
	if !ok {
		t.Fatalf("no %q in %s", marker, body)
	}
	href, _, _ := strings.Cut(rest, `"`)
	href = strings.ReplaceAll(href, "&amp;", "&")
	_, q, _ := strings.Cut(href, "?")
	return q
}

// TestIDPCallbackOnAnotherInstance: two instances share one store; the
// sign-in starts on one and the provider's answer lands on the other,
// which continues it from the browser's sealed state alone.
func TestIDPCallbackOnAnotherInstance(t *testing.T) {
	op := newTestOP(t)
	t.Setenv("SMARTAUTH_TEST_IDP_SECRET", opClientSecret)
	s := newFlowSite(t, "sign_in identity_provider"+fmt.Sprintf(idpBlock, op.issuer, opClientID, ""))
	op.register(s.issuer()+"/login/idp/callback", s.issuer()+"/logout")
	op.start(t)
	// The second instance: another site of the same issuer and store.
	second := freePort(t)
	block := s.caddyfile()[len(globalOptions):]
	other := strings.Replace(block, fmt.Sprintf("http://localhost:%d {", s.port), fmt.Sprintf("http://localhost:%d {", second), 1)
	startCaddyfile(t, s.caddyfile()+other)

	b := newBrowser(t)
	cfg := s.oauth("public-app", "", "openid", "fhirUser")
	v := oauth2.GenerateVerifier()
	var moved bool
	r := runIDP(t, b, idpSite{flowSite: s}.authURL(cfg, v), s.redirect, func(u *url.URL) {
		if strings.HasPrefix(u.String(), s.issuer()+"/login/idp/callback") {
			u.Host = fmt.Sprintf("localhost:%d", second)
			moved = true
		}
	})
	if !moved || r.app.Get("code") == "" {
		t.Fatalf("callback on the second instance: moved %v, %+v", moved, r)
	}
	if _, idt := (idpSite{flowSite: s}).exchange(t, cfg, r.app.Get("code"), v); idt["sub"] != "alice" {
		t.Errorf("id_token: %v", idt)
	}
}
