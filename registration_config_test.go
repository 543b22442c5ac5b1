package smartauth

import (
	"strings"
	"testing"

	"github.com/smartcaddy/smartauth/store"
)

// TestRegistrationCaddyfileErrors checks the parser's errors for the
// registration option: the option, the problem, the file and line.
func TestRegistrationCaddyfileErrors(t *testing.T) {
	const head = "smart_auth {\n issuer https://a.example\n fhir_base https://f.example\n"
	hash := store.HashSecret("x")
	for _, tc := range []struct {
		name, input, want string
	}{
		{"no mode", head + " registration\n}", "registration: say who may register: `registration open`, or initial_access_token in the block, at Testfile:4"},
		{"empty block", head + " registration {\n }\n}", "registration: say who may register"},
		{"unknown argument", head + " registration closed\n}", `registration: unexpected argument "closed"`},
		{"extra argument", head + " registration open wide\n}", `registration: unexpected argument "wide"`},
		{"unknown option", head + " registration {\n token abc\n }\n}", "registration: unrecognized subdirective 'token', at Testfile:5"},
		{"token without value", head + " registration {\n initial_access_token\n }\n}", "wrong argument count or unexpected line ending after 'initial_access_token', at Testfile:5"},
		{"token with two values", head + " registration {\n initial_access_token a b\n }\n}", "registration: initial_access_token takes one value, at Testfile:5"},
		{"short token", head + " registration {\n initial_access_token short\n }\n}", "registration: initial_access_token: at least 20 characters, at Testfile:5"},
		{"token and hash", head + " registration {\n initial_access_token {env.T}\n initial_access_token_hash " + hash + "\n }\n}", "registration: initial_access_token_hash: give initial_access_token or initial_access_token_hash once, at Testfile:6"},
		{"hash without value", head + " registration {\n initial_access_token_hash\n }\n}", "wrong argument count or unexpected line ending after 'initial_access_token_hash', at Testfile:5"},
		{"bad hash", head + " registration {\n initial_access_token_hash plaintext\n }\n}", "registration: initial_access_token_hash: not a secret hash"},
		{"open with token", head + " registration open {\n initial_access_token {env.T}\n }\n}", "registration: open: an open registration takes no initial access token, at Testfile:5"},
		{"twice", head + " registration open\n registration open\n}", "registration already specified, at Testfile:5"},
		{"allow_private_jwks_uri with a value", head + " registration open {\n allow_private_jwks_uri yes\n }\n}", "registration: allow_private_jwks_uri takes no value, at Testfile:5"},
		{"allow_private_jwks_uri alone", head + " registration {\n allow_private_jwks_uri\n }\n}", "registration: say who may register"},
	} {
		t.Run(tc.name, func(t *testing.T) { expectParseError(t, tc.input, tc.want) })
	}
}

// TestRegistrationJSONValidation checks that Validate refuses an
// inconsistent registration block given in JSON, naming the option.
func TestRegistrationJSONValidation(t *testing.T) {
	for _, tc := range []struct {
		reg  *RegistrationConfig
		want string
	}{
		{&RegistrationConfig{}, "registration: say who may register"},
		{&RegistrationConfig{Open: true, InitialAccessTokenHash: store.HashSecret("x")}, "registration: open: an open registration takes no initial access token"},
		{&RegistrationConfig{InitialAccessToken: "{env.A}", InitialAccessTokenHash: store.HashSecret("x")}, "give one, not both"},
		{&RegistrationConfig{InitialAccessToken: "too-short"}, "registration: initial_access_token: at least 20 characters"},
		{&RegistrationConfig{InitialAccessTokenHash: "nope"}, "registration: initial_access_token_hash"},
	} {
		s := &SmartAuth{Issuer: "https://a.example", FHIRBase: "https://f.example", Registration: tc.reg}
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.reg, err, tc.want)
		}
	}
	s := &SmartAuth{Issuer: "https://a.example", FHIRBase: "https://f.example", Registration: &RegistrationConfig{Open: true}}
	if err := s.Validate(); err != nil {
		t.Errorf("open: %v", err)
	}
}
