package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestLoginCSRFCookie checks the sign-in form's stateless CSRF check: the
// token must be the one of the browser's own CSRF cookie, and the post
// must not come from another site; then, and only then, the user signs
// in.
func TestLoginCSRFCookie(t *testing.T) {
	env := newFlowEnv(t, flowOptions{})
	victim, attacker := env.browser(), env.browser()
	attackerForm := onlyForm(t, attacker.get(env.issuer+"/login"))
	victimForm := onlyForm(t, victim.get(env.issuer+"/login"))
	credentials := func(v url.Values) { v.Set("username", "alice"); v.Set("password", alicePassword) }

	// The attacker's token (valid with the attacker's cookie) posted from
	// the victim's browser, whose cookie differs.
	if p := victim.submit(attackerForm, credentials); p.status != http.StatusForbidden || cookieNamed(p, "smart_auth_session") != nil {
		t.Fatalf("another browser's CSRF token: %d", p.status)
	}
	// The victim's own form, posted from another site.
	v := victimForm.values()
	credentials(v)
	for h, val := range map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"} {
		req, _ := http.NewRequest(http.MethodPost, victimForm.action, strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set(h, val)
		if p := victim.do(req); p.status != http.StatusForbidden || cookieNamed(p, "smart_auth_session") != nil {
			t.Fatalf("sign-in with %s %s: %d", h, val, p.status)
		}
	}
	// The genuine form signs in.
	p := victim.submit(victimForm, credentials)
	if p.status != http.StatusOK || cookieNamed(p, "smart_auth_session") == nil || !strings.Contains(p.body, "signed in") {
		t.Fatalf("genuine sign-in: %d %s", p.status, p.body)
	}
}

// TestLoginUnknownRequest: the sign-in page named with a request that does
// not open (expired, altered, made up) says the request is gone, instead
// of showing a plain form after which the app would never hear back.
func TestLoginUnknownRequest(t *testing.T) {
	env := newFlowEnv(t, flowOptions{})
	b := env.browser()
	for _, req := range []string{"made-up", strings.Repeat("A", 600)} {
		p := b.get(env.issuer + "/login?" + url.Values{"req": {req}}.Encode())
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, "Request expired") {
			t.Fatalf("sign-in page for request %.20q: %d %.300s, want 400 Request expired", req, p.status, p.body)
		}
	}
	if p := b.get(env.issuer + "/login"); p.status != http.StatusOK || !strings.Contains(p.body, `name="password"`) {
		t.Fatalf("sign-in page without a request: %d", p.status)
	}
}
