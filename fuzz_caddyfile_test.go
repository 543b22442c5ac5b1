package smartauth

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// smartAuthHandlers collects the smart_auth handler objects of an adapted
// JSON configuration, wherever routes nest them.
func smartAuthHandlers(v any, out *[]json.RawMessage) {
	switch x := v.(type) {
	case map[string]any:
		if x["handler"] == "smart_auth" {
			b, _ := json.Marshal(x)
			*out = append(*out, b)
		}
		for _, e := range x {
			smartAuthHandlers(e, out)
		}
	case []any:
		for _, e := range x {
			smartAuthHandlers(e, out)
		}
	}
}

// checkModuleJSON fails unless a smart_auth configuration in JSON passes
// Validate (with defaults set, as Provision does) and re-encodes to the
// same JSON.
func checkModuleJSON(t *testing.T, where string, raw []byte) {
	t.Helper()
	var s SmartAuth
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%s: the module's JSON does not decode: %v\n%s", where, err, raw)
	}
	again, err := json.Marshal(&s)
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	var s2 SmartAuth
	if err := json.Unmarshal(again, &s2); err != nil {
		t.Fatalf("%s: re-encoded JSON does not decode: %v", where, err)
	}
	if third, _ := json.Marshal(&s2); string(third) != string(again) {
		t.Fatalf("%s: JSON encoding is not stable:\n%s\n%s", where, again, third)
	}
	s.setDefaults()
	if err := s.Validate(); err != nil {
		t.Fatalf("%s: accepted by the Caddyfile parser, refused by Validate: %v\n%s", where, err, raw)
	}
}

// FuzzCaddyfile feeds any text as the body of a smart_auth block, to the
// module's Caddyfile parser and to Caddy's Caddyfile adapter (a site
// with the block in a route), and checks:
//   - both answer with an error or a configuration, never a panic;
//   - whatever the parser accepts, Validate accepts too, and its JSON
//     round-trips (the Caddyfile and the JSON configuration give the same
//     module);
//   - an adapted configuration is valid JSON whose every smart_auth
//     handler passes Validate.
//
// Text with "import" is left out: it would read files from the disk.
func FuzzCaddyfile(f *testing.F) {
	for _, s := range []string{
		"issuer https://auth.example.org\nfhir_base https://fhir.example.org/r4",
		"issuer http://localhost:8080\nfhir_base http://127.0.0.1:8080/fhir\nstorage /tmp/x\naccess_token_lifetime 15m\nsign_in password trusted_identity",
		"issuer https://a.example\nfhir_base https://f.example\nclient app {\n\ttype public\n\tredirect_uri https://app.example/cb\n\tscopes openid patient/*.rs\n}",
		"issuer https://a.example\nfhir_base https://f.example\nclient ehr {\n\tsecret s3cret\n\tcreate_launch\n}",
		"issuer https://a.example\nfhir_base https://f.example\nclient b {\n\tjwks `{\"keys\":[]}`\n\tgrant_types client_credentials\n\tscopes system/*.rs\n}",
		"issuer https://a.example\nfhir_base https://f.example\nuser alice {\n\tfhir_user Patient/p1\n\tpatients p1 p2\n\tscopes patient/*.rs\n}",
		"issuer https://a.example\nfhir_base https://f.example\nguard {\n\tcors_origins *\n\tallow_outside_compartment Medication\n}",
		"issuer https://a.example\nfhir_base https://f.example\nregistration open",
		"issuer https://a.example\nfhir_base https://f.example\nregistration {\n\tinitial_access_token_hash x\n}",
		"issuer https://a.example\nfhir_base https://f.example\nkey_rotation off\nsigning_key ES256 /k.pem\nsigning_key ES256 /k2.pem",
		"issuer https://a.example\nfhir_base https://f.example\ncode_lifetime -1s",
		"issuer https://a.example\nfhir_base https://f.example\nframe_ancestors https://ehr.example/path",
		"issuer https://a.example\nfhir_base https://f.example\nuser {\n}",
		"issuer https://a.example\nfhir_base https://f.example\nclient x y {\n}",
		"issuer https://a.example\nissuer https://b.example\nfhir_base https://f.example",
		"issuer {env.ISSUER}\nfhir_base https://f.example",
		"issuer https://a.example\nfhir_base https://f.example\n}\nrespond 200\n{",
		"", "}", "{", "\"", "`", "issuer",
	} {
		f.Add(s)
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	if adapter == nil {
		f.Fatal("the caddyfile adapter is not registered")
	}
	f.Fuzz(func(t *testing.T, block string) {
		if strings.Contains(block, "import") {
			return
		}
		// Not NewTestDispenser: it exits the process on a lexer error.
		tokens, err := caddyfile.Tokenize([]byte("smart_auth {\n"+block+"\n}"), "Caddyfile")
		s := new(SmartAuth)
		if err == nil && s.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)) == nil {
			raw, err := json.Marshal(s)
			if err != nil {
				t.Fatalf("a parsed configuration does not encode: %v", err)
			}
			checkModuleJSON(t, "parsed", raw)
		}
		site := "localhost:8443 {\n\troute {\n\t\tsmart_auth {\n" + block + "\n\t\t}\n\t}\n}\n"
		out, _, err := adapter.Adapt([]byte(site), nil)
		if err != nil {
			return
		}
		var cfg any
		if err := json.Unmarshal(out, &cfg); err != nil {
			t.Fatalf("the adapted configuration is not JSON: %v\n%s", err, out)
		}
		var handlers []json.RawMessage
		smartAuthHandlers(cfg, &handlers)
		for _, h := range handlers {
			checkModuleJSON(t, "adapted", h)
		}
	})
}
