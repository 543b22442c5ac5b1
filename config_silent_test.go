package smartauth

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// Issue 15 §3: configurations that were accepted without a word.

// A client's scopes are parsed as registration parses them: a typo is an
// error at the scopes line, not a scope that is silently never granted.
func TestCaddyfileClientScopesParsed(t *testing.T) {
	const head = "smart_auth {\n issuer https://a.example\n fhir_base https://f.example\n"
	for _, tc := range []struct{ name, lines, want string }{
		{"typo", " client a {\n redirect_uri https://x/cb\n scopes openid patinet/Observation.rs\n }\n",
			`client "a": scopes: "patinet/Observation.rs" is not a scope this server supports`},
		{"typo names the scopes line", " client a {\n redirect_uri https://x/cb\n name A\n scopes patient/*.read patient/*.rz\n }\n",
			"at Testfile:7"},
	} {
		t.Run(tc.name, func(t *testing.T) { expectParseError(t, head+tc.lines+"}", tc.want) })
	}
	if _, err := parse(t, head+" client a {\n redirect_uri https://x/cb\n scopes openid fhirUser launch launch/patient offline_access patient/*.rs user/Observation.cruds\n }\n}"); err != nil {
		t.Fatalf("valid scopes refused: %v", err)
	}
	if _, err := parse(t, head+" client a {\n jwks_uri https://k.example/jwks\n scopes system/*.rs __introspect\n }\n}"); err != nil {
		t.Fatalf("__introspect refused: %v", err)
	}
}

// provisionAt provisions a handler from JSON-like fields in ctx, with a
// Badger store in a temporary directory, and cleans it up with the test.
func provisionAt(t *testing.T, ctx caddy.Context, s *SmartAuth) error {
	t.Helper()
	if s.Storage == "" {
		s.Storage = t.TempDir()
	}
	err := s.Provision(ctx)
	t.Cleanup(func() { _ = s.Cleanup() })
	return err
}

// A placeholder in a path option is resolved at provisioning; an unset
// one is an error naming the option, and no directory named after the
// placeholder is created.
func TestPathPlaceholdersResolved(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("SMARTAUTH_TEST_STORE", filepath.Join(dir, "store"))
	s := &SmartAuth{Issuer: "https://a.example", FHIRBase: "https://f.example", Storage: "{env.SMARTAUTH_TEST_STORE}"}
	if err := provisionAt(t, ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "store")); err != nil {
		t.Fatalf("the store is not in the resolved directory: %v", err)
	}
	for _, tc := range []struct{ name, storage, templates, want string }{
		{"storage unset", "{env.SMARTAUTH_TEST_UNSET}", "", "storage {env.SMARTAUTH_TEST_UNSET}: a placeholder is unset, empty or unknown"},
		{"templates unset", filepath.Join(dir, "s2"), "{env.SMARTAUTH_TEST_UNSET}/pages", "templates {env.SMARTAUTH_TEST_UNSET}/pages: a placeholder is unset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &SmartAuth{Issuer: "https://b.example", FHIRBase: "https://g.example", Storage: tc.storage, Templates: tc.templates}
			err := provisionAt(t, ctx, s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), "{") {
			t.Errorf("a directory named after a placeholder was created: %s", e.Name())
		}
	}
}

// Two handlers of one config guarding one FHIR base for two issuers are
// refused; one issuer on two sites, and the same base in a config that
// replaces another (a reload), are not.
func TestSameFHIRBaseTwoIssuers(t *testing.T) {
	ctx1, cancel1 := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel1()
	ctx2, cancel2 := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel2()
	const base = "https://fhir.example/r4"
	if err := provisionAt(t, ctx1, &SmartAuth{Issuer: "https://a.example/smart", FHIRBase: base}); err != nil {
		t.Fatal(err)
	}
	err := provisionAt(t, ctx1, &SmartAuth{Issuer: "https://b.example/smart", FHIRBase: base + "/"})
	if err == nil || !strings.Contains(err.Error(), "fhir_base "+base+"/: already guarded by the smart_auth handler of issuer https://a.example/smart in this configuration") {
		t.Fatalf("error %v", err)
	}
	if err := provisionAt(t, ctx1, &SmartAuth{Issuer: "https://a.example/smart/", FHIRBase: base}); err != nil {
		t.Fatalf("the same issuer on a second site: %v", err)
	}
	if err := provisionAt(t, ctx2, &SmartAuth{Issuer: "https://b.example/smart", FHIRBase: base}); err != nil {
		t.Fatalf("another config (a reload) with another issuer: %v", err)
	}
}

