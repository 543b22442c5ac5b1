package integration

import (
	"fmt"
	"os"
	"path/filepath"
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

// routeWarnings loads a site whose body (after the smart_auth block, or
// around it when wrap has a %s) is given, with Caddy's log in a file, and
// returns the warnings smart_auth logged.
func routeWarnings(t *testing.T, body string) string {
	t.Helper()
	port := freePort(t)
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	block := fmt.Sprintf(`smart_auth {
		issuer http://localhost:%d/auth
		fhir_base http://localhost:%d/fhir
		storage %s
	}`, port, port, t.TempDir())
	caddyfile := fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
	log {
		output file %s
		level WARN
	}
}
http://localhost:%d {
	%s
}
`, logFile, port, strings.Replace(body, "SMART_AUTH", block, 1))
	load(t, adapt(t, caddyfile))
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A route around smart_auth that keeps the issuer's paths from it, and
// a route after it that proxies {base}/* but not {base}, are warned about
// at start; the README's routing is not.
func TestRouteWarnings(t *testing.T) {
	const never, baseless = "smart_auth never receives /auth/authorize", "the routes after smart_auth receive /fhir/… but not the FHIR base /fhir itself"
	const beside = "a route after smart_auth matches paths beside the FHIR base such as /fhir-unguarded"
	upstream := fmt.Sprintf("localhost:%d", freePort(t))
	for _, tc := range []struct {
		name, body string
		want, not  []string
	}{
		{"inside handle /fhir/*", "handle /fhir/* {\n SMART_AUTH\n reverse_proxy " + upstream + "\n}", []string{never}, []string{baseless, beside}},
		{"proxy of /fhir/* only", "SMART_AUTH\n reverse_proxy /fhir/* " + upstream, []string{baseless}, []string{never, beside}},
		{"proxy of the base and below", "SMART_AUTH\n reverse_proxy /fhir /fhir/* " + upstream, nil, []string{never, baseless, beside}},
		{"handle of the base and below", "SMART_AUTH\n @fhir path /fhir /fhir/*\n handle @fhir {\n reverse_proxy " + upstream + "\n }\n respond 404", nil, []string{never, baseless, beside}},
		{"handle of a prefix", "SMART_AUTH\n handle /fhir* {\n reverse_proxy " + upstream + "\n }\n respond 404", []string{beside}, []string{never, baseless}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := routeWarnings(t, tc.body)
			for _, w := range tc.want {
				if !strings.Contains(logs, w) {
					t.Errorf("no warning %q in the log:\n%s", w, logs)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(logs, w) {
					t.Errorf("warning %q logged:\n%s", w, logs)
				}
			}
			_ = caddy.Stop()
		})
	}
}
