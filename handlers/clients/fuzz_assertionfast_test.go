package clients

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws/jwsbb"

	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/store"
)

// The clients, endpoints and keys of FuzzAssertionFast.
const (
	faIssuer   = "https://fast.example"
	faToken    = faIssuer + "/token"
	faEndpoint = faIssuer + "/introspect"
	faClient   = "svc"
	faJKU      = "https://svc.example/jwks.json"
)

// fastEnv is two registries over two real Badger stores, with the same
// clients: one reads every assertion with jwx, the other takes the fast
// path where it can. Both, and their stores, read the same fixed clock.
type fastEnv struct {
	fast, jwx                 *Registry
	now                       time.Time
	rsa                       *rsa.PrivateKey
	ec384, ec256, other, ec2k *ecdsa.PrivateKey
}

// newFastEnv builds the registries. Client svc holds an RSA key (rs1), a
// P-384 key (ec1, use sig), a P-256 key (ec256), a P-384 key for
// encryption only (enc1) and two P-384 keys under one kid (dup), inline,
// and names a jwks_uri (faJKU) too; sym is a symmetric client.
func newFastEnv(tb testing.TB) *fastEnv {
	e := &fastEnv{}
	var err error
	if e.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		tb.Fatal(err)
	}
	for _, k := range []**ecdsa.PrivateKey{&e.ec384, &e.other, &e.ec2k} {
		if *k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
			tb.Fatal(err)
		}
	}
	if e.ec256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		tb.Fatal(err)
	}
	set := jwk.NewSet()
	for _, k := range []struct {
		kid, use string
		pub      any
	}{
		{"rs1", "", &e.rsa.PublicKey}, {"ec1", "sig", &e.ec384.PublicKey}, {"ec256", "", &e.ec256.PublicKey},
		{"enc1", "enc", &e.ec2k.PublicKey}, {"dup", "", &e.ec384.PublicKey}, {"dup", "", &e.ec2k.PublicKey},
	} {
		jk, err := jwk.Import(k.pub)
		if err != nil {
			tb.Fatal(err)
		}
		_ = jk.Set(jwk.KeyIDKey, k.kid)
		if k.use != "" {
			_ = jk.Set(jwk.KeyUsageKey, k.use)
		}
		_ = set.AddKey(jk)
	}
	js, err := json.Marshal(set)
	if err != nil {
		tb.Fatal(err)
	}
	configured := map[string]*store.Client{
		faClient: {ID: faClient, Type: store.ClientConfidentialAsymmetric, JWKS: js, JWKSURI: faJKU},
		"sym":    {ID: "sym", Type: store.ClientConfidentialSymmetric, SecretHash: "x"},
	}
	e.now = time.Now()
	clock := func() time.Time { return e.now }
	for _, r := range []**Registry{&e.fast, &e.jwx} {
		// The store reads the same clock, so that an accepted jti is
		// remembered past the replay, whatever the time is.
		db, err := store.Open(tb.TempDir(), store.Options{Now: clock})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = db.Close() })
		*r, err = New(Options{Issuer: faIssuer, TokenEndpoint: faToken, Configured: configured, Store: db})
		if err != nil {
			tb.Fatal(err)
		}
		reg := *r
		reg.now = clock
		tb.Cleanup(func() { _ = reg.Close() })
	}
	e.jwx.jwxOnly = true
	return e
}

// fastCase is a client assertion as FuzzAssertionFast builds it: header
// and claims from fields (times in seconds from the clock's second), each
// object extended with raw JSON members, signed as flags say, then
// perhaps mutated.
type fastCase struct {
	alg, kid, typ, iss, sub, aud, jti string
	exp, nbf, iat                     int64
	nanos                             uint32 // the clock's fraction of a second
	flags                             uint16
	extraHeader, extraClaims          string
	mutAt                             uint16
	mutTo                             byte
}

// Bits of fastCase.flags.
const (
	fcTyp      = 1 << iota // a typ member
	fcKid                  // a kid member
	fcExp                  // an exp claim
	fcNbf                  // an nbf claim
	fcIat                  // an iat claim
	fcJTI                  // a jti claim
	fcSub                  // a sub claim
	fcAudList              // aud as an array
	fcNoAud                // no aud claim
	fcClientID             // the form's client_id is iss
	fcOtherID              // the form's client_id is another
	fcEndpoint             // authenticating at the introspection endpoint
	fcMutate               // the byte at mutAt becomes mutTo
)

// fcKeyShift is where the two bits of fastCase.flags that say how it is
// signed start: 0 with the key of alg, 1 another key, 2 no signature, 3
// the key of alg with a bit flipped.
const fcKeyShift = 13

// keyMode is how the case is signed (fcKeyShift).
func (c fastCase) keyMode() uint16 { return (c.flags >> fcKeyShift) & 3 }

