package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// The failures of a sign-in through the test OP: each ends on a page that
// says what happened, offers the way back to the app (with the error the
// app gets), and leaves no session behind.

// toCallback tells whether a URL is the site's provider callback.
func (s idpSite) toCallback(u *url.URL) bool {
	return strings.HasPrefix(u.String(), s.issuer()+"/login/idp/callback")
}

// expectRefused checks a run that must end on a page with status and
// text, offering the app's error, with nobody signed in afterwards.
func (s idpSite) expectRefused(t *testing.T, b *browser, r idpResult, status int, text, appError string) {
	t.Helper()
	if r.app != nil || r.status != status || !strings.Contains(r.body, text) {
		t.Fatalf("want a %d page with %q, got app %v, %d:\n%s", status, text, r.app, r.status, r.body)
	}
	if appError != "" && !strings.Contains(r.body, "error="+appError) {
		t.Errorf("the page offers no way back to the app with error=%s:\n%s", appError, r.body)
	}
	// Nobody is signed in: the sign-out page says so.
	resp, err := b.c.Get(s.issuer() + "/logout")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if strings.Contains(string(body), "You are signed in") {
		t.Errorf("a session was left behind")
	}
}

// TestIDPRefusedUser: mallory is not in the group the site requires.
func TestIDPRefusedUser(t *testing.T) {
	s := startIDPSite(t, "identity_provider", "", false)
	b := newBrowser(t)
	b.choose["username"], b.choose["password"] = "mallory", "mallory-pw"
	cfg := s.oauth("public-app", "", "openid", "fhirUser")
	r := runIDP(t, b, s.authURL(cfg, oauth2.GenerateVerifier()), s.redirect, nil)
	s.expectRefused(t, b, r, http.StatusForbidden, "not among those allowed", "access_denied")
}

// TestIDPNoFHIRUser: frank is accepted (unlisted) but has no employee
// id: an app not asking for fhirUser works, one asking for it gets a
// page saying why.
func TestIDPNoFHIRUser(t *testing.T) {
	s := startIDPSite(t, "identity_provider", "", false)
	b := newBrowser(t)
	b.choose["username"], b.choose["password"] = "frank", "frank-pw"
	cfg := s.oauth("public-app", "", "openid")
	if r := runIDP(t, b, s.authURL(cfg, oauth2.GenerateVerifier()), s.redirect, nil); r.app.Get("code") == "" {
		t.Fatalf("an app without fhirUser: %+v", r)
	}
	cfg = s.oauth("public-app", "", "openid", "fhirUser")
	r := runIDP(t, b, s.authURL(cfg, oauth2.GenerateVerifier()), s.redirect, nil)
	if r.status != http.StatusForbidden || !strings.Contains(r.body, "health-record identity") || !strings.Contains(r.body, "error=access_denied") {
		t.Fatalf("an app needing fhirUser: %d %s", r.status, r.body)
	}
}

// TestIDPAccessDenied: the OP answers access_denied (the user cancelled).
func TestIDPAccessDenied(t *testing.T) {
	s := startIDPSite(t, "identity_provider", "", false)
	b := newBrowser(t)
	cfg := s.oauth("public-app", "", "openid")
	r := runIDP(t, b, s.authURL(cfg, oauth2.GenerateVerifier()), s.redirect, func(u *url.URL) {
		if s.toCallback(u) {
			q := url.Values{"error": {"access_denied"}, "state": {u.Query().Get("state")}}
			u.RawQuery = q.Encode()
		}
	})
	s.expectRefused(t, b, r, http.StatusForbidden, "did not sign you in", "access_denied")
}

