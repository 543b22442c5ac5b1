package accesstoken

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/store"
)

// diffEnv is a profile over a real Badger store and a key ring whose keys
// come from files the test holds the private halves of, so that it can
// sign any header and payload bytes; the ring's clock stands still.
type diffEnv struct {
	p          *Profile
	es         *ecdsa.PrivateKey
	rs         *rsa.PrivateKey
	esKID      string
	rsKID      string
	now        time.Time
	fastShares int // inputs the fast path decided (not errNotFast)
}

// newDiffEnv builds the environment in tb's temporary directory.
func newDiffEnv(tb testing.TB) *diffEnv {
	tb.Helper()
	dir := tb.TempDir()
	e := &diffEnv{now: time.Now().Truncate(time.Second)}
	var err error
	if e.es, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		tb.Fatal(err)
	}
	if e.rs, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		tb.Fatal(err)
	}
	files := map[string]string{}
	for alg, k := range map[string]any{keys.ES256: e.es, keys.RS256: e.rs} {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			tb.Fatal(err)
		}
		path := filepath.Join(dir, alg+".pem")
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			tb.Fatal(err)
		}
		files[alg] = path
	}
	db, err := store.Open(filepath.Join(dir, "db"), store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	ring, err := keys.New(context.Background(), keys.Options{
		Store: db, Retain: time.Hour, Files: files, Now: func() time.Time { return e.now },
	})
	if err != nil {
		tb.Fatal(err)
	}
	for _, kid := range ring.KIDs() {
		k, _ := ring.PublicKey(kid)
		if a, _ := k.Algorithm(); a.String() == keys.ES256 {
			e.esKID = kid
		} else {
			e.rsKID = kid
		}
	}
	if e.p, err = New(Options{Issuer: "https://auth.example.org", Audience: "https://fhir.example.org/r4",
		Keys: ring, Lifetime: time.Hour, Store: db}); err != nil {
		tb.Fatal(err)
	}
	return e
}

// expand replaces the placeholders of a seed: $ES and $RS (the kids),
// $ISS, $AUD, and $NOW, $PAST, $SOON, $LATER (times around the clock).
func (e *diffEnv) expand(s string) string {
	n := e.now.Unix()
	return strings.NewReplacer(
		"$ES", e.esKID, "$RS", e.rsKID, "$ISS", "https://auth.example.org", "$AUD", "https://fhir.example.org/r4",
		"$NOW", strconv.FormatInt(n, 10), "$PAST", strconv.FormatInt(n-3600, 10),
		"$SOON", strconv.FormatInt(n+600, 10), "$LATER", strconv.FormatInt(n+3600, 10),
	).Replace(s)
}

// token assembles a compact JWS of header and payload. mode chooses the
// signature (bit 0: RSA key, else ECDSA; bit 1: flip a signature byte;
// bit 2: no signature), the encoding (bit 3: padded base64url; bit 4:
// standard base64) and a last touch (bit 5: append a space; bit 6:
// replace the byte at position cut of the token with 'A').
func (e *diffEnv) token(tb testing.TB, header, payload string, mode uint8, cut uint16) string {
	enc := base64.RawURLEncoding
	switch {
	case mode&8 != 0:
		enc = base64.URLEncoding
	case mode&16 != 0:
		enc = base64.StdEncoding
	}
	in := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	h := sha256.Sum256([]byte(in))
	var sig []byte
	if mode&1 != 0 {
		s, err := rsa.SignPKCS1v15(rand.Reader, e.rs, crypto.SHA256, h[:])
		if err != nil {
			tb.Fatal(err)
		}
		sig = s
	} else {
		r, s, err := ecdsa.Sign(rand.Reader, e.es, h[:])
		if err != nil {
			tb.Fatal(err)
		}
		sig = append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	}
	if mode&2 != 0 {
		sig[len(sig)/2] ^= 1
	}
	if mode&4 != 0 {
		sig = nil
	}
	tok := in + "." + enc.EncodeToString(sig)
	if mode&32 != 0 {
		tok += " "
	}
	if mode&64 != 0 && int(cut) < len(tok) {
		tok = tok[:cut] + "A" + tok[cut+1:]
	}
	return tok
}