// add adds the case to f's seed corpus, its fields in the order of
// FuzzAssertionFast's arguments.
func (c fastCase) add(f *testing.F) {
	f.Add(c.alg, c.kid, c.typ, c.iss, c.sub, c.aud, c.jti, c.exp, c.nbf, c.iat, c.nanos, c.flags,
		c.extraHeader, c.extraClaims, c.mutAt, c.mutTo)
}

// splice adds raw JSON members to a JSON object's text.
func splice(obj []byte, extra string) []byte {
	if extra == "" {
		return obj
	}
	return append(append(obj[:len(obj)-1:len(obj)-1], ','), extra+"}"...)
}

// build returns the compact JWS of the case.
func (c fastCase) build(e *fastEnv) string {
	hdr := map[string]any{"alg": c.alg}
	if c.flags&fcKid != 0 {
		hdr["kid"] = c.kid
	}
	if c.flags&fcTyp != 0 {
		hdr["typ"] = c.typ
	}
	claims := map[string]any{"iss": c.iss}
	if c.flags&fcSub != 0 {
		claims["sub"] = c.sub
	}
	switch {
	case c.flags&fcNoAud != 0:
	case c.flags&fcAudList != 0:
		claims["aud"] = []string{"https://other.example", c.aud}
	default:
		claims["aud"] = c.aud
	}
	at := func(d int64) int64 { return e.now.Unix() + max(-1e10, min(d, 1e10)) }
	for _, t := range []struct {
		bit  uint16
		name string
		d    int64
	}{{fcExp, "exp", c.exp}, {fcNbf, "nbf", c.nbf}, {fcIat, "iat", c.iat}} {
		if c.flags&t.bit != 0 {
			claims[t.name] = at(t.d)
		}
	}
	if c.flags&fcJTI != 0 {
		claims["jti"] = c.jti
	}
	h, _ := json.Marshal(hdr)
	p, _ := json.Marshal(claims)
	b64 := base64.RawURLEncoding
	input := b64.EncodeToString(splice(h, c.extraHeader)) + "." + b64.EncodeToString(splice(p, c.extraClaims))
	key := map[string]any{"RS256": e.rsa, "RS384": e.rsa, "ES384": e.ec384, "ES256": e.ec256}[c.alg]
	var sig []byte
	switch c.keyMode() {
	case 0:
		sig, _ = jwsbb.Sign(key, c.alg, []byte(input), nil)
	case 1:
		sig, _ = jwsbb.Sign(e.other, c.alg, []byte(input), nil)
	case 3:
		if sig, _ = jwsbb.Sign(key, c.alg, []byte(input), nil); len(sig) > 0 {
			sig[len(sig)/2] ^= 1
		}
	}
	tok := []byte(input + "." + b64.EncodeToString(sig))
	if c.flags&fcMutate != 0 {
		tok[int(c.mutAt)%len(tok)] = c.mutTo
	}
	return string(tok)
}

// outcome is what a registry answered: the client or the refusal.
type outcome struct {
	client string
	fault  oauth.Error
}

// authenticate sends the assertion to a registry as the case says.
func (c fastCase) authenticate(r *Registry, tok string) outcome {
	form := url.Values{"client_assertion_type": {AssertionTypeJWT}, "client_assertion": {tok}}
	switch {
	case c.flags&fcClientID != 0:
		form.Set("client_id", c.iss)
	case c.flags&fcOtherID != 0:
		form.Set("client_id", "another")
	}
	endpoint := ""
	if c.flags&fcEndpoint != 0 {
		endpoint = faEndpoint
	}
	cl, f := r.AuthenticateAt(httptest.NewRequest("POST", faToken, nil), form, endpoint)
	switch {
	case f != nil:
		return outcome{fault: *f}
	case cl == nil:
		return outcome{client: "<nil>"}
	}
	return outcome{client: cl.ID}
}

// fastDomain tells whether the fast parser must decide a case built
// without extras or mutations: an accepted alg, times it reads, and a
// token of at most maxFastAssertion bytes.
func (c fastCase) fastDomain(e *fastEnv, tok string) bool {
	if len(tok) > maxFastAssertion || c.extraHeader != "" || c.extraClaims != "" || c.flags&fcMutate != 0 || c.keyMode() == 2 {
		return false
	}
	if _, ok := clientAssertionAlgs[c.alg]; !ok {
		return false
	}
	for _, d := range []int64{c.exp, c.nbf, c.iat} {
		if e.now.Unix()+max(-1e10, min(d, 1e10)) < 0 {
			return false
		}
	}
	return true
}

