package smartauth

import (
	"strings"
	"testing"
	"time"
)

// TestIdentityProviderCaddyfile: a full identity_provider block parses
// into the JSON fields, and Validate accepts it with sign_in.
func TestIdentityProviderCaddyfile(t *testing.T) {
	s, err := parse(t, `smart_auth {
		issuer https://a.example
		fhir_base https://f.example
		sign_in password identity_provider
		identity_provider hospital {
			display_name "Hospital"
			issuer https://login.example/realms/staff
			client_id smart
			client_secret {env.X}
			scopes openid profile
			username_claim preferred_username
			accept_unlisted
			fhir_user_claim Practitioner/{claims.employee_id}
			display_name_claim name
			scopes_claim smart
			user_scopes user/*.rs
			require_claim groups a b
			require_claim roles r
			clock_skew 90s
		}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.IdentityProviders) != 1 {
		t.Fatalf("%+v", s.IdentityProviders)
	}
	p := s.IdentityProviders[0]
	if p.Name != "hospital" || p.ClientSecret != "{env.X}" || !p.AcceptUnlisted || p.FHIRUserClaim != "Practitioner/{claims.employee_id}" ||
		len(p.RequireClaims) != 2 || p.RequireClaims[0].Values[1] != "b" || time.Duration(p.ClockSkew) != 90*time.Second {
		t.Errorf("parsed: %+v", p)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

// TestIdentityProviderErrors: each mistake gets an error naming the
// option; the client secret is never repeated.
func TestIdentityProviderErrors(t *testing.T) {
	const head = "smart_auth {\n issuer https://a.example\n fhir_base https://f.example\n sign_in identity_provider\n"
	const ok = " issuer https://idp.example\n client_id c\n client_secret s3cr3t-value\n"
	for _, tc := range []struct{ name, body, want string }{
		{"bad name", " identity_provider a|b {\n" + ok + " }\n", `name "a|b"`},
		{"no issuer", " identity_provider h {\n client_id c\n }\n", "issuer: is required"},
		{"http issuer", " identity_provider h {\n issuer http://idp.example\n client_id c\n }\n", "must use https"},
		{"no client", " identity_provider h {\n issuer https://idp.example\n }\n", "client_id: is required"},
		{"unlisted options", " identity_provider h {\n" + ok + " fhir_user_claim fhirUser\n }\n", "add accept_unlisted"},
		{"bad template", " identity_provider h {\n" + ok + " accept_unlisted\n fhir_user_claim Practitioner/{env.X}\n }\n", "fhir_user_claim"},
		{"bad bound", " identity_provider h {\n" + ok + " accept_unlisted\n user_scopes system/*.rs\n }\n", "user_scopes"},
		{"skew", " identity_provider h {\n" + ok + " clock_skew 10m\n }\n", "clock_skew"},
		{"require", " identity_provider h {\n" + ok + " require_claim groups\n }\n", "require_claim"},
		{"duplicate", " identity_provider h {\n" + ok + " }\n identity_provider h {\n" + ok + " }\n", "duplicate name"},
		{"twice", " identity_provider h {\n" + ok + " client_id d\n }\n", "client_id already specified"},
		{"unknown", " identity_provider h {\n" + ok + " colour blue\n }\n", "unrecognized subdirective 'colour'"},
	} {
		_, err := parse(t, head+tc.body+"}")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t-value") {
			t.Errorf("%s: the error repeats the client secret: %v", tc.name, err)
		}
	}
	for _, tc := range []struct{ name, body, want string }{
		{"sign_in without a provider", " sign_in identity_provider\n", "no identity_provider is configured"},
		{"provider without sign_in", " identity_provider h {\n issuer https://idp.example\n client_id c\n }\n", "add identity_provider to sign_in"},
		{"user named as unlisted", " sign_in identity_provider\n identity_provider h {\n issuer https://idp.example\n client_id c\n }\n user h|x {\n }\n", `user "h|x"`},
	} {
		s, err := parse(t, "smart_auth {\n issuer https://a.example\n fhir_base https://f.example\n"+tc.body+"}")
		if err == nil {
			err = s.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
