package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// exampleCaddyfile is ../example.Caddyfile moved to free ports and a
// temporary storage directory, with the in-process test options. The
// roots of its demo FHIR server and demo app, demo/fhir and demo/app
// relative to the repository root where the README runs it, become
// absolute paths of ../demo. It returns the Caddyfile and the main site's
// URL.
func exampleCaddyfile(t *testing.T) (string, string) {
	t.Helper()
	raw, err := os.ReadFile("../example.Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	demoRoot, err := filepath.Abs(filepath.Join("..", "demo"))
	if err != nil {
		t.Fatal(err)
	}
	main, fhir, app := freePort(t), freePort(t), freePort(t)
	r := strings.NewReplacer(
		"localhost:8080", fmt.Sprintf("localhost:%d", main),
		"localhost:8081", fmt.Sprintf("localhost:%d", fhir),
		"127.0.0.1:8081", fmt.Sprintf("127.0.0.1:%d", fhir),
		"localhost:9090", fmt.Sprintf("localhost:%d", app),
		"./smartauth-data", t.TempDir(),
		"\troot * demo/", "\troot * "+demoRoot+"/",
		"\tauto_https off\n", "\tauto_https off\n\tadmin off\n\tpersist_config off\n",
	)
	cf := r.Replace(string(raw))
	if !strings.Contains(cf, "admin off") {
		t.Fatal("example.Caddyfile changed shape: no global auto_https line")
	}
	for _, root := range []string{"fhir", "app"} {
		if !strings.Contains(cf, "\troot * "+demoRoot+"/"+root+"\n") {
			t.Fatalf("example.Caddyfile changed shape: no line `root * demo/%s`", root)
		}
	}
	return cf, fmt.Sprintf("http://localhost:%d", main)
}

// observe fetches what a client sees of the example server.
func observe(t *testing.T, base string) []string {
	t.Helper()
	var out []string
	for _, path := range []string{
		"/fhir/.well-known/smart-configuration",
		"/.well-known/smart-configuration",
		"/auth/.well-known/openid-configuration",
		"/auth/jwks",
		"/fhir/metadata",
		"/fhir/Patient/pat-1",
		"/",
	} {
		resp, body := fetch(t, "GET", base+path, nil)
		out = append(out, fmt.Sprintf("%s %d %s %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), body))
	}
	return out
}

func TestExampleCaddyfileServesAndAdaptsToEquivalentJSON(t *testing.T) {
	cf, base := exampleCaddyfile(t)
	js := adapt(t, cf)
	startCaddyfile(t, cf)
	fromCaddyfile := observe(t, base)

	if !strings.Contains(fromCaddyfile[4], `"resourceType": "CapabilityStatement"`) {
		t.Errorf("the demo FHIR server did not answer /fhir/metadata: %s", fromCaddyfile[4])
	}
	if !strings.Contains(fromCaddyfile[5], " 401 ") {
		t.Errorf("a FHIR read without a token was not refused: %s", fromCaddyfile[5])
	}

	// The adapted JSON, loaded on its own, behaves identically.
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	load(t, js)
	fromJSON := observe(t, base)
	for i := range fromCaddyfile {
		if fromCaddyfile[i] != fromJSON[i] {
			t.Errorf("differs:\nCaddyfile: %s\nJSON:      %s", fromCaddyfile[i], fromJSON[i])
		}
	}
	if t.Failed() {
		return
	}
	// The demo client's secret hash is there, the clear secret is not.
	if strings.Contains(string(js), "demo-confidential-secret") {
		t.Error("a clear secret in the adapted JSON")
	}
}

func TestDirectiveOrderNeedsNoOrderOption(t *testing.T) {
	js := adapt(t, globalOptions+`
http://localhost:9 {
	reverse_proxy /fhir/* localhost:10
	smart_auth {
		issuer http://localhost:9/auth
		fhir_base http://localhost:9/fhir
	}
	basic_auth /admin/* {
		admin $2a$04$5Hf0XGzn1vhL0b0bEbZcS.2mZB9lmgGEbYHI2HOgeGLhUOtpQ6PZy
	}
	forward_auth /sso/* localhost:11 {
		uri /verify
	}
	handle /x {
		respond "x"
	}
}`)
	s := string(js)
	auth := strings.Index(s, `"handler":"authentication"`)
	fwd := strings.Index(s, `/verify`)
	sa := strings.Index(s, `"handler":"smart_auth"`)
	rp := strings.Index(s, `"localhost:10"`)
	hd := strings.Index(s, `"body":"x"`)
	if auth < 0 || fwd < 0 || sa < 0 || rp < 0 || hd < 0 {
		t.Fatalf("handlers missing from %s", s)
	}
	if !(auth < sa && fwd < sa && sa < rp && sa < hd) {
		t.Errorf("smart_auth must come after basic_auth and forward_auth and before handle and reverse_proxy:\n%s", s)
	}
}
