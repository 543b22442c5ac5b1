package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
)

// discoverySite runs a site whose issuer and FHIR base both have paths.
func discoverySite(t *testing.T) site {
	s := site{port: freePort(t), storage: t.TempDir()}
	startCaddyfile(t, s.caddyfile())
	return s
}

func getJSON(t *testing.T, url string) (*http.Response, map[string]any) {
	t.Helper()
	resp, body := fetch(t, "GET", url, http.Header{"Accept": {"text/html"}})
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("GET %s: not JSON: %v\n%s", url, err, body)
	}
	return resp, m
}

func strs(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestSMARTConfigurationFieldByField(t *testing.T) {
	s := discoverySite(t)
	issuer := s.base() + "/auth"
	for _, url := range []string{s.base() + "/fhir/.well-known/smart-configuration", s.base() + "/.well-known/smart-configuration"} {
		resp, doc := getJSON(t, url)
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Error("discovery must be readable from any origin")
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=300" {
			t.Errorf("Cache-Control %q", cc)
		}
		want := map[string]string{
			"issuer":                 issuer,
			"jwks_uri":               issuer + "/jwks",
			"authorization_endpoint": issuer + "/authorize",
			"token_endpoint":         issuer + "/token",
		}
		for k, v := range want {
			if doc[k] != v {
				t.Errorf("%s = %v, want %s", k, doc[k], v)
			}
		}
		lists := map[string][]string{
			"code_challenge_methods_supported":                 {"S256"},
			"response_types_supported":                         {"code"},
			"grant_types_supported":                            {"authorization_code", "refresh_token", "client_credentials"},
			"token_endpoint_auth_methods_supported":            {"client_secret_basic", "client_secret_post", "private_key_jwt"},
			"token_endpoint_auth_signing_alg_values_supported": {"RS384", "ES384", "RS256", "ES256"},
		}
		for k, v := range lists {
			if got := strs(doc[k]); !slices.Equal(got, v) {
				t.Errorf("%s = %v, want %v", k, got, v)
			}
		}
		caps := strs(doc["capabilities"])
		for _, c := range []string{"launch-ehr", "launch-standalone", "authorize-post", "client-public",
			"client-confidential-symmetric", "client-confidential-asymmetric", "sso-openid-connect",
			"context-ehr-patient", "context-standalone-patient", "permission-offline", "permission-patient",
			"permission-user", "permission-v1", "permission-v2"} {
			if !slices.Contains(caps, c) {
				t.Errorf("capabilities lack %s", c)
			}
		}
		for _, c := range caps {
			if strings.HasPrefix(c, "context-passthrough") {
				t.Errorf("capability %s does not exist", c)
			}
		}
		scopes := strs(doc["scopes_supported"])
		for _, sc := range []string{"openid", "fhirUser", "launch", "launch/patient", "offline_access", "patient/*.rs", "user/*.rs", "system/*.rs"} {
			if !slices.Contains(scopes, sc) {
				t.Errorf("scopes_supported lacks %s", sc)
			}
		}
		for k, v := range doc {
			if str, ok := v.(string); ok && strings.HasSuffix(k, "endpoint") && !strings.HasPrefix(str, "http://localhost:") {
				t.Errorf("%s is not absolute: %s", k, str)
			}
		}
		if slices.Contains(strs(doc["code_challenge_methods_supported"]), "plain") {
			t.Error("plain PKCE listed")
		}
	}
}

func TestOpenIDConfigurationWithARealClient(t *testing.T) {
	s := discoverySite(t)
	issuer := s.base() + "/auth"
	_, doc := getJSON(t, issuer+"/.well-known/openid-configuration")
	for _, k := range []string{"issuer", "authorization_endpoint", "token_endpoint", "jwks_uri",
		"response_types_supported", "subject_types_supported", "id_token_signing_alg_values_supported"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("required field %s missing", k)
		}
	}
	if !slices.Contains(strs(doc["id_token_signing_alg_values_supported"]), "RS256") {
		t.Error("RS256 must be supported for id_tokens")
	}
	if doc["issuer"] != issuer {
		t.Errorf("issuer %v", doc["issuer"])
	}
	// RFC 8414 location of the same metadata.
	_, doc2 := getJSON(t, s.base()+"/.well-known/oauth-authorization-server/auth")
	if doc2["issuer"] != issuer || doc2["jwks_uri"] != doc["jwks_uri"] {
		t.Errorf("RFC 8414 metadata differs: %v", doc2)
	}
	// go-oidc checks that the document's issuer is the URL it was fetched
	// for, and reads the endpoints.
	p, err := oidc.NewProvider(context.Background(), issuer)
	if err != nil {
		t.Fatalf("go-oidc discovery: %v", err)
	}
	if p.Endpoint().TokenURL != issuer+"/token" || p.Endpoint().AuthURL != issuer+"/authorize" {
		t.Errorf("go-oidc endpoints: %+v", p.Endpoint())
	}
	// The smart-configuration names the same JWKS.
	_, smart := getJSON(t, s.base()+"/fhir/.well-known/smart-configuration")
	if smart["jwks_uri"] != doc["jwks_uri"] {
		t.Errorf("jwks_uri differs: %v vs %v", smart["jwks_uri"], doc["jwks_uri"])
	}
}

