package accesstoken_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/smartcaddy/smartauth/handlers/accesstoken"
	"github.com/smartcaddy/smartauth/keys"
)

// Each check a token fails at Verify has its own words in Problem, none
// of which repeats the token; tokens for this issuer and server verify.
func TestProblemNamesTheFailedCheck(t *testing.T) {
	ctx := context.Background()
	p, db, ring := newProfile(t, "")
	_, _, otherRing := newProfile(t, "")
	mint := func(t *testing.T, issuer, audience string, r *keys.Ring) string {
		t.Helper()
		q, err := accesstoken.New(accesstoken.Options{Issuer: issuer, Audience: audience, Keys: r, Lifetime: time.Hour, Store: db})
		if err != nil {
			t.Fatal(err)
		}
		raw, _, err := q.Mint(accesstoken.Grant{ClientID: "app", Subject: "alice", Scope: "patient/*.rs"})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	good := mint(t, testIssuer, testFHIR, ring)
	if _, err := p.Verify(ctx, good); err != nil {
		t.Fatal(err)
	}
	// A token of the right issuer and audience, but typ JWT (an id_token's).
	tok := jwt.New()
	for k, v := range map[string]any{"iss": testIssuer, "aud": testFHIR, "sub": "alice", "exp": time.Now().Add(time.Hour), "jti": "j"} {
		if err := tok.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	idLike, err := ring.Sign(tok, keys.ES256, "JWT")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")
	flipped := []byte(parts[2])
	if flipped[5] == 'A' {
		flipped[5] = 'B'
	} else {
		flipped[5] = 'A'
	}
	for _, tc := range []struct{ name, raw, want string }{
		{"garbage", "garbage", "not a signed JWT this server issues"},
		{"another server's key", mint(t, testIssuer, testFHIR, otherRing), "signed with a key this server does not have (unknown kid)"},
		{"another issuer", mint(t, "https://other.example/smart", testFHIR, ring), "issued by another issuer (iss)"},
		{"another FHIR server", mint(t, testIssuer, "https://other.example/r4", ring), "for another FHIR server (aud)"},
		{"not an access token", string(idLike), "not an access token (typ is not at+jwt)"},
		{"forged signature", parts[0] + "." + parts[1] + "." + string(flipped), "its signature does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Verify(ctx, tc.raw)
			got := accesstoken.Problem(err)
			if !strings.HasPrefix(got, "the access token is not valid: ") || !strings.Contains(got, tc.want) {
				t.Fatalf("Problem(%v) = %q, want %q", err, got, tc.want)
			}
			if strings.Contains(got, tc.raw) || strings.Contains(got, "alice") {
				t.Errorf("the description repeats the token or a claim: %q", got)
			}
		})
	}
}
