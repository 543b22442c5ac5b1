package integration

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/spf13/cobra"
	"golang.org/x/oauth2"

	"github.com/smartcaddy/smartauth/store"
)

// runCLI runs `caddy smart-auth <args>` in this process, through the
// command Caddy registered, with stdin as standard input.
func runCLI(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	c, ok := caddycmd.Commands()["smart-auth"]
	if !ok {
		t.Fatal("the smart-auth command is not registered")
	}
	root := &cobra.Command{Use: c.Name, Short: c.Short, SilenceUsage: true, SilenceErrors: true}
	c.CobraFunc(root)
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestCommandHashSecret(t *testing.T) {
	out, err := runCLI(t, "", "hash-secret", "--secret", "s3cret-value")
	if err != nil || !store.VerifySecret(strings.TrimSpace(out), "s3cret-value") || store.CheckSecretHash(strings.TrimSpace(out)) != nil {
		t.Fatalf("--secret: %q %v", out, err)
	}
	out, err = runCLI(t, "from-stdin\r\nignored\n", "hash-secret")
	if err != nil || !store.VerifySecret(strings.TrimSpace(out), "from-stdin") {
		t.Fatalf("stdin: %q %v", out, err)
	}
	out, err = runCLI(t, "", "hash-secret", "--generate")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 2 || len(lines[0]) != 43 || !store.VerifySecret(lines[1], lines[0]) {
		t.Fatalf("--generate: %q %v", out, err)
	}
	if _, err := runCLI(t, "\n", "hash-secret"); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty secret: %v", err)
	}
	if _, err := runCLI(t, "", "hash-secret", "--secret", "a", "--generate"); err == nil {
		t.Error("--secret with --generate was accepted")
	}
	// The hash is what secret_hash and initial_access_token_hash accept.
	hash := lines[1]
	s, err := parse(t, "smart_auth {\n issuer https://a.example\n fhir_base https://f.example\n client c {\n secret_hash "+hash+"\n redirect_uri https://app.example/cb\n }\n registration {\n initial_access_token_hash "+hash+"\n }\n}")
	if err != nil || s.Clients[0].SecretHash != hash {
		t.Fatalf("hash in the Caddyfile: %v", err)
	}
}

func TestCommandKeygen(t *testing.T) {
	dir := t.TempDir()
	for _, alg := range []string{"ES384", "RS384"} {
		t.Run(alg, func(t *testing.T) {
			keyFile, jwksFile := filepath.Join(dir, alg+".pem"), filepath.Join(dir, alg+".jwks")
			if _, err := runCLI(t, "", "keygen", "--alg", alg, "--key-file", keyFile, "--jwks-file", jwksFile); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(keyFile)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("key file: %v %v", fi.Mode(), err)
			}
			priv := readPEMKey(t, keyFile)
			raw, _ := os.ReadFile(jwksFile)
			if strings.Contains(string(raw), `"d"`) {
				t.Fatal("the JWKS holds private key material")
			}
			set, err := jwk.Parse(raw)
			if err != nil || set.Len() != 1 {
				t.Fatalf("JWKS: %v", err)
			}
			k, _ := set.Key(0)
			tp, _ := k.Thumbprint(crypto.SHA256)
			kid, _ := k.KeyID()
			ka, _ := k.Algorithm()
			use, _ := k.KeyUsage()
			if kid != base64.RawURLEncoding.EncodeToString(tp) || ka.String() != alg || use != "sig" {
				t.Errorf("JWK kid %q alg %v use %q", kid, ka, use)
			}
			// A JWT signed with the private key verifies with the JWKS.
			sa, _ := jwa.LookupSignatureAlgorithm(alg)
			hdr := jws.NewHeaders()
			_ = hdr.Set(jws.KeyIDKey, kid)
			signed, err := jwt.Sign(jwt.New(), jwt.WithKey(sa, priv, jws.WithProtectedHeaders(hdr)))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := jwt.Parse(signed, jwt.WithKeySet(set), jwt.WithValidate(false)); err != nil {
				t.Fatalf("verifying with the JWKS: %v", err)
			}
			// The JWKS is accepted for a configured client.
			if _, err := parse(t, "smart_auth {\n issuer https://a.example\n fhir_base https://f.example\n client b {\n jwks_file "+jwksFile+"\n scopes system/*.rs\n }\n}"); err != nil {
				t.Fatalf("jwks_file: %v", err)
			}
			// Existing files are never overwritten.
			if _, err := runCLI(t, "", "keygen", "--alg", alg, "--key-file", keyFile); err == nil || !strings.Contains(err.Error(), "already exists") {
				t.Errorf("overwrite: %v", err)
			}
		})
	}
	out, err := runCLI(t, "", "keygen", "--kid", "my-key")
	if err != nil || !strings.Contains(out, "-----BEGIN PRIVATE KEY-----") || !strings.Contains(out, `"kid": "my-key"`) || !strings.Contains(out, `"alg": "ES384"`) {
		t.Fatalf("keygen to stdout: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "", "keygen", "--alg", "HS256"); err == nil || !strings.Contains(err.Error(), "--alg") {
		t.Errorf("HS256: %v", err)
	}
}

