package smartauth

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func parse(t *testing.T, input string) (*SmartAuth, error) {
	t.Helper()
	s := new(SmartAuth)
	err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
	return s, err
}

// A bcrypt hash (cost 4) of "pw", valid for parsing.
const testHash = "$2a$04$5Hf0XGzn1vhL0b0bEbZcS.2mZB9lmgGEbYHI2HOgeGLhUOtpQ6PZy"

func TestCaddyfileEveryOption(t *testing.T) {
	s, err := parse(t, `smart_auth {
		issuer https://auth.example.org/smart
		fhir_base https://fhir.example.org/r4/
		storage /var/lib/smart
		signing_key RS256 /etc/smart/rs.pem
		signing_key ES256 {env.ES_KEY_FILE}
		key_rotation 7d
		access_token_lifetime 15m
		refresh_token_lifetime 30d
		code_lifetime 30s
		launch_lifetime 2m
		session_lifetime 12h
		refresh_grace_period 30s
		access_token_alg RS256
		sign_in password trusted_identity
		remember_consent 30d
		frame_ancestors https://ehr.example.org
		frame_ancestors https://ehr2.example.org:8443
		templates /etc/smart/templates
		backend_token_lifetime 10m
		patient_search http://fhir-internal:8080/fhir/
		client ehr {
			secret {env.EHR_SECRET}
			create_launch
		}
		client web-app {
			name "Growth Chart"
			type public
			redirect_uri https://app.example.org/cb http://localhost:9000/cb
			redirect_uri com.example.app:/oauth
			launch_uri https://app.example.org/launch
			scopes openid fhirUser launch patient/*.rs
			scopes offline_access
			grant_types authorization_code refresh_token
		}
		client server-app {
			secret {env.SERVER_APP_SECRET}
			redirect_uri https://server.example.org/cb
		}
		client hashed-app {
			secret_hash hmac-sha256$AAAAAAAAAAAAAAAAAAAAAA$BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB
			redirect_uri https://hashed.example.org/cb
		}
		client legacy-backend {
			type confidential_symmetric
			secret {file./run/secrets/legacy}
			grant_types client_credentials
			allow_secret_for_client_credentials
			scopes system/*.rs
		}
		client bulk {
			jwks_uri https://bulk.example.org/jwks.json
			scopes system/Patient.rs system/Observation.rs
		}
		client inline {
			jwks `+"`"+`{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"WKn-ZIGevcwGIyyrzFoZNBdaq9_TsqzGl96oc0CWuis","y":"y77t-RvAHRKTsSGdIYUfweuOvwrvDD-Q3Hv5J0fSKbE"}]}`+"`"+`
			scopes system/*.rs
		}
		client filed {
			jwks_file /etc/smart/filed.jwks
			scopes system/*.rs
		}
		user alice {
			password_hash `+testHash+`
			fhir_user Practitioner/alice
			display_name "Dr. Alice"
			patients p1 p2
			patients p3
			scopes user/*.rs patient/*.rs
			scopes user/Observation.cruds
		}
		user bob {
			fhir_user Patient/p1
		}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	if s.Issuer != "https://auth.example.org/smart" || s.FHIRBase != "https://fhir.example.org/r4/" || s.Storage != "/var/lib/smart" {
		t.Errorf("urls/storage: %+v", s)
	}
	if len(s.SigningKeys) != 2 || s.SigningKeys[1].File != "{env.ES_KEY_FILE}" {
		t.Errorf("signing keys: %+v (placeholders must stay unexpanded)", s.SigningKeys)
	}
	if s.KeyRotation != caddy.Duration(7*24*3600e9) || s.AccessTokenLifetime != caddy.Duration(15*60e9) ||
		s.RefreshTokenLifetime != caddy.Duration(30*24*3600e9) || s.CodeLifetime != caddy.Duration(30e9) ||
		s.LaunchLifetime != caddy.Duration(120e9) || s.SessionLifetime != caddy.Duration(12*3600e9) ||
		s.RefreshGracePeriod != caddy.Duration(30e9) {
		t.Errorf("durations: %+v", s)
	}
	if s.AccessTokenAlg != "RS256" || strings.Join(s.SignIn, ",") != "password,trusted_identity" ||
		s.RememberConsent != caddy.Duration(30*24*3600e9) || len(s.FrameAncestors) != 2 || s.Templates != "/etc/smart/templates" {
		t.Errorf("token/page options: %+v", s)
	}
	if s.BackendTokenLifetime != caddy.Duration(600e9) || s.PatientSearch != "http://fhir-internal:8080/fhir/" {
		t.Errorf("backend_token_lifetime/patient_search: %v %q", s.BackendTokenLifetime, s.PatientSearch)
	}
	if len(s.Users) != 2 || strings.Join(s.Users[0].Scopes, " ") != "user/*.rs patient/*.rs user/Observation.cruds" {
		t.Errorf("user scopes: %+v", s.Users)
	}
	if len(s.Clients) != 8 {
		t.Fatalf("%d clients", len(s.Clients))
	}
	if !s.Clients[0].CreateLaunch {
		t.Error("create_launch")
	}
	s.Clients = s.Clients[1:]
	web := s.Clients[0]
	if web.Name != "Growth Chart" || web.Type != "public" || len(web.RedirectURIs) != 3 ||
		web.LaunchURI != "https://app.example.org/launch" || len(web.Scopes) != 5 || len(web.GrantTypes) != 2 {
		t.Errorf("web-app: %+v", web)
	}
	if s.Clients[1].Secret != "{env.SERVER_APP_SECRET}" {
		t.Errorf("secret placeholder expanded: %q", s.Clients[1].Secret)
	}
	if !s.Clients[3].AllowSecretForClientCredentials {
		t.Error("allow_secret_for_client_credentials")
	}
	if s.Clients[4].JWKSURI == "" || len(s.Clients[5].JWKS) == 0 || s.Clients[6].JWKSFile == "" {
		t.Error("client keys")
	}
	a := s.Users[0]
	if a.Name != "alice" || a.PasswordHash != testHash || a.FHIRUser != "Practitioner/alice" ||
		a.DisplayName != "Dr. Alice" || strings.Join(a.Patients, ",") != "p1,p2,p3" {
		t.Errorf("alice: %+v", a)
	}
	// The parsed config is valid as JSON too, and survives a JSON round trip.
	js, _ := json.Marshal(s)
	var back SmartAuth
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	back.setDefaults()
	if err := back.Validate(); err != nil {
		t.Fatalf("validate after round trip: %v", err)
	}
	if strings.Contains(string(js), "type\":\"confidential_asymmetric") {
		t.Error("derived defaults leaked into the JSON config")
	}
}

func TestCaddyfileErrors(t *testing.T) {
	const head = "smart_auth {\n issuer https://a.example\n fhir_base https://f.example\n"
	for _, tc := range []struct {
		name, input, want string
	}{
		{"argument on directive", "smart_auth foo {\n}", "wrong argument count"},
		{"unknown subdirective", head + " colour blue\n}", "unrecognized subdirective 'colour', at Testfile:4"},
		{"missing issuer", "smart_auth {\n fhir_base https://f.example\n}", "issuer is required, at Testfile:1"},
		{"missing fhir_base", "smart_auth {\n issuer https://a.example\n}", "fhir_base is required, at Testfile:1"},
		{"malformed issuer", "smart_auth {\n issuer ://nope\n}", "issuer: is not a valid URL"},
		{"relative issuer", "smart_auth {\n issuer /auth\n}", "issuer: \"/auth\" is not an absolute http(s) URL, at Testfile:2"},
		{"http issuer", "smart_auth {\n issuer http://auth.example.org\n}", "issuer: \"http://auth.example.org\" must use https (plain http is accepted only on localhost), at Testfile:2"},
		{"http fhir_base", "smart_auth {\n issuer https://a.example\n fhir_base http://10.0.0.5/fhir\n}", "fhir_base: \"http://10.0.0.5/fhir\" must use https (plain http is accepted only on localhost), at Testfile:3"},
		{"issuer with query", "smart_auth {\n issuer https://a.example/?x=1\n}", "must not have a query"},
		{"issuer with fragment", "smart_auth {\n issuer https://a.example/#x\n}", "must not have a fragment"},
		{"duplicate issuer", "smart_auth {\n issuer https://a.example\n issuer https://b.example\n}", "issuer already specified, at Testfile:3"},
		{"issuer two args", "smart_auth {\n issuer https://a.example https://b.example\n}", "issuer: one value expected"},
		{"issuer no value", "smart_auth {\n issuer\n}", "issuer: a value is required, at Testfile:2"},
		{"bad duration", head + " access_token_lifetime soon\n}", "access_token_lifetime: time: invalid duration"},
		{"negative duration", head + " code_lifetime -5s\n}", "code_lifetime: must be positive, at Testfile:4"},
		{"duplicate lifetime", head + " code_lifetime 5s\n code_lifetime 6s\n}", "code_lifetime already specified, at Testfile:5"},
		{"signing key alg", head + " signing_key HS256 k.pem\n}", "signing_key: algorithm \"HS256\": must be RS256 or ES256, at Testfile:4"},
		{"signing key args", head + " signing_key RS256\n}", "signing_key: expected an algorithm and a PEM file"},
		{"signing key twice", head + " signing_key RS256 a.pem\n signing_key RS256 b.pem\n}", "signing_key: RS256 already specified, at Testfile:5"},
		{"duplicate client", head + " client a {\n redirect_uri https://x/cb\n }\n client a {\n redirect_uri https://x/cb\n }\n}", "client \"a\": duplicate client id, at Testfile:"},
		{"client without id", head + " client {\n }\n}", "client: a client id is required"},
		{"client unknown option", head + " client a {\n colour red\n }\n}", "client \"a\": unrecognized subdirective 'colour', at Testfile:5"},
		{"redirect fragment", head + " client a {\n redirect_uri https://x/cb#frag\n }\n}", "client \"a\": redirect_uri: \"https://x/cb#frag\" must not have a fragment, at Testfile:5"},
		{"redirect http", head + " client a {\n redirect_uri http://app.example/cb\n }\n}", "redirect_uri: \"http://app.example/cb\" must use https"},
		{"redirect relative", head + " client a {\n redirect_uri /cb\n }\n}", "redirect_uri: \"/cb\" is not an absolute https URL"},
		{"launch uri http", head + " client a {\n redirect_uri https://x/cb\n launch_uri http://x/launch\n }\n}", "launch_uri: \"http://x/launch\" must use https (plain http is accepted only on localhost), at Testfile:6"},
		{"jwks not json", head + " client a {\n jwks nope\n }\n}", "jwks: not valid JSON"},
		{"jwks private", head + " client a {\n jwks `{\"keys\":[{\"kty\":\"oct\",\"kid\":\"s\",\"k\":\"c2VjcmV0\"}]}`\n scopes system/*.rs\n }\n}", "symmetric key"},
		{"jwks_uri http", head + " client a {\n jwks_uri http://keys.example/jwks\n scopes system/*.rs\n }\n}", "jwks_uri: \"http://keys.example/jwks\" must use https"},
		{"missing redirect", head + " client a {\n name App\n }\n}", "client \"a\": grant_types: none given and none implied"},
		{"auth code without redirect", head + " client a {\n grant_types authorization_code\n }\n}", "redirect_uri: required for the authorization_code grant, at Testfile:4"},
		{"unknown grant", head + " client a {\n redirect_uri https://x/cb\n grant_types implicit\n }\n}", "grant_types: \"implicit\" is not one of"},
		{"public client credentials", head + " client a {\n type public\n grant_types client_credentials\n scopes system/*.rs\n }\n}", "a public client cannot use client_credentials"},
		{"symmetric client credentials", head + " client a {\n secret s3\n grant_types client_credentials\n scopes system/*.rs\n }\n}", "client_credentials needs an asymmetric client"},
		{"backend without scopes", head + " client a {\n jwks_uri https://k.example/jwks\n }\n}", "scopes: a client_credentials client must list"},
		{"secret and hash", head + " client a {\n secret s\n secret_hash x\n redirect_uri https://x/cb\n }\n}", "give one, not both"},
		{"bad secret hash", head + " client a {\n secret_hash plaintext\n redirect_uri https://x/cb\n }\n}", "secret_hash:"},
		{"public with secret", head + " client a {\n type public\n secret s\n redirect_uri https://x/cb\n }\n}", "a public client has no client secret"},
		{"asymmetric without keys", head + " client a {\n type confidential_asymmetric\n redirect_uri https://x/cb\n }\n}", "needs jwks, jwks_file or jwks_uri"},
		{"bad type", head + " client a {\n type robot\n redirect_uri https://x/cb\n }\n}", "type \"robot\": must be public"},
		{"duplicate client option", head + " client a {\n name A\n name B\n }\n}", "client \"a\": name already specified, at Testfile:6"},
		{"duplicate user", head + " user u {\n }\n user u {\n }\n}", "user \"u\": duplicate user name"},
		{"user named as a client", head + " client u {\n redirect_uri https://x/cb\n }\n user u {\n }\n}", "user \"u\": a client and a user may not have the same name"},
		{"client named as a user", head + " user u {\n }\n client u {\n redirect_uri https://x/cb\n }\n}", "client \"u\": a client and a user may not have the same name"},
		{"bad password hash", head + " user u {\n password_hash hunter2\n }\n}", "user \"u\": password_hash: not a bcrypt or argon2id hash"},
		{"bad fhir_user", head + " user u {\n fhir_user Observation/1\n }\n}", "user \"u\": fhir_user \"Observation/1\": must be Patient/<id>"},
		{"bad patient id", head + " user u {\n patients ok bad/id\n }\n}", "patients: \"bad/id\" is not a FHIR resource id"},
		{"access_token_alg", head + " access_token_alg HS256\n}", "access_token_alg: \"HS256\": must be ES256 or RS256, at Testfile:4"},
		{"sign_in", head + " sign_in magic\n}", "sign_in: \"magic\": must be password, trusted_identity or identity_provider, at Testfile:4"},
		{"sign_in empty", head + " sign_in\n}", "sign_in: at least one method is required"},
		{"frame_ancestors path", head + " frame_ancestors https://ehr.example/app\n}", "frame_ancestors: \"https://ehr.example/app\" is not an origin"},
		{"remember_consent", head + " remember_consent forever\n}", "remember_consent: time: invalid duration"},
		{"public create_launch", head + " client a {\n redirect_uri https://x/cb\n create_launch\n }\n}", "create_launch: only a confidential client can create launches"},
		{"patient_search scheme", head + " patient_search ftp://fhir/\n}", "patient_search: \"ftp://fhir/\" is not an absolute http(s) URL, at Testfile:4"},
		{"patient_search query", head + " patient_search http://fhir/r4?x=1\n}", "patient_search: \"http://fhir/r4?x=1\" must not have a query"},
		{"backend_token_lifetime", head + " backend_token_lifetime soon\n}", "backend_token_lifetime: time: invalid duration"},
		{"user system scope", head + " user u {\n scopes system/*.rs\n }\n}", "user \"u\": scopes: \"system/*.rs\": a user's bound is made of patient/ and user/ resource scopes"},
		{"user bad scope", head + " user u {\n scopes user/Foo.zz\n }\n}", "user \"u\": scopes: \"user/Foo.zz\""},
		{"user empty scopes", head + " user u {\n scopes\n }\n}", "user \"u\": scopes: at least one value is required"},
		{"user unknown option", head + " user u {\n role admin\n }\n}", "user \"u\": unrecognized subdirective 'role', at Testfile:5"},
		{"refresh_grace_period too long", head + " refresh_grace_period 6m\n}", "refresh_grace_period: 6m0s: must be between 0 (strict rotation) and 5m0s, at Testfile:4"},
		{"refresh_grace_period negative", head + " refresh_grace_period -1s\n}", "refresh_grace_period: -1s: must be between 0"},
		{"refresh_grace_period not a duration", head + " refresh_grace_period soon\n}", "refresh_grace_period: time: invalid duration"},
		{"refresh_grace_period no value", head + " refresh_grace_period\n}", "refresh_grace_period: a value is required, at Testfile:4"},
		{"refresh_grace_period twice", head + " refresh_grace_period 1s\n refresh_grace_period 2s\n}", "refresh_grace_period already specified, at Testfile:5"},
	} {
		t.Run(tc.name, func(t *testing.T) { expectParseError(t, tc.input, tc.want) })
	}
}

