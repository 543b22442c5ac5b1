package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestAuthorizeRefusals checks that bad requests never yield a code: an
// unknown client or redirect URI gets an error page, everything else an
// error sent back to the app with the state.
func TestAuthorizeRefusals(t *testing.T) {
	env := newFlowEnv(t, flowOptions{})
	b := env.browser()
	// Sign in first, so that a request that wrongly passed validation would
	// get further than the sign-in page.
	if p := b.login(b.get(env.issuer+"/login"), "alice", alicePassword); !strings.Contains(p.body, "signed in") {
		t.Fatalf("sign-in: %d", p.status)
	}
	pages := map[string]func(url.Values){
		"unknown client":          func(v url.Values) { v.Set("client_id", "nope") },
		"missing client":          func(v url.Values) { v.Del("client_id") },
		"unregistered redirect":   func(v url.Values) { v.Set("redirect_uri", "https://evil.example/cb") },
		"redirect prefix":         func(v url.Values) { v.Set("redirect_uri", appRedirect+"/x") },
		"repeated redirect":       func(v url.Values) { v.Add("redirect_uri", appRedirect) },
		"ambiguous redirect left": func(v url.Values) { v.Set("client_id", "other"); v.Del("redirect_uri") },
	}
	for name, edit := range pages {
		v := env.authParams("openid launch/patient patient/*.rs")
		edit(v)
		p := b.get(env.authorizeURL(v))
		if p.status != http.StatusBadRequest || p.location != "" || !strings.Contains(p.header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: want a 400 page without redirect, got %d %q", name, p.status, p.location)
		}
	}
	redirects := map[string]struct {
		edit func(url.Values)
		err  string
	}{
		"missing PKCE":        {func(v url.Values) { v.Del("code_challenge"); v.Del("code_challenge_method") }, "invalid_request"},
		"missing method":      {func(v url.Values) { v.Del("code_challenge_method") }, "invalid_request"},
		"plain PKCE":          {func(v url.Values) { v.Set("code_challenge_method", "plain") }, "invalid_request"},
		"malformed challenge": {func(v url.Values) { v.Set("code_challenge", "short") }, "invalid_request"},
		"wrong aud":           {func(v url.Values) { v.Set("aud", "https://elsewhere.example/fhir") }, "invalid_request"},
		"missing aud":         {func(v url.Values) { v.Del("aud") }, "invalid_request"},
		"wrong resource":      {func(v url.Values) { v.Del("aud"); v.Set("resource", env.issuer) }, "invalid_request"},
		"implicit":            {func(v url.Values) { v.Set("response_type", "token") }, "unsupported_response_type"},
		"missing type":        {func(v url.Values) { v.Del("response_type") }, "invalid_request"},
		"repeated scope":      {func(v url.Values) { v.Add("scope", "openid") }, "invalid_request"},
		"missing scope":       {func(v url.Values) { v.Del("scope") }, "invalid_scope"},
		"no code grant":       {func(v url.Values) { v.Set("client_id", "backend"); v.Set("redirect_uri", "https://backend.example/cb") }, "unauthorized_client"},
		"prompt none":         {func(v url.Values) { v.Set("prompt", "none") }, "interaction_required"},
	}
	for name, c := range redirects {
		v := env.authParams("openid launch/patient patient/*.rs")
		c.edit(v)
		want := appRedirect
		if v.Get("client_id") == "backend" {
			want = "https://backend.example/cb"
		}
		q := appRedirectParams(t, b.get(env.authorizeURL(v)), want)
		if q.Get("error") != c.err || q.Get("state") != v.Get("state") || q.Get("code") != "" || q.Get("error_description") == "" {
			t.Errorf("%s: got %v, want error %s with the state", name, q, c.err)
		}
	}
	// A missing state cannot be echoed, but is still an error.
	v := env.authParams("openid")
	v.Del("state")
	if q := appRedirectParams(t, b.get(env.authorizeURL(v)), appRedirect); q.Get("error") != "invalid_request" || q.Has("state") {
		t.Errorf("missing state: %v", q)
	}
}

// TestAuthorizeAccepts checks the accepted variants: POST, aud with a
// trailing slash, resource instead of aud, redirect_uri left out for a
// client with one.
func TestAuthorizeAccepts(t *testing.T) {
	env := newFlowEnv(t, flowOptions{})
	b := env.browser()
	for name, edit := range map[string]func(url.Values){
		"trailing slash":   func(v url.Values) { v.Set("aud", env.fhirBase+"/") },
		"resource":         func(v url.Values) { v.Del("aud"); v.Set("resource", env.fhirBase) },
		"default redirect": func(v url.Values) { v.Del("redirect_uri") },
	} {
		v := env.authParams("openid patient/*.rs")
		edit(v)
		if p := b.get(env.authorizeURL(v)); !strings.HasPrefix(p.location, env.issuer+"/login?") {
			t.Errorf("%s: %d %s %s", name, p.status, p.location, p.body)
		}
	}
	v := env.authParams("openid user/*.rs")
	p := b.post(env.issuer+"/authorize", v)
	if !strings.HasPrefix(p.location, env.issuer+"/login?") {
		t.Fatalf("POST authorize: %d %s", p.status, p.location)
	}
	p = b.login(b.follow(p), "carol", alicePassword)
	p = b.submit(onlyForm(t, b.follow(p)), func(v url.Values) { v.Set("decision", "allow") })
	q := appRedirectParams(t, p, appRedirect)
	if rec := env.redeem(q.Get("code")); rec.Scope != "openid user/*.rs" || q.Get("state") != v.Get("state") {
		t.Fatalf("POST authorize code: %+v %v", rec, q)
	}
}

// TestAuthorizeTooLargeToSeal checks that a request whose sealed form
// would exceed the bound (a huge state) goes back to the app as
// invalid_request, and one whose state is not UTF-8 too.
func TestAuthorizeTooLargeToSeal(t *testing.T) {
	env := newFlowEnv(t, flowOptions{})
	b := env.browser()
	for name, state := range map[string]string{"huge state": strings.Repeat("s", 13<<10), "state not UTF-8": "st-\xff"} {
		v := env.authParams("openid patient/*.rs")
		v.Set("state", state)
		q := appRedirectParams(t, b.post(env.issuer+"/authorize", v), appRedirect)
		if q.Get("error") != "invalid_request" || q.Get("code") != "" || q.Get("state") != state {
			t.Fatalf("%s: %v", name, q.Get("error_description"))
		}
	}
}
