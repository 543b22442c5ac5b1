package guard

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/smartcaddy/smartauth/handlers/accesstoken"
	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/store"
)

// TestNegativeCache checks which refusals the guard remembers by token
// hash: a token refused for good (a bad signature, expired, revoked) is
// remembered and refused again the same way; one that may become good (not
// valid yet, an unknown kid) is not, and a valid token is never affected.
func TestNegativeCache(t *testing.T) {
	e := newFuzzEnv(t)
	get := func(tok string) (int, string) {
		r := httptest.NewRequest("GET", fzFHIRBase+"/Observation", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		w := e.serve(r, nil)
		return w.Code, w.Header().Get("WWW-Authenticate")
	}
	remembered := func(tok string) bool {
		return e.g.gs.refused.lookup(sha256.Sum256([]byte(tok)), time.Now()) != nil
	}
	sign := func(nbf, exp time.Time, kidFromRing bool) string {
		now := time.Now()
		b := jwt.NewBuilder().Issuer(fzIssuer).Subject(fzUser).Audience([]string{fzFHIRBase}).
			IssuedAt(now).NotBefore(nbf).Expiration(exp).JwtID(store.NewSecret()).
			Claim("client_id", fzApp).Claim("scope", "patient/*.rs").Claim("patient", fzPatient)
		tok, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := e.ring.Sign(tok, keys.ES256, accesstoken.Type)
		if err != nil {
			t.Fatal(err)
		}
		s := string(raw)
		if !kidFromRing {
			// Another plausible kid: the header is re-encoded, so the
			// signature no longer matters — the kid is refused first.
			h := `{"alg":"ES256","kid":"` + strings.Repeat("Q", 43) + `","typ":"at+jwt"}`
			s = b64(h) + s[strings.Index(s, "."):]
		}
		return s
	}
	now := time.Now()
	badSig := e.token[:len(e.token)-2] + "AA"
	if e.token[len(e.token)-2:] == "AA" {
		badSig = e.token[:len(e.token)-2] + "BB"
	}
	expired := sign(now.Add(-2*time.Hour), now.Add(-time.Hour), true)
	cases := []struct {
		name     string
		tok      string
		remember bool
	}{
		{"bad signature", badSig, true},
		{"expired", expired, true},
		{"not valid yet", sign(now.Add(time.Hour), now.Add(2*time.Hour), true), false},
		{"unknown kid", sign(now, now.Add(time.Hour), false), false},
	}
	for _, c := range cases {
		code, challenge := get(c.tok)
		if code != 401 {
			t.Fatalf("%s: status %d, want 401", c.name, code)
		}
		if got := remembered(c.tok); got != c.remember {
			t.Errorf("%s: remembered %t, want %t", c.name, got, c.remember)
		}
		if code2, challenge2 := get(c.tok); code2 != code || challenge2 != challenge {
			t.Errorf("%s: again %d %q, first %d %q", c.name, code2, challenge2, code, challenge)
		}
	}
	if code, _ := get(e.token); code != 200 || remembered(e.token) {
		t.Errorf("the valid token: %d, remembered %t", code, remembered(e.token))
	}
	// A revoked token is refused for good too.
	revoked := e.accessToken(t, fzUser, fzApp, "patient/*.rs", fzPatient)
	c, err := e.tokens.Verify(t.Context(), revoked)
	if err != nil {
		t.Fatal(err)
	}
	exp, _ := c.Expiration()
	if err := e.db.Revoke(t.Context(), store.RevokedToken, c.ID(), exp.Add(accesstoken.Skew)); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(revoked); code != 401 || !remembered(revoked) {
		t.Errorf("revoked token: %d, remembered %t", code, remembered(revoked))
	}
}

// TestNegativeCacheBound checks that the cache never holds more than
// negCacheMax entries, and forgets an entry after negCacheTTL.
func TestNegativeCacheBound(t *testing.T) {
	var c negCache
	now := time.Now()
	refused := errors.New("refused")
	for i := range negCacheMax + 10 {
		c.remember(sha256.Sum256([]byte{byte(i), byte(i >> 8), byte(i >> 16)}), refused, now)
		if len(c.m) > negCacheMax {
			t.Fatalf("%d entries after %d refusals", len(c.m), i+1)
		}
	}
	key := sha256.Sum256([]byte("x"))
	c.remember(key, refused, now)
	if c.lookup(key, now) == nil || c.lookup(key, now.Add(negCacheTTL)) != nil {
		t.Error("an entry is not kept for exactly negCacheTTL")
	}
}

// b64 is unpadded base64url.
func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