// readPEMKey reads a PKCS #8 private key.
func readPEMKey(t *testing.T, path string) crypto.Signer {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(raw)
	if b == nil || b.Type != "PRIVATE KEY" {
		t.Fatalf("%s is not a PKCS #8 PEM", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		return k
	case *rsa.PrivateKey:
		return k
	}
	t.Fatalf("unexpected key type %T", k)
	return nil
}

// TestCommandsOnARealServer registers clients through a running Caddy,
// then manages them with the commands on its storage directory: keygen's
// keys authenticate a registered backend client; clients lists; revoke
// and remove-client take effect after a restart; the commands refuse a
// directory the running server holds.
func TestCommandsOnARealServer(t *testing.T) {
	s, d := startDCRSite(t)
	ctx := context.Background()

	// keygen → registration with its JWKS → a client_credentials token
	// with an assertion signed by its private key.
	dir := t.TempDir()
	keyFile, jwksFile := filepath.Join(dir, "backend.pem"), filepath.Join(dir, "backend.jwks")
	if _, err := runCLI(t, "", "keygen", "--key-file", keyFile, "--jwks-file", jwksFile); err != nil {
		t.Fatal(err)
	}
	jwksRaw, _ := os.ReadFile(jwksFile)
	status, _, reg := d.call(http.MethodPost, s.issuer()+"/register", dcrToken, map[string]any{
		"client_name": "Nightly Export", "grant_types": []string{"client_credentials"}, "token_endpoint_auth_method": "private_key_jwt",
		"jwks": json.RawMessage(jwksRaw), "scope": "system/Patient.rs",
	})
	if status != 201 {
		t.Fatalf("register the backend client: %d %v", status, reg)
	}
	backendID := reg["client_id"].(string)
	if tok := backendToken(t, s, backendID, readPEMKey(t, keyFile)); tok["access_token"] == nil {
		t.Fatalf("client_credentials with keygen's key: %v", tok)
	}

	// A registered app with a refresh token.
	status, _, reg = d.call(http.MethodPost, s.issuer()+"/register", dcrToken, map[string]any{
		"client_name": "Web App", "redirect_uris": []string{s.redirect}, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"},
	})
	if status != 201 {
		t.Fatalf("register the app: %d %v", status, reg)
	}
	appID := reg["client_id"].(string)
	cfg := s.oauth(appID, "", "openid", "fhirUser", "launch/patient", "patient/*.rs", "offline_access")
	verifier := oauth2.GenerateVerifier()
	q := newBrowser(t).run(cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", s.fhirBase())), s.redirect)
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil || tok.RefreshToken == "" {
		t.Fatalf("exchange: %v", err)
	}

	// While Caddy runs, the directory is locked.
	if _, err := runCLI(t, "", "clients", "--storage", s.storage); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("clients on a held directory: %v", err)
	}
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}

	out, err := runCLI(t, "", "clients", "--storage", s.storage)
	if err != nil || !strings.Contains(out, backendID) || !strings.Contains(out, appID) || !strings.Contains(out, `"Nightly Export"`) ||
		strings.Contains(out, "hmac-sha256") {
		t.Fatalf("clients: %v\n%s", err, out)
	}
	out, err = runCLI(t, "", "clients", "--storage", s.storage, "--json")
	var listed []map[string]any
	if err != nil || json.Unmarshal([]byte(out), &listed) != nil || len(listed) != 2 {
		t.Fatalf("clients --json: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "", "revoke", "--storage", s.storage, "--client", appID); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, "", "remove-client", "--storage", s.storage, backendID); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, "", "remove-client", "--storage", s.storage, "no-such-client"); err == nil || !strings.Contains(err.Error(), "no registered client") {
		t.Errorf("remove-client of an unknown id: %v", err)
	}
	if _, err := runCLI(t, "", "revoke", "--storage", s.storage); err == nil || !strings.Contains(err.Error(), "--client") {
		t.Errorf("revoke without --client: %v", err)
	}
	if _, err := runCLI(t, "", "revoke", "--storage", s.storage, "--client", appID, "--for", "-1h"); err == nil || !strings.Contains(err.Error(), "--for") {
		t.Errorf("revoke --for -1h: %v", err)
	}
	if _, err := runCLI(t, "", "clients", "--storage", filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("clients on a missing directory: %v", err)
	}

	// After a restart: the app's old tokens are refused, the app itself
	// still works; the removed backend client is gone.
	startCaddyfile(t, s.caddyfile())
	if r := refresh(t, s, tok.RefreshToken, appID); r["error"] != "invalid_grant" {
		t.Errorf("refresh after revoke: %v", r)
	}
	resp, _ := fetch(t, "GET", s.issuer()+"/userinfo", http.Header{"Authorization": {"Bearer " + tok.AccessToken}})
	if resp.StatusCode != 401 {
		t.Errorf("userinfo after revoke: %d", resp.StatusCode)
	}
	if tok := backendToken(t, s, backendID, readPEMKey(t, keyFile)); tok["error"] != "invalid_client" {
		t.Errorf("client_credentials of the removed client: %v", tok)
	}
}

// backendToken asks for a client_credentials token with a private_key_jwt
// assertion signed by key.
func backendToken(t *testing.T, s flowSite, clientID string, key crypto.Signer) map[string]any {
	t.Helper()
	alg := jwa.ES384()
	if _, ok := key.(*rsa.PrivateKey); ok {
		alg = jwa.RS384()
	}
	a := jwt.New()
	for k, v := range map[string]any{
		jwt.IssuerKey: clientID, jwt.SubjectKey: clientID, jwt.AudienceKey: s.issuer() + "/token",
		jwt.JwtIDKey: store.NewSecret(), jwt.ExpirationKey: time.Now().Add(4 * time.Minute),
	} {
		if err := a.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	pub, err := jwk.Import(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	tp, _ := pub.Thumbprint(crypto.SHA256)
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, base64.RawURLEncoding.EncodeToString(tp))
	signed, err := jwt.Sign(a, jwt.WithKey(alg, key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.PostForm(s.issuer()+"/token", url.Values{
		"grant_type": {"client_credentials"}, "scope": {"system/Patient.rs"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {string(signed)},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return m
}