// fastSeeds are cases covering every branch of the fast parser and of
// the checks after it.
func fastSeeds() []fastCase {
	good := fastCase{alg: "ES384", kid: "ec1", typ: "JWT", iss: faClient, sub: faClient, aud: faToken, jti: "j1",
		exp: 120, nbf: -10, iat: -10, nanos: 5e8, flags: fcTyp | fcKid | fcExp | fcNbf | fcIat | fcJTI | fcSub}
	out := []fastCase{good}
	for _, edit := range []func(*fastCase){
		func(c *fastCase) { c.alg, c.kid = "RS384", "rs1" },
		func(c *fastCase) { c.alg, c.kid = "RS256", "rs1" },
		func(c *fastCase) { c.alg, c.kid = "ES256", "ec256" },
		func(c *fastCase) { c.alg = "HS256" },
		func(c *fastCase) { c.alg = "none"; c.flags |= 2 << fcKeyShift },
		func(c *fastCase) { c.alg = "es384" },
		func(c *fastCase) { c.flags &^= fcKid },
		func(c *fastCase) { c.kid = "" },
		func(c *fastCase) { c.kid = "nope" },
		func(c *fastCase) { c.kid = "rs1" },
		func(c *fastCase) { c.kid = "ec256" },
		func(c *fastCase) { c.kid = "enc1" },
		func(c *fastCase) { c.kid = "dup" },
		func(c *fastCase) { c.typ = "jwt" },
		func(c *fastCase) { c.typ = "at+jwt" },
		func(c *fastCase) { c.typ = "" },
		func(c *fastCase) { c.flags &^= fcTyp },
		func(c *fastCase) { c.extraHeader = `"jku":"` + faJKU + `"` },
		func(c *fastCase) { c.extraHeader = `"jku":"https://evil.example/jwks"` },
		func(c *fastCase) { c.extraHeader = `"jku":7` },
		func(c *fastCase) { c.extraHeader = `"crit":["b64"],"b64":false` },
		func(c *fastCase) { c.extraHeader = `"cty":"JWT"` },
		func(c *fastCase) { c.extraHeader = `"kid":"rs1"` },
		func(c *fastCase) { c.extraHeader = `"x5u":"https://evil.example/x"` },
		func(c *fastCase) { c.iss = "" },
		func(c *fastCase) { c.iss, c.sub = "nobody", "nobody" },
		func(c *fastCase) { c.iss, c.sub = "sym", "sym" },
		func(c *fastCase) { c.sub = "other" },
		func(c *fastCase) { c.flags &^= fcSub },
		func(c *fastCase) { c.aud = faIssuer },
		func(c *fastCase) { c.aud = faEndpoint },
		func(c *fastCase) { c.aud = faEndpoint; c.flags |= fcEndpoint },
		func(c *fastCase) { c.aud = faIssuer; c.flags |= fcEndpoint },
		func(c *fastCase) { c.flags |= fcAudList },
		func(c *fastCase) { c.flags |= fcNoAud },
		func(c *fastCase) { c.extraClaims = `"aud":[]` },
		func(c *fastCase) { c.extraClaims = `"aud":[7]` },
		func(c *fastCase) { c.flags &^= fcExp },
		func(c *fastCase) { c.exp = 600 },
		func(c *fastCase) { c.exp = 330 },
		func(c *fastCase) { c.exp, c.nanos = 331, 0 },
		func(c *fastCase) { c.exp, c.nanos = -30, 0 },
		func(c *fastCase) { c.exp, c.nanos = -29, 999999999 },
		func(c *fastCase) { c.exp = -3600 },
		func(c *fastCase) { c.exp = -1e12 },
		func(c *fastCase) { c.nbf = 31 },
		func(c *fastCase) { c.nbf, c.nanos = 30, 0 },
		func(c *fastCase) { c.iat = 31 },
		func(c *fastCase) { c.iat, c.nanos = 30, 0 },
		func(c *fastCase) { c.iat, c.exp = 100, 10 },
		func(c *fastCase) { c.flags &^= fcJTI },
		func(c *fastCase) { c.jti = "" },
		func(c *fastCase) { c.flags |= fcClientID },
		func(c *fastCase) { c.flags |= fcOtherID },
		func(c *fastCase) { c.flags |= 1 << fcKeyShift },
		func(c *fastCase) { c.flags |= 2 << fcKeyShift },
		func(c *fastCase) { c.flags |= 3 << fcKeyShift },
		func(c *fastCase) { c.extraClaims = `"exp":1.5e9` },
		func(c *fastCase) { c.extraClaims = `"iat":"2026-01-01T00:00:00Z"` },
		func(c *fastCase) { c.extraClaims = `"scope":"x"` },
		func(c *fastCase) { c.extraClaims = `"iss":"svc"` },
		func(c *fastCase) { c.extraClaims = `"sub":null` },
		func(c *fastCase) { c.extraClaims = `"ISS":"svc"` },
		func(c *fastCase) { c.extraHeader = `"jku":""` },
		func(c *fastCase) { c.extraHeader = `"jku":"::not a URL"` },
		func(c *fastCase) { c.extraHeader = `"\u006aku":"` + faJKU + `"` },
		func(c *fastCase) { c.flags |= fcNoAud; c.extraClaims = `"aud":[]` },
		func(c *fastCase) { c.flags |= fcNoAud; c.extraClaims = `"aud":""` },
		func(c *fastCase) { c.flags |= fcNoAud; c.extraClaims = `"aud":null` },
		func(c *fastCase) { c.flags |= fcNoAud; c.extraClaims = `"aud":["` + faToken + `","` + faToken + `"]` },
		func(c *fastCase) { c.flags &^= fcSub; c.extraClaims = `"sub":""` },
		func(c *fastCase) { c.flags &^= fcExp; c.extraClaims = `"exp":0` },
		func(c *fastCase) { c.flags &^= fcExp; c.extraClaims = `"exp":1e3` },
		func(c *fastCase) { c.flags &^= fcIat; c.extraClaims = `"iat":999999999999` },
		func(c *fastCase) { c.flags &^= fcIat; c.extraClaims = `"iat":1000000000000` },
		func(c *fastCase) { c.flags &^= fcNbf; c.extraClaims = `"nbf":-1` },
		func(c *fastCase) { c.flags &^= fcJTI; c.extraClaims = `"jti":""` },
		func(c *fastCase) { c.flags &^= fcJTI; c.extraClaims = `"jti":7` },
		func(c *fastCase) { c.iss = "svc\u0000" },
		func(c *fastCase) { c.extraClaims = `"iss":"sv\u0063"` },
		func(c *fastCase) { c.flags |= fcMutate; c.mutAt, c.mutTo = 5, '=' },
		func(c *fastCase) { c.flags |= fcMutate; c.mutAt, c.mutTo = 5, '\n' },
		func(c *fastCase) { c.flags |= fcMutate; c.mutAt, c.mutTo = 0xffff, '.' },
		func(c *fastCase) { c.flags |= fcMutate; c.mutAt, c.mutTo = 40, '+' },
	} {
		c := good
		edit(&c)
		out = append(out, c)
	}
	return out
}

