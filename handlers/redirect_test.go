package handlers_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/smartcaddy/smartauth/handlers"
	"github.com/smartcaddy/smartauth/store"
)

// TestLoopbackRedirectAnyPort checks RFC 8252 §7.3: a native app that
// registered an http redirect URI on a loopback IP literal may use any
// port, while everything else about the URI must match exactly, and
// "localhost" or https URIs get no such exception.
func TestLoopbackRedirectAnyPort(t *testing.T) {
	env := newFlowEnv(t, flowOptions{config: func(c *handlers.Config) {
		c.Clients["native"] = &store.Client{ID: "native", Type: store.ClientPublic,
			RedirectURIs: []string{"http://127.0.0.1/callback", "http://[::1]:8080/cb?app=1", "http://localhost:7000/cb", "https://127.0.0.1/secure"},
			GrantTypes:   []string{"authorization_code"}}
	}})
	b := env.browser()
	if p := b.login(b.get(env.issuer+"/login"), "alice", alicePassword); !strings.Contains(p.body, "signed in") {
		t.Fatalf("sign-in: %d", p.status)
	}
	try := func(redirect string) page {
		v := env.authParams("openid user/*.rs")
		v.Set("client_id", "native")
		v.Set("redirect_uri", redirect)
		return b.get(env.authorizeURL(v))
	}
	for _, ok := range []string{
		"http://127.0.0.1/callback",
		"http://127.0.0.1:51234/callback",
		"http://[::1]:8080/cb?app=1",
		"http://[::1]:9/cb?app=1",
		"http://localhost:7000/cb",
		"https://127.0.0.1/secure",
	} {
		if p := try(ok); !strings.HasPrefix(p.location, env.issuer+"/consent?") {
			t.Errorf("%s: want the consent page, got %d %q", ok, p.status, p.location)
		}
	}
	for _, bad := range []string{
		"http://127.0.0.1:51234/callback/x",  // path differs
		"http://127.0.0.1:51234/callback?x",  // query differs
		"http://127.0.0.2:51234/callback",    // another loopback address
		"http://localhost:51234/callback",    // a name, not an IP literal
		"http://localhost:7001/cb",           // a registered name keeps its port
		"https://127.0.0.1:8443/secure",      // https gets no exception
		"http://127.0.0.1:51234/callback#f",  // fragment
		"http://127.0.0.1:51234/callback#",   // an empty fragment (FuzzRedirectURI)
		"http://u@127.0.0.1:51234/callback",  // user info
		"http://[::1]:9/cb?app=2",            // query differs
		"http://[::ffff:127.0.0.1]/callback", // another spelling
	} {
		p := try(bad)
		if p.status != http.StatusBadRequest || p.location != "" {
			t.Errorf("%s: want an error page without redirect, got %d %q", bad, p.status, p.location)
		}
	}

	// The code is bound to the port the app used: the token request must
	// repeat that exact redirect URI.
	p := try("http://127.0.0.1:40001/callback")
	p = b.submit(onlyForm(t, b.follow(p)), func(v url.Values) { v.Set("decision", "allow") })
	q := appRedirectParams(t, p, "http://127.0.0.1:40001/callback")
	if rec := env.redeem(q.Get("code")); rec.RedirectURI != "http://127.0.0.1:40001/callback" {
		t.Fatalf("code bound to %q", rec.RedirectURI)
	}
}

// TestUserScopesBoundConsent checks that a user with configured scopes is
// asked only about, and can grant only, the resource scopes those cover.
func TestUserScopesBoundConsent(t *testing.T) {
	env := newFlowEnv(t, flowOptions{config: func(c *handlers.Config) {
		c.Users["alice"].Scopes = []string{"user/Observation.rs", "patient/*.rs"}
	}})
	b := env.browser()
	params := env.authParams("openid fhirUser launch/patient user/*.rs user/Observation.read patient/Observation.rs patient/Condition.cruds")
	f := onlyForm(t, consentPageOf(t, env, b, params))
	var shown []string
	for _, in := range f.named("scope") {
		shown = append(shown, in.value)
	}
	want := []string{"openid", "fhirUser", "launch/patient", "user/Observation.read", "patient/Observation.rs"}
	for _, w := range want {
		if !slices.Contains(shown, w) {
			t.Errorf("consent page lacks %s: %v", w, shown)
		}
	}
	for _, no := range []string{"user/*.rs", "patient/Condition.cruds"} {
		if slices.Contains(shown, no) {
			t.Errorf("consent page offers %s beyond the user's scopes", no)
		}
	}
	// Posting a scope the page did not offer grants nothing more.
	p := b.submit(f, func(v url.Values) {
		v["scope"] = append(v["scope"], "user/*.rs", "patient/Condition.cruds")
		v.Set("decision", "allow")
	})
	q := appRedirectParams(t, p, appRedirect)
	rec := env.redeem(q.Get("code"))
	if rec.Scope != strings.Join(want, " ") {
		t.Fatalf("granted %q, want %q", rec.Scope, strings.Join(want, " "))
	}
}
