package integration

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestInteropOpenIDClient runs interop/interop.mjs: the Node package
// openid-client (pinned in interop/package-lock.json, installed by .ci/run
// with `npm ci --prefix interop`) discovers the server, gets a backend
// services token with private_key_jwt (RS384 and ES384), introspects it,
// revokes it and introspects it again. Without node or the installed
// package the test fails: an interop test that does not run proves
// nothing.
func TestInteropOpenIDClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed: install nodejs and npm, then run `npm ci --prefix interop` (.ci/run does)")
	}
	if _, err := os.Stat(filepath.Join("..", "interop", "node_modules", "openid-client")); err != nil {
		t.Fatal("openid-client is not installed: run `npm ci --prefix interop` (.ci/run does)")
	}
	b := startBackendSite(t)
	for _, tc := range []struct {
		alg, kid string
		key      any
	}{
		{"RS384", "rs1", b.keys.rsa},
		{"ES384", "ec1", b.keys.ec},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			der, err := x509.MarshalPKCS8PrivateKey(tc.key)
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.CommandContext(t.Context(), node, filepath.Join("..", "interop", "interop.mjs"))
			cmd.Env = append(os.Environ(),
				"ISSUER="+b.issuer(),
				"CLIENT_ID=bs-inline",
				"KEY_PEM="+string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
				"KID="+tc.kid,
				"ALG="+tc.alg,
				"SCOPE=system/Patient.rs",
			)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("node interop/interop.mjs: %v\n%s", err, stderr.String())
			}
			var out struct {
				TokenType       string         `json:"token_type"`
				Scope           string         `json:"scope"`
				ExpiresIn       float64        `json:"expires_in"`
				RefreshToken    *string        `json:"refresh_token"`
				Introspection   map[string]any `json:"introspection"`
				AfterRevocation map[string]any `json:"after_revocation"`
			}
			if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
				t.Fatalf("output %q: %v", stdout.String(), err)
			}
			if out.TokenType != "bearer" || out.Scope != "system/Patient.rs" || out.ExpiresIn != 300 || out.RefreshToken != nil {
				t.Errorf("token response as openid-client saw it: %+v", out)
			}
			in := out.Introspection
			if in["active"] != true || in["client_id"] != "bs-inline" || in["scope"] != "system/Patient.rs" || in["token_type"] != "Bearer" {
				t.Errorf("introspection: %v", in)
			}
			if len(out.AfterRevocation) != 1 || out.AfterRevocation["active"] != false {
				t.Errorf("introspection after revocation: %v", out.AfterRevocation)
			}
		})
	}
}