// FuzzAssertionFast builds client assertions from fuzzed header and
// claims, signed with the client's registered keys, another key or none,
// perhaps mutated, and checks that the fast path and jwx decide them
// alike: the same client, or the same refusal (status, code and
// description), and the same answer to a replay of an accepted one. An
// assertion without extras or mutations, of an accepted alg,
// non-negative times and at most maxFastAssertion bytes, must be decided
// by the fast parser.
func FuzzAssertionFast(f *testing.F) {
	e := newFastEnv(f)
	for _, c := range fastSeeds() {
		c.add(f)
	}
	f.Fuzz(func(t *testing.T, alg, kid, typ, iss, sub, aud, jti string, exp, nbf, iat int64, nanos uint32,
		flags uint16, extraHeader, extraClaims string, mutAt uint16, mutTo byte) {
		c := fastCase{alg, kid, typ, iss, sub, aud, jti, exp, nbf, iat, nanos, flags, extraHeader, extraClaims, mutAt, mutTo}
		e.now = time.Unix(e.now.Unix(), int64(nanos%1e9))
		// A fresh jti per execution: both stores see each one once.
		if c.jti != "" {
			c.jti += "-" + store.NewSecret()
		}
		tok := c.build(e)
		if _, _, ok := parseAssertionFast(tok); !ok && c.fastDomain(e, tok) {
			t.Fatalf("the fast parser left %s to jwx", tok)
		}
		got, want := c.authenticate(e.fast, tok), c.authenticate(e.jwx, tok)
		if got != want {
			t.Fatalf("%s\nfast: %+v\njwx:  %+v", tok, got, want)
		}
		if got.client == "" {
			return
		}
		// Badger drops a jti record when its expiry passes by the wall
		// clock (its TTL), which moves on while the test's clock stands
		// still: only a jti with a few seconds left is sure to be there at
		// the replay (in a server the two clocks are one, and the
		// assertion expires with its record).
		if exp, ok := assertionExp(tok); !ok || exp.Add(clientAssertionSkew).Sub(e.now) < 5*time.Second {
			return
		}
		if got, want := c.authenticate(e.fast, tok), c.authenticate(e.jwx, tok); got != want || got.client != "" {
			t.Fatalf("replay of %s\nfast: %+v\njwx:  %+v", tok, got, want)
		}
	})
}

// assertionExp reads an accepted assertion's exp (as a NumericDate of
// whole seconds, or a JSON number jwx reads the same way).
func assertionExp(tok string) (time.Time, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp *float64 `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp == nil {
		return time.Time{}, false
	}
	return time.Unix(int64(*claims.Exp), 0), true
}