// TestIDPWrongIss: an answer whose RFC 9207 iss is another provider's (a
// mix-up attack) is refused before the code is used.
func TestIDPWrongIss(t *testing.T) {
	s := startIDPSite(t, "identity_provider", "", false)
	b := newBrowser(t)
	r := runIDP(t, b, s.authURL(s.oauth("public-app", "", "openid"), oauth2.GenerateVerifier()), s.redirect, func(u *url.URL) {
		if s.toCallback(u) {
			q := u.Query()
			q.Set("iss", "https://attacker.example")
			u.RawQuery = q.Encode()
		}
	})
	s.expectRefused(t, b, r, http.StatusBadRequest, "did not come from Test Hospital", "access_denied")
	// The right iss is accepted.
	r = runIDP(t, newBrowser(t), s.authURL(s.oauth("public-app", "", "openid"), oauth2.GenerateVerifier()), s.redirect, func(u *url.URL) {
		if s.toCallback(u) {
			q := u.Query()
			q.Set("iss", s.op.issuer)
			u.RawQuery = q.Encode()
		}
	})
	if r.app.Get("code") == "" {
		t.Fatalf("the right iss: %+v", r)
	}
}

// TestIDPWrongNonce: the OP is asked (by an attacker's altered request)
// for another nonce: the id_token's nonce is not the sign-in's.
func TestIDPWrongNonce(t *testing.T) {
	s := startIDPSite(t, "identity_provider", "", false)
	b := newBrowser(t)
	r := runIDP(t, b, s.authURL(s.oauth("public-app", "", "openid"), oauth2.GenerateVerifier()), s.redirect, func(u *url.URL) {
		if strings.HasPrefix(u.String(), s.op.issuer+"/auth?") {
			q := u.Query()
			q.Set("nonce", "attacker-chosen-nonce")
			u.RawQuery = q.Encode()
		}
	})
	s.expectRefused(t, b, r, http.StatusBadGateway, "could not be verified", "server_error")
}