func TestValidateJSONConfig(t *testing.T) {
	for _, tc := range []struct {
		name, js, want string
	}{
		{"ok", `{"issuer":"https://a.example","fhir_base":"https://f.example"}`, ""},
		{"no issuer", `{"fhir_base":"https://f.example"}`, "issuer: is required"},
		{"http issuer", `{"issuer":"http://a.example","fhir_base":"https://f.example"}`, "issuer: \"http://a.example\" must use https"},
		{"localhost ok", `{"issuer":"http://localhost:8080","fhir_base":"http://127.0.0.1:8080/fhir"}`, ""},
		{"duplicate client", `{"issuer":"https://a.example","fhir_base":"https://f.example","clients":[{"id":"x","redirect_uris":["https://x/cb"]},{"id":"x","redirect_uris":["https://x/cb"]}]}`, "client \"x\": duplicate client id"},
		{"fragment", `{"issuer":"https://a.example","fhir_base":"https://f.example","clients":[{"id":"x","redirect_uris":["https://x/cb#f"]}]}`, "client \"x\": redirect_uri: \"https://x/cb#f\" must not have a fragment"},
		{"duplicate user", `{"issuer":"https://a.example","fhir_base":"https://f.example","users":[{"name":"u"},{"name":"u"}]}`, "user \"u\": duplicate user name"},
		{"user named as a client", `{"issuer":"https://a.example","fhir_base":"https://f.example","clients":[{"id":"u","redirect_uris":["https://x/cb"]}],"users":[{"name":"u"}]}`, "user \"u\": a client and a user may not have the same name"},
		{"signing key alg", `{"issuer":"https://a.example","fhir_base":"https://f.example","signing_keys":[{"alg":"none","file":"x"}]}`, "signing_key: algorithm \"none\""},
		{"refresh grace 5m", `{"issuer":"https://a.example","fhir_base":"https://f.example","refresh_grace_period":"5m"}`, ""},
		{"refresh grace too long", `{"issuer":"https://a.example","fhir_base":"https://f.example","refresh_grace_period":"301s"}`, "refresh_grace_period: 5m1s: must be between 0 (strict rotation) and 5m0s"},
		{"refresh grace negative", `{"issuer":"https://a.example","fhir_base":"https://f.example","refresh_grace_period":-1}`, "refresh_grace_period: -1ns: must be between 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s SmartAuth
			if err := json.Unmarshal([]byte(tc.js), &s); err != nil {
				t.Fatal(err)
			}
			s.setDefaults()
			err := s.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// expectParseError parses a Caddyfile and wants an error that contains
// want (the option, the problem and usually the file and line).
func expectParseError(t *testing.T, input, want string) {
	t.Helper()
	_, err := parse(t, input)
	if err == nil {
		t.Fatalf("no error; want %q", want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q\nwant it to contain %q", err, want)
	}
}