func TestJWKS(t *testing.T) {
	s := discoverySite(t)
	resp, body := fetch(t, "GET", s.base()+"/auth/jwks", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Error("JWKS must be readable from any origin")
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(body), &set); err != nil {
		t.Fatal(err)
	}
	algs := map[string]string{}
	for _, k := range set.Keys {
		for _, f := range []string{"kid", "kty", "alg", "use"} {
			if _, ok := k[f]; !ok {
				t.Errorf("key lacks %s: %v", f, k)
			}
		}
		if k["use"] != "sig" {
			t.Errorf("use %v", k["use"])
		}
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := k[private]; ok {
				t.Fatalf("private member %q published", private)
			}
		}
		algs[k["alg"].(string)] = k["kty"].(string)
	}
	if algs["RS256"] != "RSA" || algs["ES256"] != "EC" || len(set.Keys) != 2 {
		t.Errorf("keys: %v", algs)
	}
	// go-oidc's remote key set fetches and parses it.
	ks := oidc.NewRemoteKeySet(context.Background(), s.base()+"/auth/jwks")
	if _, err := ks.VerifySignature(context.Background(), "e30.e30.sig"); err == nil {
		t.Error("verified garbage")
	}
}

func TestDiscoveryCachingAndCORS(t *testing.T) {
	s := discoverySite(t)
	url := s.base() + "/fhir/.well-known/smart-configuration"
	resp, _ := fetch(t, "GET", url, nil)
	tag := resp.Header.Get("ETag")
	if tag == "" {
		t.Fatal("no ETag")
	}
	resp, body := fetch(t, "GET", url, http.Header{"If-None-Match": {tag}})
	if resp.StatusCode != http.StatusNotModified || body != "" {
		t.Errorf("revalidation: %d %q", resp.StatusCode, body)
	}
	// A browser's preflight.
	resp, _ = fetch(t, "OPTIONS", url, http.Header{
		"Origin":                         {"https://app.example"},
		"Access-Control-Request-Method":  {"GET"},
		"Access-Control-Request-Headers": {"accept"},
	})
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "GET") {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	resp, body = fetch(t, "POST", url, nil)
	if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(body, `"error"`) {
		t.Errorf("POST: %d %s", resp.StatusCode, body)
	}
	resp, _ = fetch(t, "HEAD", url, nil)
	if resp.StatusCode != 200 {
		t.Errorf("HEAD: %d", resp.StatusCode)
	}
}

func TestFHIRPathsFailClosedExceptMetadata(t *testing.T) {
	s := discoverySite(t)
	resp, body := fetch(t, "GET", s.base()+"/fhir/Patient/123", nil)
	if resp.StatusCode != 401 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("WWW-Authenticate"); got != fmt.Sprintf(`Bearer realm="%s/fhir"`, s.base()) {
		t.Errorf("WWW-Authenticate %q", got)
	}
	if !strings.Contains(body, `"resourceType":"OperationOutcome"`) || strings.Contains(body, "upstream") {
		t.Errorf("body %s", body)
	}
	resp, body = fetch(t, "GET", s.base()+"/fhir/metadata", nil)
	if resp.StatusCode != 200 || body != "upstream /fhir/metadata" {
		t.Errorf("metadata: %d %s", resp.StatusCode, body)
	}
	// Paths outside the FHIR base and the issuer pass through.
	resp, _ = fetch(t, "GET", s.base()+"/elsewhere", nil)
	if resp.StatusCode != 200 {
		t.Errorf("outside path: %d", resp.StatusCode)
	}
}