// fastVerifySeeds are headers and payloads around the edges of the fast
// path's domain.
var fastVerifySeeds = []struct{ header, payload string }{
	{`{"alg":"ES256","kid":"$ES","typ":"at+jwt"}`, `{"aud":["$AUD"],"client_id":"app","exp":$LATER,"iat":$NOW,"iss":"$ISS","jti":"j1","nbf":$NOW,"scope":"x","sub":"alice","patient":"p1","family_id":"f","fhirContext":[{"reference":"Observation/o1","n":1.5}],"need_patient_banner":true}`},
	{`{"alg":"RS256","kid":"$RS","typ":"application/AT+JWT"}`, `{"aud":"$AUD","exp":$LATER,"iss":"$ISS","jti":"j1","sub":"app","client_id":"app"}`},
	{`{"alg":"RS256","kid":"$ES","typ":"at+jwt"}`, `{"aud":"$AUD","exp":$LATER,"iss":"$ISS","jti":"j1"}`},
	{`{"alg":"ES256","kid":"$ES","typ":"JWT"}`, `{"aud":"$AUD","exp":$LATER,"iss":"$ISS","jti":"j1"}`},
	{`{"alg":"ES256","kid":"$ES","typ":"at+jwt","crit":["exp"]}`, `{"aud":"$AUD","exp":$LATER,"iss":"$ISS","jti":"j1"}`},
	{`{"alg":"ES256","kid":"$ES","kid":"other","typ":"at+jwt"}`, `{"aud":"$AUD","exp":$LATER,"iss":"$ISS","jti":"j1"}`},
	{`{"alg":"none","kid":"$ES","typ":"at+jwt"}`, `{"aud":"$AUD","exp":$LATER,"iss":"$ISS","jti":"j1"}`},
	{`{"alg":"ES256","kid":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","typ":"at+jwt"}`, `{"aud":"$AUD","exp":$LATER,"iss":"$ISS","jti":"j1"}`},
	{`{"alg":"ES256","kid":"$ES","typ":"at+jwt"}`, `{"aud":"$AUD","exp":$PAST,"iss":"$ISS","jti":"j1"}`},
	{`{"alg":"ES256","kid":"$ES","typ":"at+jwt"}`, `{"aud":"$AUD","exp":$LATER,"nbf":$SOON,"iss":"$ISS","jti":"j1"}`},
	{`{"alg":"ES256","kid":"$ES","typ":"at+jwt"}`, `{"aud":"$AUD","exp":$LATER,"iat":$SOON,"iss":"$ISS","jti":"j1"}`},
	{`{"alg":"ES256","kid":"$ES","typ":"at+jwt"}`, `{"aud":"$AUD","exp":"$LATER","iss":"$ISS","jti":"j1"}`},
	{`{"alg":"ES256","kid":"$ES","typ":"at+jwt"}`, `{"aud":"$AUD","exp":$LATER.5,"iss":"$ISS","jti":"j1"}`},
	{`{"alg":"ES256","kid":"$ES","typ":"at+jwt"}`, `{"aud":"$AUD","exp":$LATER,"iss":"$ISS","iss":"x","jti":"j1"}`},
	{`{"alg":"ES256","kid":"$ES","typ":"at+jwt"}`, `{"aud":"$AUD","exp":$LATER,"ISS":"$ISS","jti":"j1"}`},
	{`{"alg":"ES256","kid":"$ES","typ":"at+jwt"}`, `{"aud":["x","$AUD"],"exp":$LATER,"iss":"$ISS"}`},
	{`{"alg":"ES256","kid":"$ES","typ":"at+jwt"}`, `{"aud":[],"exp":$LATER,"iss":"$ISS","jti":null}`},
	{`{"alg":"ES256","kid":"$ES","typ":"at+jwt"}`, `{"aud":"$AUD","exp":$LATER,"iss":"$ISS","jti":"j1"} {}`},
	{`{"alg":"ES256","kid":"$ES","typ":"at+jwt"}`, `{"aud":"$AUD","exp":$LATER,"iss":"$ISS","jti":"j1","patient":5,"scope":["a"]}`},
	{`{"alg":"ES256","kid":"$ES","typ":"at+jwt"}`, `{"aud":"$AUD","exp":$LATER,"iss":"$I\u0053S","jti":"j\ud800","sub":""}`},
	{`{"alg":"ES256","kid":"$ES","typ":"at+jwt"}`, `{"aud":"$AUD","exp":$LATER,"iss":"$ISS","jti":"j1","fhirContext":[{"n":12345678901234567890,"e":1e400,"f":-0.0,"s":"<&>"},7,null],"need_patient_banner":false}`},
	{`{"alg":"ES256","kid":"$ES","typ":"at+jwt"}`, `{"aud":"$AUD","exp":$LATER,"\u0069ss":"$ISS","jti":"j1","x":{"y":[1e308,"\u00e9"]}}`},
	{`{"alg":"ES256","kid":"$ES","typ":"at+jwt"}`, `{"aud":"$AUD","exp":$LATER,"iss":"$ISS","\u0069ss":"$ISS","jti":"j1"}`},
	{`{"alg":"ES256","kid":"$ES","typ":"at+jwt"}`, ` {"aud":"$AUD","exp":$LATER,"iss":"$ISS","jti":"j1","x":1e999}`},
	{`{"alg":"ES256","kid":"$ES","typ":"at+jwt"}`, `{"aud":"$AUD","exp":$LATER,"iss":"$ISS","jti":"j1","fhirContext":{"reference":"x"},"intent":"a","tenant":"t","smart_style_url":"u","encounter":"e","fhirUser":"f"}`},
}

