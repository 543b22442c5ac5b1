package integration

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAdminCLIProcess runs the built `caddy` binary: `caddy run` with the
// admin endpoint on, then `caddy smart-auth …` as separate processes,
// through the admin API while it runs and on the storage directory once
// it has stopped.
func TestAdminCLIProcess(t *testing.T) {
	s := newAdminSite(t, newFlowSite(t, ""))
	dir := t.TempDir()
	cf := filepath.Join(dir, "Caddyfile")
	writeCaddyfile(t, cf, s.caddyfile())
	p := startCaddyProcess(t, cf, filepath.Join(dir, "caddy.log"))
	p.waitReady(s.issuer() + "/health")

	smartAuth := func(args ...string) (string, error) {
		out, err := exec.Command(caddyBinary(t), append([]string{"smart-auth"}, args...)...).CombinedOutput()
		return string(out), err
	}
	access, rt := appTokens(t, s.flowSite, "public-app")
	start := time.Now()
	if out, err := smartAuth("revoke", "--address", s.adminAddr(), "--storage", s.storage, "--client", "public-app"); err != nil ||
		!strings.Contains(out, "revoked every token issued to public-app") {
		t.Fatalf("revoke through the running server: %v\n%s", err, out)
	}
	lag := guardRefusesWithin(t, s.flowSite, access, start, revocationBound+time.Second) // + the command's own start
	t.Logf("command start to guard refusal: %s", lag)
	if r := refresh(t, s.flowSite, rt, "public-app"); r["error"] != "invalid_grant" {
		t.Errorf("refresh after the revocation: %v", r)
	}
	if out, err := smartAuth("clients", "--address", s.adminAddr()); err != nil || !strings.Contains(out, "confidential-app") {
		t.Errorf("clients through the running server: %v\n%s", err, out)
	}

	p.stop()
	if out, err := smartAuth("clients", "--address", s.adminAddr(), "--storage", s.storage, "--json"); err != nil || strings.TrimSpace(out) != "[]" {
		t.Errorf("clients on the directory of the stopped server: %v\n%s", err, out)
	}
	if out, err := smartAuth("revoke", "--address", s.adminAddr(), "--client", "public-app"); err == nil || !strings.Contains(out, "no running Caddy answers") {
		t.Errorf("revoke with no server and no --storage: %v\n%s", err, out)
	}
}
