package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// adminSite is the flow site (flow_integration_test.go) run in this
// process with Caddy's admin endpoint on, on a free port, so that the
// admin API (admin.api.smart_auth) can be called.
type adminSite struct {
	flowSite
	adminPort int
	logFile   string // the Caddy log, when logged
}

// adminAddr is the admin endpoint's address, as --address takes it.
func (s adminSite) adminAddr() string { return fmt.Sprintf("localhost:%d", s.adminPort) }

// caddyfile is the flow site's Caddyfile with the admin endpoint on (and
// the log in logFile, when set).
func (s adminSite) caddyfile() string {
	cf := strings.Replace(s.flowSite.caddyfile(), "admin off", "admin "+s.adminAddr(), 1)
	if s.logFile != "" {
		cf = strings.Replace(cf, "output discard", "output file "+s.logFile, 1)
	}
	return cf
}

// newAdminSite builds an admin site around a flow site.
func newAdminSite(t *testing.T, fs flowSite) adminSite {
	t.Helper()
	return adminSite{flowSite: fs, adminPort: freePort(t)}
}

// startAdminSite starts a Badger-backed admin site.
func startAdminSite(t *testing.T) adminSite {
	t.Helper()
	s := newAdminSite(t, newFlowSite(t, ""))
	startCaddyfile(t, s.caddyfile())
	return s
}

// adminReply is an admin API answer.
type adminReply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// admin calls the admin API: method, a path under /smart-auth/ (with any
// query) and an optional JSON body.
func (s adminSite) admin(t *testing.T, method, path string, body any) adminReply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, fmt.Sprintf("http://%s/smart-auth/%s", s.adminAddr(), path), rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := adminReply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// expect fails the test unless the answer has the status.
func (r adminReply) expect(t *testing.T, what string, status int) adminReply {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: %d, want %d: %s", what, r.status, status, r.raw)
	}
	return r
}

// expectError checks an error answer: the status, and a JSON body
// {"error": "..."} containing want.
func (r adminReply) expectError(t *testing.T, what string, status int, want string) {
	t.Helper()
	msg, _ := r.body["error"].(string)
	if r.status != status || !strings.Contains(msg, want) || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Errorf("%s: %d %q (%s), want %d with an error containing %q", what, r.status, msg, r.header.Get("Content-Type"), status, want)
	}
}

// appTokens runs a standalone launch for a public client (PKCE) with
// offline_access and returns the access and refresh tokens.
func appTokens(t *testing.T, s flowSite, clientID string) (access, refreshToken string) {
	t.Helper()
	tok := appToken(t, s, clientID, "launch/patient", "patient/*.rs", "offline_access")
	if tok.RefreshToken == "" {
		t.Fatalf("token exchange for %s: no refresh token", clientID)
	}
	return tok.AccessToken, tok.RefreshToken
}

// appToken runs a standalone launch of a public client for alice with the
// scopes and returns the token answer.
func appToken(t *testing.T, s flowSite, clientID string, scopes ...string) *oauth2.Token {
	t.Helper()
	cfg := s.oauth(clientID, "", scopes...)
	verifier := oauth2.GenerateVerifier()
	q := newBrowser(t).run(cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", s.fhirBase())), s.redirect)
	tok, err := cfg.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("token exchange for %s: %v", clientID, err)
	}
	return tok
}

// guardRefusesWithin reads through the guard with the access token until
// it is refused (401), and fails the test unless that happens within
// bound of since. It returns how long it took from since.
func guardRefusesWithin(t *testing.T, s flowSite, access string, since time.Time, bound time.Duration) time.Duration {
	t.Helper()
	for {
		resp, body := guardedRead(t, s, access)
		if resp.StatusCode == http.StatusUnauthorized {
			return time.Since(since)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("guarded read: %d %s", resp.StatusCode, body)
		}
		if time.Since(since) > bound {
			t.Fatalf("the guard still allows the token %s after the revocation", bound)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
