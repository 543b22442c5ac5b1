package clients

import (
	"errors"
	"strings"
	"testing"
)

// TestCheckAppURL checks the one URL policy of a client's URLs, as the
// configuration, registration and the token endpoint apply it.
func TestCheckAppURL(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		kind URLKind
		want URLProblem // 0: accepted
	}{
		{"https://app.example/cb", RedirectURI, 0},
		{"http://localhost:8080/cb", RedirectURI, 0},
		{"http://127.0.0.1/cb", LaunchURI, 0},
		{"http://app.localhost/launch", LaunchURI, 0},
		{"com.example.app:/cb", RedirectURI, 0},
		{"com.example.app:/cb", LaunchURI, URLNotAbsolute},
		{"com.example.app:/cb", JWKSURI, URLNotAbsolute},
		{"http://app.example/cb", RedirectURI, URLPlainHTTP},
		{"https://app.example/cb#f", RedirectURI, URLFragment},
		{"https://app.example/cb#", JWKSURI, URLFragment},
		{"https://u:p@app.example/cb", RedirectURI, URLUserInfo},
		{"/cb", RedirectURI, URLNotAbsolute},
		{"https:///cb", JWKSURI, URLNotAbsolute},
		{"ftp://app.example/cb", LaunchURI, URLNotAbsolute},
		{"https://app.example/%zz", RedirectURI, URLMalformed},
	} {
		err := CheckAppURL(tc.raw, tc.kind)
		var ue *URLError
		switch {
		case tc.want == 0 && err != nil:
			t.Errorf("%q (kind %d): refused: %v", tc.raw, tc.kind, err)
		case tc.want != 0 && (!errors.As(err, &ue) || ue.Problem != tc.want):
			t.Errorf("%q (kind %d): %v, want problem %d", tc.raw, tc.kind, err, tc.want)
		}
	}
}

// TestCheckJWKS checks the one key policy: the keys the token endpoint
// can use (keyset selection, clientauth.go) and only those.
func TestCheckJWKS(t *testing.T) {
	set := func(keys ...string) string { return `{"keys":[` + strings.Join(keys, ",") + `]}` }
	for _, tc := range []struct{ name, jwks, want string }{
		{"ec p-384 and rsa 2048", set(ec384JWK, rsa2048JWK, ec256JWK), ""},
		{"empty", set(), "the JWK Set has no keys"},
		{"p-521", set(ec521JWK), `key "ec521": an EC key must be on P-256 or P-384 (ES256, ES384)`},
		{"private ec", set(ecPrivateJWK), `key "ec-private" holds private or symmetric key material`},
		{"symmetric", set(octJWK), `key "hmac" holds private or symmetric key material`},
		{"duplicate kid", set(ec384JWK, ec384JWK), `kid "ec1" is used by two keys`},
		{"no kid", set(`{"kty":"EC","crv":"P-256","x":"4lS-E5OELyR2PWjw7Grw7efQlWZAZ3_NdIPu6Zbbuyo","y":"-YaWQ9eATUWcnzdizLx4ieX3qw3IWkbQ2qJIenq8-sU"}`), "key 0 has no kid"},
		{"okp", set(`{"kty":"OKP","crv":"Ed25519","kid":"ed","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`), `key "ed": key type OKP is not supported`},
		{"rsa 1024", set(rsa1024JWK), `key "rs-short": rsa modulus too small`},
		{"not a set", `{"kty":"EC"}`, `not a JWK Set`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseJWKS([]byte(tc.jwks))
			if err == nil {
				err = CheckJWKS(s)
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}
