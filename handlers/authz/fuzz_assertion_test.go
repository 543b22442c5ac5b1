package authz

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jws/jwsbb"

	"github.com/smartcaddy/smartauth/handlers/clients"
	"github.com/smartcaddy/smartauth/store"
)

// assertionInput is a client assertion as FuzzClientAssertion builds it:
// header and claims from fields, each object extended with raw JSON
// members (which may repeat a field), signed with a chosen key.
type assertionInput struct {
	alg, kid, typ, iss, sub, aud, jti string
	exp, nbf, iat                     int64 // seconds from now
	flags                             uint8
	extraHeader, extraClaims          string
}

// Bits of assertionInput.flags.
const (
	asHasExp    = 1 << 0
	asHasNbf    = 1 << 1
	asHasIat    = 1 << 2
	asHasJTI    = 1 << 3
	asKeyShift  = 4      // two bits: 0 the registered key, 1 an unregistered one, 2 no signature, 3 a broken one
	asUniqueJTI = 1 << 6 // a fresh jti suffix per execution
	asAudList   = 1 << 7
)

// splice adds raw JSON members to a JSON object's text.
func splice(obj []byte, extra string) []byte {
	if extra == "" {
		return obj
	}
	return append(append(obj[:len(obj)-1:len(obj)-1], ','), extra+"}"...)
}

// build signs the assertion with the env's keys; it returns the compact
// JWS and the header and claims text that were signed.
func (in assertionInput) build(e *fuzzEnv, now time.Time) (string, []byte, []byte) {
	hdr := map[string]any{"alg": in.alg, "kid": in.kid}
	if in.typ != "" {
		hdr["typ"] = in.typ
	}
	clamp := func(d int64) int64 { return max(-1e10, min(d, 1e10)) }
	claims := map[string]any{"iss": in.iss, "sub": in.sub, "aud": in.aud}
	if in.flags&asAudList != 0 {
		claims["aud"] = []string{in.aud}
	}
	if in.flags&asHasExp != 0 {
		claims["exp"] = now.Unix() + clamp(in.exp)
	}
	if in.flags&asHasNbf != 0 {
		claims["nbf"] = now.Unix() + clamp(in.nbf)
	}
	if in.flags&asHasIat != 0 {
		claims["iat"] = now.Unix() + clamp(in.iat)
	}
	if in.flags&asHasJTI != 0 {
		jti := in.jti
		if in.flags&asUniqueJTI != 0 {
			jti += store.NewSecret()
		}
		claims["jti"] = jti
	}
	h, _ := json.Marshal(hdr)
	c, _ := json.Marshal(claims)
	h, c = splice(h, in.extraHeader), splice(c, in.extraClaims)
	b64 := base64.RawURLEncoding
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	var key any
	switch in.alg {
	case "ES384":
		key = e.ec384
	case "ES256":
		key = e.ec256
	case "RS256", "RS384":
		key = e.rsa
	}
	var sig []byte
	switch (in.flags >> asKeyShift) & 3 {
	case 0:
		sig, _ = jwsbb.Sign(key, in.alg, []byte(input), nil)
	case 1:
		sig, _ = jwsbb.Sign(e.other, in.alg, []byte(input), nil)
	case 3:
		if sig, _ = jwsbb.Sign(key, in.alg, []byte(input), nil); len(sig) > 0 {
			sig[len(sig)/2] ^= 1
		}
	}
	return input + "." + b64.EncodeToString(sig), h, c
}

// registeredKID are the kids of fzBackend's keys and the algorithms each
// fits.
var registeredKID = map[string][]string{"ec1": {"ES384"}, "ec256": {"ES256"}, "rs1": {"RS256", "RS384"}}

// numericDate reads a JSON number claim as seconds.
func numericDate(v any) (float64, bool) {
	n, ok := v.(float64)
	return n, ok
}

// assertionAcceptable tells whether a client assertion may authenticate
// fzBackend at the token endpoint (RFC 7523 §3 as SMART profiles it),
// reading header and claims as encoding/json does; slack widens the time
// checks (seconds) for the time that passes during a request.
func assertionAcceptable(in assertionInput, hdr, claims []byte, now time.Time, slack float64) bool {
	var h, c map[string]any
	if json.Unmarshal(hdr, &h) != nil || json.Unmarshal(claims, &c) != nil {
		return false
	}
	alg, _ := h["alg"].(string)
	kid, _ := h["kid"].(string)
	typ, hasTyp := h["typ"]
	if !slices.Contains(registeredKID[kid], alg) || (in.flags>>asKeyShift)&3 != 0 {
		return false
	}
	if s, ok := typ.(string); hasTyp && (!ok || !strings.EqualFold(s, "JWT")) {
		return false
	}
	for _, k := range []string{"jku", "crit", "x5u", "jwk"} {
		if _, ok := h[k]; ok {
			return false
		}
	}
	if c["iss"] != fzBackend || c["sub"] != fzBackend {
		return false
	}
	switch aud := c["aud"].(type) {
	case string:
		if aud != fzIssuer+"/token" {
			return false
		}
	case []any:
		if !slices.Contains(aud, any(fzIssuer+"/token")) {
			return false
		}
	default:
		return false
	}
	if jti, _ := c["jti"].(string); jti == "" {
		return false
	}
	t := float64(now.Unix())
	exp, ok := numericDate(c["exp"])
	if !ok || exp <= t-30-slack || exp > t+330+slack {
		return false
	}
	for _, k := range []string{"nbf", "iat"} {
		if v, has := c[k]; has {
			if n, ok := numericDate(v); !ok || n > t+30+slack {
				return false
			}
		}
	}
	return true
}

