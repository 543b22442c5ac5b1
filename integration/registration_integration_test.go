package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"golang.org/x/oauth2"

	"github.com/smartcaddy/smartauth/store"
)

// dcrToken is the initial access token of the integration tests, given to
// Caddy through {env.SMARTAUTH_TEST_DCR_TOKEN}.
const dcrToken = "dcr-initial-access-token-for-tests-0123456789"

func TestRegistrationCaddyfile(t *testing.T) {
	const head = "smart_auth {\n issuer https://a.example\n fhir_base https://f.example\n"
	s, err := parse(t, head+" registration open\n}")
	if err != nil || s.Registration == nil || !s.Registration.Open {
		t.Fatalf("registration open: %+v %v", s.Registration, err)
	}
	s, err = parse(t, head+" registration open {\n allow_private_jwks_uri\n }\n}")
	if err != nil || !s.Registration.Open || !s.Registration.AllowPrivateJWKSURI {
		t.Fatalf("allow_private_jwks_uri: %+v %v", s.Registration, err)
	}
	hash := store.HashSecret("a-token-of-enough-length-000")
	s, err = parse(t, head+" registration {\n initial_access_token_hash "+hash+"\n }\n}")
	if err != nil || s.Registration.InitialAccessTokenHash != hash {
		t.Fatalf("initial_access_token_hash: %+v %v", s.Registration, err)
	}
	// The placeholder stays in the JSON; the token never does.
	t.Setenv("SMARTAUTH_TEST_DCR_TOKEN", dcrToken)
	js := adapt(t, site{port: 1, storage: t.TempDir(), extra: "registration {\n initial_access_token {env.SMARTAUTH_TEST_DCR_TOKEN}\n }"}.caddyfile())
	if !strings.Contains(string(js), `"initial_access_token":"{env.SMARTAUTH_TEST_DCR_TOKEN}"`) || strings.Contains(string(js), dcrToken) {
		t.Fatalf("adapted JSON: %s", js)
	}
	// A placeholder that resolves to nothing fails the start, naming the
	// option and not the value.
	js = adapt(t, site{port: freePort(t), storage: t.TempDir(), extra: "registration {\n initial_access_token {env.SMARTAUTH_TEST_DCR_UNSET}\n }"}.caddyfile())
	err = caddy.Load(js, true)
	t.Cleanup(func() { _ = caddy.Stop() })
	if err == nil || !strings.Contains(err.Error(), "registration: initial_access_token") {
		t.Fatalf("start with an unset token variable: %v", err)
	}
}

// dcr is a client of the registration endpoints of a running site.
type dcr struct {
	t *testing.T
	s flowSite
}