// FuzzFastVerify is the differential check of the fast verifier: for any
// header and payload, signed right or wrong, encoded canonically or not,
// Verify (the fast path, and jwx for what it leaves) accepts exactly the
// tokens the jwx path (verifyJWX) accepts, reads the same claims from
// them, and calls the same of them expired.
func FuzzFastVerify(f *testing.F) {
	e := newDiffEnv(f)
	for i, s := range fastVerifySeeds {
		f.Add(s.header, s.payload, uint8(i%2), uint16(0))
		f.Add(s.header, s.payload, uint8(2+i%2), uint16(0))
	}
	for _, m := range []uint8{4, 8, 16, 32, 64} {
		f.Add(fastVerifySeeds[0].header, fastVerifySeeds[0].payload, m, uint16(20))
	}
	f.Fuzz(func(t *testing.T, header, payload string, mode uint8, cut uint16) {
		tok := e.token(t, e.expand(header), e.expand(payload), mode, cut)
		checkSameVerdict(t, e, tok)
	})
}

// checkSameVerdict verifies tok both ways and fails on any difference.
func checkSameVerdict(t *testing.T, e *diffEnv, tok string) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.p.verifyFast(ctx, tok); !errors.Is(err, errNotFast) {
		e.fastShares++
	}
	got, gotErr := e.p.Verify(ctx, tok)
	want, wantErr := e.p.verifyJWX(ctx, tok)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("Verify: %v, jwx: %v, token %q", gotErr, wantErr, tok)
	}
	if gotErr != nil {
		// Only a token with a good signature reaches jwx's claims checks.
		if signed := !strings.Contains(wantErr.Error(), "signature"); signed &&
			errors.Is(gotErr, jwt.TokenExpiredError()) != errors.Is(wantErr, jwt.TokenExpiredError()) {
			t.Fatalf("expiry: Verify %v, jwx %v", gotErr, wantErr)
		}
		return
	}
	if g, w := readView(got), readView(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("claims differ:\nVerify %+v\njwx    %+v", g, w)
	}
}

// claimsView is everything a caller reads of verified claims.
type claimsView struct {
	Sub, ID, Iss, Aud, Client, Scope, Patient, Encounter, FHIRUser, Family string
	Iat, Exp                                                               time.Time
	HasIat, HasExp                                                         bool
	Launch                                                                 store.LaunchContext
}

// readView reads every claim of c.
func readView(c Claims) claimsView {
	v := claimsView{Sub: c.Subject(), ID: c.ID(), Iss: c.Issuer(), Aud: c.Audience(), Client: c.ClientID(),
		Scope: c.Scope(), Patient: c.Patient(), Encounter: c.Encounter(), FHIRUser: c.FHIRUser(),
		Family: c.Family(), Launch: c.LaunchContext()}
	v.Iat, v.HasIat = c.IssuedAt()
	v.Exp, v.HasExp = c.Expiration()
	return v
}

// TestFastVerifyDomain checks that the fast path decides the tokens this
// server mints and the seeds of its domain (and so that FuzzFastVerify
// exercises it, not only jwx), agreeing with jwx on each seed.
func TestFastVerifyDomain(t *testing.T) {
	e := newDiffEnv(t)
	for i, s := range fastVerifySeeds {
		for _, mode := range []uint8{uint8(i % 2), uint8(2 + i%2)} {
			checkSameVerdict(t, e, e.token(t, e.expand(s.header), e.expand(s.payload), mode, 0))
		}
	}
	if e.fastShares < len(fastVerifySeeds) {
		t.Errorf("the fast path decided %d of %d seed tokens", e.fastShares, 2*len(fastVerifySeeds))
	}
	for _, alg := range []string{keys.ES256, keys.RS256} {
		p := *e.p
		p.opts.Alg = alg
		tok, _, err := p.Mint(Grant{ClientID: "app", Subject: "alice", Scope: "patient/*.rs", FamilyID: "f",
			Context: store.LaunchContext{Patient: "p1", Intent: "i"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.verifyFast(context.Background(), tok); err != nil {
			t.Errorf("%s: a minted token is not verified by the fast path: %v", alg, err)
		}
		if _, err := p.verifyJWX(context.Background(), tok); err != nil {
			t.Errorf("%s: jwx refuses a minted token: %v", alg, err)
		}
		checkSameVerdict(t, e, tok)
	}
}
