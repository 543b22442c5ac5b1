package integration

import (
	"fmt"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// Issue 15 §3, through a real Caddy: two smart_auth handlers of one
// config that guard one FHIR base for two issuers are refused at load,
// with the option and both issuers named; the same issuer on two sites
// loads.
func TestTwoIssuersOneFHIRBaseRefused(t *testing.T) {
	a, b := freePort(t), freePort(t)
	caddyfile := func(issuerB string) string {
		return globalOptions + fmt.Sprintf(`
http://localhost:%d {
	smart_auth {
		issuer http://localhost:%d/auth
		fhir_base http://localhost:%d/fhir
		storage %s
	}
	respond "a"
}
http://localhost:%d {
	smart_auth {
		issuer %s
		fhir_base http://localhost:%d/fhir
		storage %s
	}
	reverse_proxy /fhir /fhir/* localhost:%d
}
`, a, a, b, t.TempDir(), b, issuerB, b, t.TempDir(), freePort(t))
	}
	err := caddy.Load(adapt(t, caddyfile(fmt.Sprintf("http://localhost:%d/auth", b))), true)
	t.Cleanup(func() { _ = caddy.Stop() })
	if err == nil {
		t.Fatal("two issuers guarding one FHIR base loaded")
	}
	want := fmt.Sprintf("fhir_base http://localhost:%d/fhir: already guarded by the smart_auth handler of issuer", b)
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v\nwant it to contain %q", err, want)
	}
	load(t, adapt(t, caddyfile(fmt.Sprintf("http://localhost:%d/auth", a))))
}
