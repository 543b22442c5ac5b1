package integration

import (
	"strings"
	"testing"
)

// TestAdminAPIAfterReload: after a config reload the admin API answers
// for the new configuration's handler (its configured clients), and the
// old one is gone from the issuers.
func TestAdminAPIAfterReload(t *testing.T) {
	s := startAdminSite(t)
	if r := s.admin(t, "GET", "clients", nil).expect(t, "clients", 200); strings.Contains(r.raw, "reloaded-app") {
		t.Fatalf("clients before the reload: %s", r.raw)
	}
	s.extra += `
		client reloaded-app {
			redirect_uri ` + s.redirect + `
		}`
	load(t, adapt(t, s.caddyfile()))
	if r := s.admin(t, "GET", "clients", nil).expect(t, "clients after the reload", 200); !strings.Contains(r.raw, `"client_id":"reloaded-app"`) {
		t.Fatalf("clients after the reload: %s", r.raw)
	}
	if r := s.admin(t, "GET", "issuers", nil).expect(t, "issuers", 200); strings.Count(r.raw, `"issuer"`) != 1 {
		t.Errorf("issuers after the reload: %s", r.raw)
	}
	if _, err := runCLI(t, "", "revoke", "--address", s.adminAddr(), "--client", "reloaded-app"); err != nil {
		t.Errorf("revoke a client of the new configuration: %v", err)
	}
}