// TestIDPReplayedResponse: the OP's answer, replayed with the state
// cookie it came with, signs nobody in; without the cookie (another
// browser) it is refused at once.
func TestIDPReplayedResponse(t *testing.T) {
	s := startIDPSite(t, "identity_provider", "", false)
	b := newBrowser(t)
	var callback *url.URL
	var cookies []*http.Cookie
	r := runIDP(t, b, s.authURL(s.oauth("public-app", "", "openid"), oauth2.GenerateVerifier()), s.redirect, func(u *url.URL) {
		if s.toCallback(u) {
			callback = &url.URL{}
			*callback = *u
			cookies = b.c.Jar.Cookies(u)
		}
	})
	if r.app.Get("code") == "" || callback == nil {
		t.Fatalf("sign-in: %+v", r)
	}
	replay := func(withCookies bool) (int, string) {
		req, _ := http.NewRequest("GET", callback.String(), nil)
		if withCookies {
			for _, c := range cookies {
				req.AddCookie(c)
			}
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, c := range resp.Cookies() {
			if c.Name == "smart_auth_session" && c.Value != "" {
				t.Errorf("a replay started a session")
			}
		}
		return resp.StatusCode, string(body)
	}
	if st, body := replay(true); st < 400 || !strings.Contains(body, "Sign-in") {
		t.Errorf("replay with the state cookie: %d %s", st, body)
	}
	if st, body := replay(false); st != http.StatusBadRequest || !strings.Contains(body, "does not belong to a sign-in started in this browser") {
		t.Errorf("replay without the state cookie: %d %s", st, body)
	}
}

// TestIDPExpiredIDToken: an id_token that expired longer ago than the
// tolerated clock skew is refused; one within the skew is accepted.
func TestIDPExpiredIDToken(t *testing.T) {
	s := startIDPSite(t, "identity_provider", "clock_skew 2m", false)
	s.op.st.idTokenLifetime.Store(int64(-10 * time.Minute))
	b := newBrowser(t)
	r := runIDP(t, b, s.authURL(s.oauth("public-app", "", "openid"), oauth2.GenerateVerifier()), s.redirect, nil)
	s.expectRefused(t, b, r, http.StatusBadGateway, "could not be verified", "server_error")

	s.op.st.idTokenLifetime.Store(int64(-30 * time.Second))
	r = runIDP(t, newBrowser(t), s.authURL(s.oauth("public-app", "", "openid"), oauth2.GenerateVerifier()), s.redirect, nil)
	if r.app.Get("code") == "" {
		t.Fatalf("an id_token expired within the clock skew: %+v", r)
	}
}

// TestIDPProviderDown: the OP is down when the site starts (the site
// starts, stays ready but reports itself degraded, and says so to a
// user), comes up (the sign-in works, the report is clean again), and goes down in the middle of a
// sign-in (after the user signed in there, before the code is
// exchanged).
func TestIDPProviderDown(t *testing.T) {
	s := startIDPSite(t, "identity_provider", "", true)
	health := func() (int, map[string]any) {
		resp, body := fetch(t, "GET", s.issuer()+"/health", nil)
		var h map[string]any
		_ = json.Unmarshal([]byte(body), &h)
		return resp.StatusCode, h
	}
	if st, h := health(); st != http.StatusOK || h["status"] != "ready" || h["failed"] != nil ||
		!strings.Contains(toJSON(h["degraded"]), "identity_providers") {
		t.Fatalf("health with the OP down: %d %v, want 200, ready, degraded identity_providers", st, h)
	}
	b := newBrowser(t)
	r := runIDP(t, b, s.authURL(s.oauth("public-app", "", "openid"), oauth2.GenerateVerifier()), s.redirect, nil)
	s.expectRefused(t, b, r, http.StatusServiceUnavailable, "cannot be reached", "temporarily_unavailable")

	s.op.start(t)
	if st, h := health(); st != http.StatusOK || h["degraded"] != nil {
		t.Fatalf("health with the OP up: %d %v", st, h)
	}
	r = runIDP(t, newBrowser(t), s.authURL(s.oauth("public-app", "", "openid"), oauth2.GenerateVerifier()), s.redirect, nil)
	if r.app.Get("code") == "" {
		t.Fatalf("sign-in once the OP is up: %+v", r)
	}

	b = newBrowser(t)
	r = runIDP(t, b, s.authURL(s.oauth("public-app", "", "openid"), oauth2.GenerateVerifier()), s.redirect, func(u *url.URL) {
		if s.toCallback(u) {
			s.op.stop()
		}
	})
	s.expectRefused(t, b, r, http.StatusServiceUnavailable, "cannot be reached", "temporarily_unavailable")
}

// toJSON renders a value for a message.
func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestIDPIssRequiredWhenAdvertised: a provider whose discovery document
// advertises RFC 9207 (authorization_response_iss_parameter_supported)
// must send iss; an answer without it is refused (here the test OP's
// discovery document is amended to advertise it; the OP does not send
// iss).
func TestIDPIssRequiredWhenAdvertised(t *testing.T) {
	op := newTestOP(t)
	op.tap = func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/.well-known/openid-configuration" {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			var m map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
				t.Errorf("discovery: %v", err)
			}
			m["authorization_response_iss_parameter_supported"] = true
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(m)
		})
	}
	t.Setenv("SMARTAUTH_TEST_IDP_SECRET", opClientSecret)
	fs := newFlowSite(t, "sign_in identity_provider"+fmt.Sprintf(idpBlock, op.issuer, opClientID, ""))
	op.register(fs.issuer()+"/login/idp/callback", fs.issuer()+"/logout")
	op.start(t)
	startCaddyfile(t, fs.caddyfile())
	s := idpSite{flowSite: fs, op: op}
	b := newBrowser(t)
	r := runIDP(t, b, s.authURL(s.oauth("public-app", "", "openid"), oauth2.GenerateVerifier()), s.redirect, nil)
	s.expectRefused(t, b, r, http.StatusBadRequest, "did not come from Test Hospital", "access_denied")
	// With iss, as the provider promised, it goes through.
	r = runIDP(t, newBrowser(t), s.authURL(s.oauth("public-app", "", "openid"), oauth2.GenerateVerifier()), s.redirect, func(u *url.URL) {
		if s.toCallback(u) {
			q := u.Query()
			q.Set("iss", op.issuer)
			u.RawQuery = q.Encode()
		}
	})
	if r.app.Get("code") == "" {
		t.Fatalf("with iss: %+v", r)
	}
}