// A configuration in which nobody can sign in, a sign-in method with
// nobody to sign in, or no client at all is a warning (Provision logs
// each).
func TestConfigWarnings(t *testing.T) {
	const hash = testHash
	app := ClientConfig{ID: "app", RedirectURIs: []string{"https://x/cb"}, GrantTypes: []string{grantAuthorizationCode}}
	backend := ClientConfig{ID: "svc", GrantTypes: []string{grantClientCredentials}}
	for _, tc := range []struct {
		name string
		s    SmartAuth
		want []string
	}{
		{"fine", SmartAuth{SignIn: []string{"password"}, Users: []UserConfig{{Name: "u", PasswordHash: hash}}, Clients: []ClientConfig{app}}, nil},
		{"backend only needs no users", SmartAuth{SignIn: []string{"password"}, Clients: []ClientConfig{backend}}, nil},
		{"no users", SmartAuth{SignIn: []string{"password"}, Clients: []ClientConfig{app}}, []string{"nobody can sign in (sign_in password; 0 user(s), 0 with a password_hash)"}},
		{"users without passwords", SmartAuth{SignIn: []string{"password"}, Users: []UserConfig{{Name: "u"}}, Clients: []ClientConfig{app}}, []string{"nobody can sign in"}},
		{"trusted identity", SmartAuth{SignIn: []string{"trusted_identity"}, Users: []UserConfig{{Name: "u"}}, Clients: []ClientConfig{app}}, nil},
		{"password hash unused", SmartAuth{SignIn: []string{"trusted_identity"}, Users: []UserConfig{{Name: "u", PasswordHash: hash}}, Clients: []ClientConfig{app}}, []string{"user u has a password_hash but sign_in does not include password"}},
		{"form with nobody", SmartAuth{SignIn: []string{"password", "trusted_identity"}, Users: []UserConfig{{Name: "u"}}, Clients: []ClientConfig{app}}, []string{"sign_in password: no user has a password_hash"}},
		{"no clients", SmartAuth{SignIn: []string{"password"}, Users: []UserConfig{{Name: "u", PasswordHash: hash}}}, []string{"no client is configured and registration is off"}},
		{"registration instead of clients", SmartAuth{SignIn: []string{"password"}, Users: []UserConfig{{Name: "u", PasswordHash: hash}}, Registration: &RegistrationConfig{Open: true}}, nil},
		{"system scope of a user-facing client", SmartAuth{SignIn: []string{"password"}, Users: []UserConfig{{Name: "u", PasswordHash: hash}},
			Clients: []ClientConfig{{ID: "app", GrantTypes: []string{grantAuthorizationCode}, Scopes: []string{"patient/*.rs", "system/*.rs"}}}},
			[]string{"client app: scopes: system/*.rs is never granted: system/ scopes come only with client_credentials"}},
		{"user scope of a backend client", SmartAuth{Clients: []ClientConfig{{ID: "svc", GrantTypes: []string{grantClientCredentials}, Scopes: []string{"system/*.rs", "patient/*.rs", "__introspect"}}}},
			[]string{"client svc: scopes: patient/*.rs is never granted: without authorization_code"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.s.warnings()
			if len(got) != len(tc.want) {
				t.Fatalf("warnings %q, want %d like %q", got, len(tc.want), tc.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tc.want[i]) {
					t.Errorf("warning %q, want it to contain %q", got[i], tc.want[i])
				}
			}
		})
	}
}

// A configured client chooses its id_token algorithm as a registered one
// does; the store record carries it to the token endpoint.
func TestCaddyfileIDTokenAlg(t *testing.T) {
	const head = "smart_auth {\n issuer https://a.example\n fhir_base https://f.example\n"
	s, err := parse(t, head+" client a {\n redirect_uri https://x/cb\n id_token_signed_response_alg ES256\n }\n}")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Clients[0].IDTokenSignedResponseAlg; got != "ES256" {
		t.Fatalf("parsed %q", got)
	}
	s.logger = zap.NewNop()
	recs, err := s.provisionClients()
	if err != nil || recs["a"].IDTokenSignedResponseAlg != "ES256" {
		t.Fatalf("store record %+v %v", recs["a"], err)
	}
	expectParseError(t, head+" client a {\n redirect_uri https://x/cb\n id_token_signed_response_alg HS256\n }\n}",
		`client "a": id_token_signed_response_alg: "HS256": must be RS256 or ES256, at Testfile:6`)
}
