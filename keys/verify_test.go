package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/smartcaddy/smartauth/store"
)

func TestSignVerifyRoundTrip(t *testing.T) {
	clk := newClock()
	db := openStore(t, t.TempDir(), clk)
	r := newRing(t, opts(db, clk))
	set, err := jwk.Parse(r.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range []string{RS256, ES256} {
		for _, typ := range []string{"", "at+jwt"} {
			tok, err := r.Sign(claims(t, clk, time.Hour), alg, typ)
			if err != nil {
				t.Fatal(err)
			}
			h := header(t, tok)
			kid, _ := h.KeyID()
			halg, _ := h.Algorithm()
			htyp, _ := h.Type()
			want := typ
			if want == "" {
				want = "JWT"
			}
			if k, ok := r.PublicKey(kid); !ok || halg.String() != alg || htyp != want {
				t.Errorf("%s/%q header kid=%s (known %v) alg=%s typ=%s", alg, typ, kid, ok, halg, htyp)
			} else if ka, _ := k.Algorithm(); ka.String() != alg {
				t.Errorf("kid %s belongs to a %s key", kid, ka)
			}
			got, err := r.Verify(context.Background(), tok, jwt.WithIssuer("https://auth.example"))
			if err != nil {
				t.Fatalf("%s/%q: Verify: %v", alg, typ, err)
			}
			if sub, _ := got.Subject(); sub != "alice" {
				t.Errorf("sub = %q", sub)
			}
			// VerifyTyp accepts the type only when the header says so.
			_, err = r.VerifyTyp(context.Background(), tok, "at+jwt")
			if (typ == "at+jwt") != (err == nil) || (err != nil && !errors.Is(err, ErrWrongType)) {
				t.Errorf("%s/%q: VerifyTyp at+jwt: %v", alg, typ, err)
			}
			if _, err := r.VerifyTyp(context.Background(), tok, strings.ToUpper(want)); err != nil {
				t.Errorf("%s/%q: VerifyTyp %s (case-insensitive): %v", alg, typ, strings.ToUpper(want), err)
			}
			// A third party verifies with the published JWKS.
			if _, err := jwt.Parse(tok, jwt.WithKeySet(set), jwt.WithClock(jwt.ClockFunc(clk.Now))); err != nil {
				t.Errorf("%s: verifying with the JWKS: %v", alg, err)
			}
		}
	}
	if _, err := r.Sign(claims(t, clk, time.Hour), "HS256", ""); err == nil {
		t.Error("Sign accepted HS256")
	}
}

// compact joins a header and claims into a JWS without a signature.
func compact(t *testing.T, hdr map[string]any, tok jwt.Token) []byte {
	t.Helper()
	h, _ := json.Marshal(hdr)
	p, err := json.Marshal(tok)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	return []byte(enc.EncodeToString(h) + "." + enc.EncodeToString(p) + ".")
}

// signWith signs tok with key and alg under a chosen kid.
func signWith(t *testing.T, tok jwt.Token, alg jwa.SignatureAlgorithm, key any, kid string) []byte {
	t.Helper()
	h := jws.NewHeaders()
	_ = h.Set(jws.KeyIDKey, kid)
	out, err := jwt.Sign(tok, jwt.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestVerifyRejects(t *testing.T) {
	clk := newClock()
	db := openStore(t, t.TempDir(), clk)
	r := newRing(t, opts(db, clk))
	ec := signingKID(t, r, clk, ES256)
	rs := signingKID(t, r, clk, RS256)
	tok := claims(t, clk, time.Hour)
	pubPEM := func(kid string) []byte {
		k, _ := r.PublicKey(kid)
		var raw any
		if err := jwk.Export(k, &raw); err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKIXPublicKey(raw)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	foreignEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	foreignRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	good := sign(t, r, clk, ES256)
	tampered := []byte(strings.Replace(string(good), ".", ".e30", 1))

	cases := map[string][]byte{
		"alg none":                 compact(t, map[string]any{"alg": "none", "kid": ec, "typ": "JWT"}, tok),
		"HS256 with RSA PEM":       signWith(t, tok, jwa.HS256(), pubPEM(rs), rs),
		"HS256 with EC PEM":        signWith(t, tok, jwa.HS256(), pubPEM(ec), ec),
		"foreign key, our EC kid":  signWith(t, tok, jwa.ES256(), foreignEC, ec),
		"foreign key, our RSA kid": signWith(t, tok, jwa.RS256(), foreignRSA, rs),
		"unknown kid":              signWith(t, tok, jwa.ES256(), foreignEC, thumbprint(t, foreignEC.Public())),
		"RS256 header, EC kid":     signWith(t, tok, jwa.RS256(), foreignRSA, ec),
		"our RSA key, EC kid":      signWith(t, tok, jwa.RS256(), mustPriv(t, db, rs), ec),
		"no kid":                   signWith(t, tok, jwa.ES256(), foreignEC, ""),
		"tampered payload":         tampered,
		"garbage":                  []byte("not.a.jwt"),
	}
	for name, bad := range cases {
		if _, err := r.Verify(context.Background(), bad); err == nil {
			t.Errorf("%s: Verify accepted the token", name)
		}
	}
	if _, err := r.Verify(context.Background(), cases["unknown kid"]); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unknown kid: err = %v, want ErrUnknownKey", err)
	}
	if _, err := r.Verify(context.Background(), good, jwt.WithVerify(false)); err == nil {
		t.Error("Verify honored jwt.WithVerify(false)")
	}
	if _, err := r.Verify(context.Background(), good, jwt.WithIssuer("https://other.example")); err == nil {
		t.Error("Verify ignored jwt.WithIssuer")
	}
	// Expiry is checked against the ring's clock.
	short, err := r.Sign(claims(t, clk, 5*time.Minute), ES256, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Verify(context.Background(), short); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	clk.Add(10 * time.Minute)
	if _, err := r.Verify(context.Background(), short); !errors.Is(err, jwt.TokenExpiredError()) {
		t.Errorf("expired token: err = %v, want a jwt expiry error", err)
	}
}

// mustPriv returns the private key of a generated record.
func mustPriv(t *testing.T, db store.Store, kid string) crypto.Signer {
	t.Helper()
	k := records(t, db)[kid]
	priv, err := x509.ParsePKCS8PrivateKey(k.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return priv.(crypto.Signer)
}

// countingStore counts Keys calls.
type countingStore struct {
	store.Store
	keys atomic.Int32
}

func (c *countingStore) Keys(ctx context.Context) ([]*store.KeyRecord, error) {
	c.keys.Add(1)
	return c.Store.Keys(ctx)
}

func TestUnknownKIDReloadsOncePerSecond(t *testing.T) {
	clk := newClock()
	db := openStore(t, t.TempDir(), clk)
	cs := &countingStore{Store: db}
	a := newRing(t, opts(db, clk))
	b := newRing(t, opts(cs, clk))
	// a starts a successor; once it signs, b must learn it on demand.
	if err := a.Rotate(context.Background(), ES256); err != nil {
		t.Fatal(err)
	}
	clk.Add(DefaultPublishAhead)
	tok := sign(t, a, clk, ES256)
	before := cs.keys.Load()
	if _, err := b.Verify(context.Background(), tok); err != nil {
		t.Fatalf("Verify of a key another ring created: %v", err)
	}
	if got := cs.keys.Load() - before; got != 1 {
		t.Fatalf("reloads = %d, want 1", got)
	}
	// A storm of unknown kids causes at most one more reload.
	foreign, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	bad := signWith(t, claims(t, clk, time.Hour), jwa.ES256(), foreign, thumbprint(t, foreign.Public()))
	before = cs.keys.Load()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := b.Verify(context.Background(), bad); err == nil {
				t.Error("foreign token verified")
			}
		})
	}
	wg.Wait()
	if got := cs.keys.Load() - before; got > 1 {
		t.Fatalf("20 unknown kids caused %d reloads, want at most 1", got)
	}
}

func BenchmarkSignES256(b *testing.B) { benchmarkSign(b, ES256) }

func BenchmarkSignRS256(b *testing.B) { benchmarkSign(b, RS256) }

func benchmarkSign(b *testing.B, alg string) {
	clk := newClock()
	r := newRing(b, opts(openStore(b, b.TempDir(), clk), clk))
	tok := claims(b, clk, time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Sign(tok, alg, "at+jwt"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyES256(b *testing.B) {
	clk := newClock()
	r := newRing(b, opts(openStore(b, b.TempDir(), clk), clk))
	tok, err := r.Sign(claims(b, clk, time.Hour), ES256, "at+jwt")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Verify(ctx, tok, jwt.WithIssuer("https://auth.example")); err != nil {
			b.Fatal(err)
		}
	}
}