// tokenWithAssertion asks the token endpoint for a client_credentials
// token with a client assertion.
func (e *fuzzEnv) tokenWithAssertion(assertion string) (int, string) {
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"scope":                 {"system/*.rs"},
		"client_assertion_type": {clients.AssertionTypeJWT},
		"client_assertion":      {assertion},
	}
	w := e.postForm("/auth/token", "application/x-www-form-urlencoded", 0, form.Encode())
	var out struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	return w.Code, out.Error
}

// FuzzClientAssertion sends client assertions built from fuzzed header
// and claims (signed with the client's registered keys, another key, or
// none) to the token endpoint and checks:
//   - an assertion is accepted only when assertionAcceptable says so: an
//     accepted algorithm with the registered key of its kid, typ JWT or
//     none, no jku, iss = sub = the client, aud the token endpoint, exp
//     at most five minutes ahead and not past, nbf and iat not ahead, a
//     jti, an intact signature;
//   - every refusal is invalid_client or invalid_request, never a 5xx;
//   - an accepted assertion is never accepted twice (jti replay);
//   - a well-formed assertion with comfortable times is accepted.
func FuzzClientAssertion(f *testing.F) {
	e := newFuzzEnv(f)
	tok := fzIssuer + "/token"
	good := assertionInput{alg: "ES384", kid: "ec1", typ: "JWT", iss: fzBackend, sub: fzBackend, aud: tok, jti: "j-",
		exp: 120, flags: asHasExp | asHasJTI | asUniqueJTI}
	seeds := []assertionInput{good}
	for _, edit := range []func(*assertionInput){
		func(a *assertionInput) { a.alg, a.kid = "ES256", "ec256" },
		func(a *assertionInput) { a.alg, a.kid = "RS384", "rs1" },
		func(a *assertionInput) { a.alg = "ES256" },
		func(a *assertionInput) { a.alg = "HS256" },
		func(a *assertionInput) { a.alg = "none" },
		func(a *assertionInput) { a.typ = "at+jwt" },
		func(a *assertionInput) { a.sub = "app" },
		func(a *assertionInput) { a.aud = fzIssuer + "/introspect" },
		func(a *assertionInput) { a.flags |= asAudList },
		func(a *assertionInput) { a.exp = 600 },
		func(a *assertionInput) { a.exp = -60 },
		func(a *assertionInput) { a.flags |= asHasNbf; a.nbf = 120 },
		func(a *assertionInput) { a.flags |= asHasIat; a.iat = -10 },
		func(a *assertionInput) { a.flags &^= asHasJTI },
		func(a *assertionInput) { a.flags |= 1 << asKeyShift },
		func(a *assertionInput) { a.flags |= 2 << asKeyShift },
		func(a *assertionInput) { a.flags |= 3 << asKeyShift },
		func(a *assertionInput) { a.flags &^= asUniqueJTI },
		func(a *assertionInput) { a.extraHeader = `"jku":"https://evil.example/jwks"` },
		func(a *assertionInput) { a.extraHeader = `"crit":["b64"],"b64":false` },
		func(a *assertionInput) { a.extraHeader = `"kid":"rs1"` },
		func(a *assertionInput) { a.extraClaims = `"iss":"app"` },
		func(a *assertionInput) { a.extraClaims = `"exp":"soon"` },
		func(a *assertionInput) { a.extraClaims = `"aud":["x","` + tok + `"]` },
	} {
		s := good
		edit(&s)
		seeds = append(seeds, s)
	}
	for _, s := range seeds {
		f.Add(s.alg, s.kid, s.typ, s.iss, s.sub, s.aud, s.jti, s.exp, s.nbf, s.iat, s.flags, s.extraHeader, s.extraClaims)
	}
	f.Fuzz(func(t *testing.T, alg, kid, typ, iss, sub, aud, jti string, exp, nbf, iat int64, flags uint8, extraHeader, extraClaims string) {
		in := assertionInput{alg, kid, typ, iss, sub, aud, jti, exp, nbf, iat, flags, extraHeader, extraClaims}
		now := time.Now()
		assertion, hdr, claims := in.build(e, now)
		status, code := e.tokenWithAssertion(assertion)
		if status != http.StatusOK {
			if status >= 500 || (code != "invalid_client" && code != "invalid_request") {
				t.Fatalf("assertion %s.%s refused with %d %s", hdr, claims, status, code)
			}
			comfortable := exp >= 10 && exp <= 240 && (flags&asHasNbf == 0 || nbf <= -5) && (flags&asHasIat == 0 || iat <= -5)
			if extraHeader == "" && extraClaims == "" && flags&asUniqueJTI != 0 && comfortable && jti != "" &&
				assertionAcceptable(in, hdr, claims, now, -5) {
				t.Fatalf("a good assertion %s.%s was refused: %d %s", hdr, claims, status, code)
			}
			return
		}
		if !assertionAcceptable(in, hdr, claims, now, 3) {
			t.Fatalf("assertion %s.%s accepted", hdr, claims)
		}
		if again, code := e.tokenWithAssertion(assertion); again != http.StatusUnauthorized || code != "invalid_client" {
			t.Fatalf("a replayed assertion %s.%s: %d %s", hdr, claims, again, code)
		}
	})
}
