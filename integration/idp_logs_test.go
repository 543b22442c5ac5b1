package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// TestIDPLogsHoldNoSecrets runs sign-ins through the test OP with every
// log at DEBUG into a file (a successful one, one with an expired
// id_token, one with a wrong iss, a replay) and checks that none of the
// provider's tokens, codes, states, the client secret or the state
// cookie appears in it.
func TestIDPLogsHoldNoSecrets(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	op := newTestOP(t)
	var mu sync.Mutex
	var secrets []string
	keep := func(v ...string) {
		mu.Lock()
		defer mu.Unlock()
		for _, x := range v {
			if len(x) >= 8 {
				secrets = append(secrets, x)
			}
		}
	}
	keep(opClientSecret)
	op.tap = func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/oauth/token" {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			var m map[string]any
			_ = json.Unmarshal(rec.Body.Bytes(), &m)
			for _, k := range []string{"access_token", "id_token", "refresh_token"} {
				if v, ok := m[k].(string); ok {
					keep(v)
				}
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
		})
	}
	t.Setenv("SMARTAUTH_TEST_IDP_SECRET", opClientSecret)
	s := newFlowSite(t, "sign_in identity_provider"+fmt.Sprintf(idpBlock, op.issuer, opClientID, ""))
	op.register(s.issuer()+"/login/idp/callback", s.issuer()+"/logout")
	op.start(t)
	startCaddyfile(t, strings.Replace(s.caddyfile(), "output discard", "output file "+logFile+"\n\t\tlevel DEBUG", 1))
	site := idpSite{flowSite: s, op: op}

	var callback string
	record := func(u *url.URL) {
		if site.toCallback(u) {
			callback = u.String()
			q := u.Query()
			keep(q.Get("code"), q.Get("state"))
		}
	}
	run := func(edit func(*url.URL)) idpResult {
		b := newBrowser(t)
		cfg := s.oauth("public-app", "", "openid", "fhirUser")
		r := runIDP(t, b, site.authURL(cfg, oauth2.GenerateVerifier()), s.redirect, func(u *url.URL) {
			record(u)
			if edit != nil {
				edit(u)
			}
			if site.toCallback(u) {
				for _, c := range b.c.Jar.Cookies(u) {
					keep(c.Value)
				}
			}
		})
		keep(r.app.Get("code"))
		return r
	}
	if r := run(nil); r.app.Get("code") == "" {
		t.Fatalf("sign-in: %+v", r)
	}
	resp, _ := fetch(t, "GET", callback, nil) // a replay without the cookie
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("replay: %d", resp.StatusCode)
	}
	run(func(u *url.URL) {
		if site.toCallback(u) {
			q := u.Query()
			q.Set("iss", "https://attacker.example")
			u.RawQuery = q.Encode()
		}
	})
	op.st.idTokenLifetime.Store(int64(-time.Hour))
	if r := run(nil); r.status != http.StatusBadGateway {
		t.Errorf("expired id_token: %d", r.status)
	}

	raw, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("identity provider answer refused")) || !bytes.Contains(raw, []byte("signed in through an identity provider")) {
		t.Fatalf("the log lacks the sign-in lines (was it written?):\n%s", raw)
	}
	if len(secrets) < 10 {
		t.Fatalf("only %d secrets collected", len(secrets))
	}
	for _, x := range secrets {
		if bytes.Contains(raw, []byte(x)) {
			t.Errorf("the log holds a secret (%d characters, starting %q)", len(x), x[:4])
		}
	}
}
