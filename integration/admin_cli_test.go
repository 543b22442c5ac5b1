package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/smartcaddy/smartauth/internal/pgtest"
)

// TestAdminCLIRunningAndStopped runs `caddy smart-auth` against a running
// server (through its admin API, with and without --storage) and, once it
// is stopped, against the storage directory itself.
func TestAdminCLIRunningAndStopped(t *testing.T) {
	s := startAdminSite(t)
	addr := s.adminAddr()
	reg := s.admin(t, "POST", "clients", map[string]any{
		"client_name": "CLI App", "redirect_uris": []string{s.redirect}, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"},
	}).expect(t, "register", 201)
	appID := str(reg.body, "client_id")

	// Listing through the server shows configured and registered
	// clients; --storage naming the server's directory goes through it
	// too (the directory is locked).
	for _, args := range [][]string{{"clients", "--address", addr}, {"clients", "--address", addr, "--storage", s.storage}} {
		out, err := runCLI(t, "", args...)
		if err != nil || !strings.Contains(out, "public-app") || !strings.Contains(out, "configuration") || !strings.Contains(out, appID) {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	out, err := runCLI(t, "", "clients", "--address", addr, "--json")
	var listed []map[string]any
	if err != nil || json.Unmarshal([]byte(out), &listed) != nil || len(listed) != 4 {
		t.Fatalf("clients --json: %v\n%s", err, out)
	}

	// Grants and a user's revocation, through the server.
	access, rt := appTokens(t, s.flowSite, "public-app")
	family := familyOf(t, access)
	out, err = runCLI(t, "", "grants", "--address", addr, "--user", "alice")
	if err != nil || !strings.Contains(out, family) {
		t.Fatalf("grants: %v\n%s", err, out)
	}
	start := time.Now()
	out, err = runCLI(t, "", "revoke", "--address", addr, "--user", "alice")
	if err != nil || !strings.Contains(out, "revoked 1 refresh-token families") {
		t.Fatalf("revoke --user: %v\n%s", err, out)
	}
	guardRefusesWithin(t, s.flowSite, access, start, revocationBound)
	if r := refresh(t, s.flowSite, rt, "public-app"); r["error"] != "invalid_grant" {
		t.Errorf("refresh after revoke --user: %v", r)
	}

	// A client's tokens, a family, keys, rotation and health.
	access2, _ := appTokens(t, s.flowSite, appID)
	if _, err := runCLI(t, "", "revoke", "--address", addr, "--family", familyOf(t, access2)); err != nil {
		t.Fatal(err)
	}
	guardRefusesWithin(t, s.flowSite, access2, time.Now(), revocationBound)
	if _, err := runCLI(t, "", "revoke", "--address", addr, "--client", "public-app"); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, "", "revoke", "--address", addr, "--client", "a", "--user", "b"); err == nil || !strings.Contains(err.Error(), "one of") {
		t.Errorf("revoke with two targets: %v", err)
	}
	if _, err := runCLI(t, "", "revoke", "--address", addr, "--client", "no-such-client"); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Errorf("revoke of an unknown client through the server: %v", err)
	}
	if out, err := runCLI(t, "", "keys", "--address", addr); err != nil || strings.Count(out, "active") != 2 {
		t.Errorf("keys: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "", "rotate-keys", "--address", addr, "--alg", "ES256"); err != nil || strings.Count(out, "pending") != 1 || !strings.Contains(out, "rotated: [ES256]") {
		t.Errorf("rotate-keys: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "", "health", "--address", addr); err != nil || !strings.Contains(out, `"ready"`) {
		t.Errorf("health: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "", "remove-client", "--address", addr, appID); err != nil {
		t.Fatal(err)
	}

	// Stopped: the storage directory is used directly; without it the
	// command says that no server answers.
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(t, "", "clients", "--address", addr, "--storage", s.storage)
	if err != nil || strings.Contains(out, "public-app") || strings.Contains(out, appID) {
		t.Fatalf("clients on the directory (only registered ones, and the one registered was removed): %v\n%s", err, out)
	}
	if out, err := runCLI(t, "", "grants", "--address", addr, "--storage", s.storage, "--user", "alice"); err != nil || strings.Contains(out, family) {
		t.Errorf("grants on the directory after revoke --user: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "", "revoke", "--address", addr, "--storage", s.storage, "--client", "confidential-app"); err != nil {
		t.Errorf("revoke on the directory: %v", err)
	}
	// (In this process, the admin endpoint outlives the stopped config:
	// a Caddy without smart_auth.)
	if _, err := runCLI(t, "", "clients", "--address", addr); err == nil || !strings.Contains(err.Error(), "runs no smart_auth handler") {
		t.Errorf("clients on a Caddy without smart_auth: %v", err)
	}
	nobody := fmt.Sprintf("localhost:%d", freePort(t))
	if _, err := runCLI(t, "", "clients", "--address", nobody); err == nil || !strings.Contains(err.Error(), "no running Caddy answers") {
		t.Errorf("clients without a server nor --storage: %v", err)
	}
	if _, err := runCLI(t, "", "keys", "--address", nobody); err == nil || !strings.Contains(err.Error(), "no running Caddy answers") {
		t.Errorf("keys without a server: %v", err)
	}
	if out, err := runCLI(t, "", "clients", "--address", nobody, "--storage", s.storage, "--json"); err != nil || strings.TrimSpace(out) != "[]" {
		t.Errorf("clients on the directory, no server: %v\n%s", err, out)
	}
}

// TestAdminHealthPostgresOutage: readiness turns unready when the
// PostgreSQL database refuses connections, and ready again when it
// accepts them; each change is logged once, not once per request.
func TestAdminHealthPostgresOutage(t *testing.T) {
	fs, dsn := newPostgresFlowSite(t, func(dsn string) string {
		t.Setenv(dsnEnv, dsn)
		return "{env." + dsnEnv + "}"
	})
	s := newAdminSite(t, fs)
	s.logFile = t.TempDir() + "/caddy.log"
	startCaddyfile(t, s.caddyfile())
	health := func() (int, map[string]any) {
		resp, raw := fetch(t, "GET", s.issuer()+"/health", nil)
		var body map[string]any
		if err := json.Unmarshal([]byte(raw), &body); err != nil || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("health: %d %q %v", resp.StatusCode, raw, resp.Header)
		}
		return resp.StatusCode, body
	}
	if code, body := health(); code != 200 || body["status"] != "ready" {
		t.Fatalf("health: %d %v", code, body)
	}
	if r := s.admin(t, "GET", "issuers", nil).expect(t, "issuers", 200); !strings.Contains(r.raw, `"storage":"postgres"`) ||
		strings.Contains(r.raw, "storage_dir") || strings.Contains(r.raw, dsn) {
		t.Errorf("issuers: %s", r.raw)
	}

	pgtest.Refuse(t, dsn)
	var body map[string]any
	waitFor(t, "health to turn unready", func() bool {
		var code int
		code, body = health()
		return code == http.StatusServiceUnavailable
	})
	if failed := strs(body["failed"]); len(failed) != 1 || failed[0] != "store" || body["status"] != "unready" {
		t.Errorf("unready health: %v", body)
	}
	for range 3 { // more requests while unready: no more log lines
		if code, _ := health(); code != http.StatusServiceUnavailable {
			t.Fatalf("health during the outage: %d", code)
		}
	}
	s.admin(t, "GET", "health", nil).expect(t, "admin health during the outage", http.StatusServiceUnavailable)
	s.admin(t, "GET", "clients", nil).expectError(t, "clients during the outage", http.StatusServiceUnavailable, "unavailable")

	pgtest.Allow(t, dsn)
	waitFor(t, "health to turn ready", func() bool { code, _ := health(); return code == 200 })
	for range 3 {
		if code, _ := health(); code != 200 {
			t.Fatalf("health after the outage: %d", code)
		}
	}
	logged, err := os.ReadFile(s.logFile)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(logged), "not ready: a readiness check fails"); n != 1 {
		t.Errorf("unready logged %d times, want once", n)
	}
	if n := strings.Count(string(logged), "ready again"); n != 1 {
		t.Errorf("ready again logged %d times, want once", n)
	}
	if strings.Contains(string(logged), dsn) {
		t.Error("the log holds the DSN")
	}
}

// waitFor polls cond every 50ms, up to 30s (a wait, not a bound under
// test), and fails the test if it never holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
