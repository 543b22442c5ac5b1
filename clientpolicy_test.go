package smartauth

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// A public RSA key of 1024 bits: too short for a client (the token
// endpoint would never use it), so the configuration refuses it.
const rsa1024ClientJWKS = `{"keys":[{"e":"AQAB","kid":"rs-short","kty":"RSA","n":"u5oemG0OvGnAgPHFvuSSjJPTYHUP_3QczRkgPrRuSycSerR6VwxiJ2y5WBSYsNgd6me9vU6bKkoU-YaBbpPKoSRaVEt-MydSwQq3PQAj-tJLlaD2XbEM4V_g7urkITTK2Z9okmYxf-l68DOHpMSR_y9CjAarna4JNmNSP7VqFbs"}]}`

// A public EC key on P-521, a curve no accepted algorithm uses.
const p521ClientJWKS = `{"keys":[{"crv":"P-521","kid":"ec521","kty":"EC","x":"AUgPsG2G-jUstWIK8JMU4mV21bSbyBGAbgOgasH_8GadG8zenKJQFpQeY7yoKkZJ9kZEsIJhs1JdH2y8Upgw3fyp","y":"AKZp0Db4wH_3XiWr_dBXC81S-tROK7RGEez2BWghR3Al5jXL7LRzxBIDCNkCem_8FDZaUFHGUUTmJHvZR9HEnGIa"}]}`

// TestCaddyfileRefusesWeakClientKey adapts a whole Caddyfile whose
// client registers a 1024-bit RSA key (or a P-521 key) inline: adapting
// fails, naming the client, the option, the key and the rule, as the
// token endpoint would refuse the key. (jwx refuses RSA moduli under 2048
// bits when parsing; clients.CheckJWKS enforces clients.MinRSABits
// whatever jwx's global setting.)
func TestCaddyfileRefusesWeakClientKey(t *testing.T) {
	for _, tc := range []struct{ name, jwks, want string }{
		{"rsa 1024", rsa1024ClientJWKS, `client "backend": jwks: key "rs-short": rsa modulus too small: got 1024 bits, need at least 2048, at Caddyfile:`},
		{"ec p-521", p521ClientJWKS, `client "backend": jwks: key "ec521": an EC key must be on P-256 or P-384 (ES256, ES384), at Caddyfile:`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cf := `{
	admin off
	order smart_auth first
}
:0 {
	smart_auth {
		issuer https://auth.example.org
		fhir_base https://fhir.example.org/r4
		client backend {
			jwks ` + "`" + tc.jwks + "`" + `
			scopes system/*.rs
		}
	}
	respond 200
}
`
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(caddyfile.Format([]byte(cf)), map[string]any{"filename": "Caddyfile"})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("adapt error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestJSONConfigRefusesWeakClientKey validates the JSON form of the same
// client: Validate refuses it with the client and the option.
func TestJSONConfigRefusesWeakClientKey(t *testing.T) {
	js := `{"issuer":"https://a.example","fhir_base":"https://f.example","clients":[{"id":"backend","jwks":` +
		rsa1024ClientJWKS + `,"scopes":["system/*.rs"]}]}`
	var s SmartAuth
	if err := json.Unmarshal([]byte(js), &s); err != nil {
		t.Fatal(err)
	}
	s.setDefaults()
	want := `client "backend": jwks: key "rs-short": rsa modulus too small: got 1024 bits, need at least 2048`
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want %q", err, want)
	}
}

// TestJWKSFileRefusesWeakClientKey reads the same key from jwks_file at
// provisioning: refused, naming the client, the option and the file.
func TestJWKSFileRefusesWeakClientKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "backend.jwks")
	if err := os.WriteFile(path, []byte(rsa1024ClientJWKS), 0o600); err != nil {
		t.Fatal(err)
	}
	s := SmartAuth{Clients: []ClientConfig{{ID: "backend", JWKSFile: path, Scopes: []string{"system/*.rs"}}}}
	s.setDefaults()
	_, err := s.provisionClients()
	want := `client "backend": jwks_file ` + path + `: key "rs-short": rsa modulus too small: got 1024 bits, need at least 2048`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want %q", err, want)
	}
}

// TestConfiguredRedirectURIRefusesUserInfo checks that configured clients
// follow the same URL policy as registered ones: no user info.
func TestConfiguredRedirectURIRefusesUserInfo(t *testing.T) {
	const head = "smart_auth {\n issuer https://a.example\n fhir_base https://f.example\n"
	expectParseError(t, head+" client a {\n redirect_uri https://u:p@app.example/cb\n }\n}",
		`client "a": redirect_uri: "https://u:p@app.example/cb" must not contain user info, at Testfile:5`)
}