// call sends JSON (a string as is) with a Bearer token and decodes the
// JSON answer.
func (d dcr) call(method, u, bearer string, body any) (int, http.Header, map[string]any) {
	d.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		raw, _ = json.Marshal(b)
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(raw))
	if err != nil {
		d.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := client.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			d.t.Fatalf("%s %s: %d %q is not JSON", method, u, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, resp.Header, m
}

func startDCRSite(t *testing.T) (flowSite, dcr) {
	t.Helper()
	t.Setenv("SMARTAUTH_TEST_DCR_TOKEN", dcrToken)
	s := startFlowSite(t, "registration {\n initial_access_token {env.SMARTAUTH_TEST_DCR_TOKEN}\n }")
	return s, dcr{t: t, s: s}
}

func TestRegistrationValidationThroughCaddy(t *testing.T) {
	s, d := startDCRSite(t)
	type m = map[string]any
	jwks := m{"keys": []m{{"kty": "EC", "crv": "P-384", "kid": "k1",
		"x": "nVHW9HdAnBa____t1ve-Q3NVMdDNEwyATICNoZZJvyh0TklgdCJc0WlMScId6lqu",
		"y": "WV7IrgMymqrirEm-8y_jiDAF5H7IHISOEF8OHd9sPuMg52w786nN_YeYbiOT2kra"}}}
	for _, tc := range []struct {
		name string
		body any
		code string
	}{
		{"redirect over http", m{"redirect_uris": []string{"http://app.example/cb"}}, "invalid_redirect_uri"},
		{"redirect with fragment", m{"redirect_uris": []string{"https://app.example/cb#f"}}, "invalid_redirect_uri"},
		{"no redirect", m{"token_endpoint_auth_method": "none"}, "invalid_redirect_uri"},
		{"unknown auth method", m{"redirect_uris": []string{s.redirect}, "token_endpoint_auth_method": "magic"}, "invalid_client_metadata"},
		{"private_key_jwt without keys", m{"redirect_uris": []string{s.redirect}, "token_endpoint_auth_method": "private_key_jwt"}, "invalid_client_metadata"},
		{"jwks and jwks_uri", m{"redirect_uris": []string{s.redirect}, "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks, "jwks_uri": "https://app.example/jwks"}, "invalid_client_metadata"},
		{"keys with a secret", m{"redirect_uris": []string{s.redirect}, "jwks": jwks}, "invalid_client_metadata"},
		{"client_credentials with a secret", m{"grant_types": []string{"client_credentials"}, "scope": "system/*.rs"}, "invalid_client_metadata"},
		{"implicit grant", m{"redirect_uris": []string{s.redirect}, "grant_types": []string{"implicit"}}, "invalid_client_metadata"},
		{"token response type", m{"redirect_uris": []string{s.redirect}, "response_types": []string{"token"}}, "invalid_client_metadata"},
		{"system scope for an app", m{"redirect_uris": []string{s.redirect}, "scope": "system/*.rs"}, "invalid_client_metadata"},
		{"unknown scope", m{"redirect_uris": []string{s.redirect}, "scope": "everything"}, "invalid_client_metadata"},
		{"software statement", m{"redirect_uris": []string{s.redirect}, "software_statement": "x.y.z"}, "invalid_software_statement"},
		{"not JSON", "redirect_uris=x", "invalid_client_metadata"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, h, body := d.call(http.MethodPost, s.issuer()+"/register", dcrToken, tc.body)
			if status != 400 || body["error"] != tc.code || body["error_description"] == "" || h.Get("Cache-Control") != "no-store" {
				t.Fatalf("got %d %v, want 400 %s", status, body, tc.code)
			}
		})
	}
	if status, h, body := d.call(http.MethodPost, s.issuer()+"/register", "", m{"redirect_uris": []string{s.redirect}}); status != 401 || h.Get("WWW-Authenticate") == "" {
		t.Errorf("without the initial access token: %d %v", status, body)
	}
	if status, _, body := d.call(http.MethodPost, s.issuer()+"/register", dcrToken+"-wrong", m{"redirect_uris": []string{s.redirect}}); status != 401 || body["error"] != "invalid_token" {
		t.Errorf("with a wrong initial access token: %d %v", status, body)
	}
}

func TestRegistrationLifecycleThroughCaddy(t *testing.T) {
	s, d := startDCRSite(t)
	ctx := context.Background()

	_, body := fetch(t, "GET", s.fhirBase()+"/.well-known/smart-configuration", nil)
	var disco struct {
		RegistrationEndpoint string `json:"registration_endpoint"`
	}
	if err := json.Unmarshal([]byte(body), &disco); err != nil || disco.RegistrationEndpoint != s.issuer()+"/register" {
		t.Fatalf("discovery without registration_endpoint: %v %s", err, body)
	}

	// Register a public app and use it for a standalone launch.
	status, _, reg := d.call(http.MethodPost, s.issuer()+"/register", dcrToken, map[string]any{
		"client_name": "Registered App", "redirect_uris": []string{s.redirect}, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "launch_uri": "http://localhost:9/launch",
		"scope": "openid fhirUser launch/patient patient/*.rs offline_access",
	})
	if status != 201 || reg["client_secret"] != nil {
		t.Fatalf("register: %d %v", status, reg)
	}
	id, uri, rat := reg["client_id"].(string), reg["registration_client_uri"].(string), reg["registration_access_token"].(string)
	if uri != s.issuer()+"/register/"+id {
		t.Fatalf("registration_client_uri %q", uri)
	}
	cfg := s.oauth(id, "", "openid", "fhirUser", "launch/patient", "patient/*.rs", "offline_access")
	verifier := oauth2.GenerateVerifier()
	q := newBrowser(t).run(cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", s.fhirBase())), s.redirect)
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil || tok.RefreshToken == "" {
		t.Fatalf("exchange by the registered app: %v %+v", err, tok)
	}
	userinfo := func() int {
		resp, _ := fetch(t, "GET", s.issuer()+"/userinfo", http.Header{"Authorization": {"Bearer " + tok.AccessToken}})
		return resp.StatusCode
	}
	if code := userinfo(); code != 200 {
		t.Fatalf("userinfo: %d", code)
	}

	// Read (RFC 7592 §2.1): the registration access token rotates.
	status, _, got := d.call(http.MethodGet, uri, rat, nil)
	if status != 200 || got["client_id"] != id || got["client_name"] != "Registered App" || got["registration_access_token"] == rat {
		t.Fatalf("read: %d %v", status, got)
	}
	if status, _, _ := d.call(http.MethodGet, uri, rat, nil); status != 401 {
		t.Errorf("read with the replaced token: %d", status)
	}
	rat = got["registration_access_token"].(string)

	// Update (RFC 7592 §2.2): the whole metadata, client_id included.
	upd := map[string]any{"client_id": id, "client_name": "Renamed App", "redirect_uris": []string{s.redirect}, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "scope": "openid fhirUser launch/patient patient/*.rs offline_access"}
	status, _, got = d.call(http.MethodPut, uri, rat, upd)
	if status != 200 || got["client_name"] != "Renamed App" || got["launch_uri"] != nil {
		t.Fatalf("update: %d %v", status, got)
	}
	rat = got["registration_access_token"].(string)
	upd["client_id"] = "demo"
	if status, _, got := d.call(http.MethodPut, uri, rat, upd); status != 400 || got["error"] != "invalid_client_metadata" {
		t.Errorf("update naming another client: %d %v", status, got)
	}
	// A configured client cannot be read or changed here.
	if status, _, _ := d.call(http.MethodGet, s.issuer()+"/register/public-app", rat, nil); status != 401 {
		t.Errorf("read of a configured client: %d", status)
	}

	// Delete (RFC 7592 §2.3): 204; the app's tokens stop working.
	if status, _, got := d.call(http.MethodDelete, uri, rat, nil); status != 204 {
		t.Fatalf("delete: %d %v", status, got)
	}
	if status, _, _ := d.call(http.MethodGet, uri, rat, nil); status != 401 {
		t.Errorf("read after delete: %d", status)
	}
	if code := userinfo(); code != 401 {
		t.Errorf("userinfo with the deleted app's access token: %d", code)
	}
	if r := refresh(t, s, tok.RefreshToken, id); r["error"] != "invalid_grant" && r["error"] != "invalid_client" {
		t.Errorf("refresh by the deleted app: %v", r)
	}
}

func TestOpenRegistrationThroughCaddy(t *testing.T) {
	s := startFlowSite(t, "registration open")
	d := dcr{t: t, s: s}
	status, _, reg := d.call(http.MethodPost, s.issuer()+"/register", "", map[string]any{"redirect_uris": []string{s.redirect}})
	if status != 201 || reg["client_secret"] == nil || reg["token_endpoint_auth_method"] != "client_secret_basic" {
		t.Fatalf("open registration: %d %v", status, reg)
	}
}

// TestRegistrationLogsHoldNoSecrets runs registration and its management
// with every log at DEBUG into a file, then checks that no initial access
// token, client secret or registration access token appears in it.
func TestRegistrationLogsHoldNoSecrets(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	t.Setenv("SMARTAUTH_TEST_DCR_TOKEN", dcrToken)
	s := newFlowSite(t, "registration {\n initial_access_token {env.SMARTAUTH_TEST_DCR_TOKEN}\n }")
	startCaddyfile(t, strings.Replace(s.caddyfile(), "output discard", "output file "+logFile+"\n\t\tlevel DEBUG", 1))
	d := dcr{t: t, s: s}
	secrets := []string{dcrToken, "wrong-initial-token-Qx7"}
	d.call(http.MethodPost, s.issuer()+"/register", "wrong-initial-token-Qx7", map[string]any{"redirect_uris": []string{s.redirect}})
	status, _, reg := d.call(http.MethodPost, s.issuer()+"/register", dcrToken, map[string]any{"redirect_uris": []string{s.redirect}})
	if status != 201 {
		t.Fatalf("register: %d %v", status, reg)
	}
	id, uri, rat := reg["client_id"].(string), reg["registration_client_uri"].(string), reg["registration_access_token"].(string)
	secrets = append(secrets, reg["client_secret"].(string), rat)
	_, _, got := d.call(http.MethodGet, uri, rat, nil)
	rat = got["registration_access_token"].(string)
	secrets = append(secrets, rat)
	_, _, got = d.call(http.MethodPut, uri, rat, map[string]any{"client_id": id, "redirect_uris": []string{s.redirect}})
	rat = got["registration_access_token"].(string)
	secrets = append(secrets, rat)
	if status, _, _ := d.call(http.MethodDelete, uri, rat, nil); status != 204 {
		t.Fatalf("delete: %d", status)
	}
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	log := string(raw)
	if !strings.Contains(log, "client registered") || !strings.Contains(log, id) {
		t.Fatalf("the log lacks the registration:\n%s", log)
	}
	for _, sec := range secrets {
		if strings.Contains(log, sec) {
			t.Errorf("the log holds a secret %.6s…", sec)
		}
	}
}
