package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/smartcaddy/smartauth/store"
)

// clock is a settable fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openStore(t testing.TB, dir string, clk *clock) *store.DB {
	t.Helper()
	db, err := store.Open(dir, store.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func opts(db store.Store, clk *clock) Options {
	return Options{Store: db, Now: clk.Now, Retain: 2 * time.Hour}
}

func newRing(t testing.TB, o Options) *Ring {
	t.Helper()
	r, err := New(context.Background(), o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

// claims builds a token issued now that expires after ttl.
func claims(t testing.TB, clk *clock, ttl time.Duration) jwt.Token {
	t.Helper()
	now := clk.Now()
	tok, err := jwt.NewBuilder().Issuer("https://auth.example").Subject("alice").
		IssuedAt(now).Expiration(now.Add(ttl)).Build()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func sign(t testing.TB, r *Ring, clk *clock, alg string) []byte {
	t.Helper()
	out, err := r.Sign(claims(t, clk, 10*time.Hour), alg, "")
	if err != nil {
		t.Fatalf("Sign %s: %v", alg, err)
	}
	return out
}

func header(t testing.TB, tok []byte) jws.Headers {
	t.Helper()
	msg, err := jws.Parse(tok, jws.WithCompact())
	if err != nil {
		t.Fatal(err)
	}
	return msg.Signatures()[0].ProtectedHeaders()
}

// signingKID returns the kid the ring signs alg with now.
func signingKID(t testing.TB, r *Ring, clk *clock, alg string) string {
	t.Helper()
	kid, _ := header(t, sign(t, r, clk, alg)).KeyID()
	return kid
}

func records(t testing.TB, db store.Store) map[string]*store.KeyRecord {
	t.Helper()
	recs, err := db.Keys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string]*store.KeyRecord)
	for _, k := range recs {
		m[k.KID] = k
	}
	return m
}

func byAlg(recs map[string]*store.KeyRecord) map[string]int {
	n := make(map[string]int)
	for _, k := range recs {
		n[k.Alg]++
	}
	return n
}

func thumbprint(t testing.TB, pub crypto.PublicKey) string {
	t.Helper()
	k, err := jwk.Import(pub)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(tp)
}

func TestFirstStartGeneratesOneKeyPerAlg(t *testing.T) {
	clk := newClock()
	db := openStore(t, t.TempDir(), clk)
	r := newRing(t, opts(db, clk))
	recs := records(t, db)
	if n := byAlg(recs); len(recs) != 2 || n[RS256] != 1 || n[ES256] != 1 {
		t.Fatalf("records by alg = %v, want one RS256 and one ES256", n)
	}
	for kid, k := range recs {
		if k.External || len(k.PrivateKey) == 0 || !k.ActiveFrom.Equal(clk.Now()) || !k.RetiredAt.IsZero() || !k.PublishUntil.IsZero() {
			t.Errorf("%s record %+v: want a generated key active now", k.Alg, k)
		}
		priv, err := x509.ParsePKCS8PrivateKey(k.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		switch p := priv.(type) {
		case *rsa.PrivateKey:
			if k.Alg != RS256 || p.N.BitLen() != 2048 {
				t.Errorf("RSA key for %s with %d bits", k.Alg, p.N.BitLen())
			}
		case *ecdsa.PrivateKey:
			if k.Alg != ES256 || p.Curve != elliptic.P256() {
				t.Errorf("ECDSA key for %s on %s", k.Alg, p.Curve.Params().Name)
			}
		default:
			t.Errorf("unexpected key type %T", priv)
		}
		if tp := thumbprint(t, priv.(crypto.Signer).Public()); tp != kid {
			t.Errorf("kid %s is not the RFC 7638 thumbprint %s", kid, tp)
		}
		if got := signingKID(t, r, clk, k.Alg); got != kid {
			t.Errorf("%s signs with %s, want %s", k.Alg, got, kid)
		}
	}
}

func TestKeysSurviveRestartAndAreShared(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	db, err := store.Open(dir, store.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	first := newRing(t, opts(db, clk)).KIDs()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Hour)
	db = openStore(t, dir, clk)
	again := newRing(t, opts(db, clk))
	if got := again.KIDs(); !slices.Equal(got, first) {
		t.Fatalf("kids after reopening = %v, want %v", got, first)
	}
	second := newRing(t, opts(db, clk))
	if got := second.KIDs(); !slices.Equal(got, first) {
		t.Fatalf("kids of a second ring on the open store = %v, want %v", got, first)
	}
	if len(records(t, db)) != 2 {
		t.Fatalf("store has %d records, want 2", len(records(t, db)))
	}
}

func TestConcurrentNewMakesOneKeyPerAlg(t *testing.T) {
	for round := range 3 {
		clk := newClock()
		db := openStore(t, t.TempDir(), clk)
		const n = 6
		kids := make([][]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				r, err := New(context.Background(), opts(db, clk))
				if err == nil {
					kids[i] = r.KIDs()
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("round %d: New %d: %v", round, i, errs[i])
			}
			if !slices.Equal(kids[i], kids[0]) {
				t.Fatalf("round %d: ring %d has kids %v, ring 0 %v", round, i, kids[i], kids[0])
			}
		}
		if recs := records(t, db); len(recs) != 2 || byAlg(recs)[RS256] != 1 {
			t.Fatalf("round %d: store has %v, want one key per alg", round, byAlg(recs))
		}
	}
}

// rendezvousStore makes concurrent UpdateKeys transactions meet after they
// have read the records and before they write, as far as its callers let
// them: Badger does not see such transactions conflict when both inserted
// new keys into an empty set.
type rendezvousStore struct {
	store.Store
	gate chan struct{}
}

func (s *rendezvousStore) UpdateKeys(ctx context.Context, fn func([]*store.KeyRecord) ([]*store.KeyRecord, error)) error {
	return s.Store.UpdateKeys(ctx, func(cur []*store.KeyRecord) ([]*store.KeyRecord, error) {
		select {
		case s.gate <- struct{}{}:
		case <-s.gate:
		case <-time.After(300 * time.Millisecond):
		}
		return fn(cur)
	})
}

func TestConcurrentNewWithOverlappingTransactions(t *testing.T) {
	clk := newClock()
	db := openStore(t, t.TempDir(), clk)
	rs := &rendezvousStore{Store: db, gate: make(chan struct{})}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if _, err := New(context.Background(), opts(rs, clk)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := byAlg(records(t, db)); n[RS256] != 1 || n[ES256] != 1 {
		t.Fatalf("store has %v, want one key per alg", n)
	}
}

func TestJWKS(t *testing.T) {
	clk := newClock()
	db := openStore(t, t.TempDir(), clk)
	r := newRing(t, opts(db, clk))
	raw := r.JWKS()
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("JWKS is not JSON: %v", err)
	}
	if len(doc.Keys) != 2 {
		t.Fatalf("JWKS has %d keys, want 2: %s", len(doc.Keys), raw)
	}
	for _, k := range doc.Keys {
		for _, f := range []string{"kid", "kty", "alg", "use"} {
			if _, ok := k[f].(string); !ok {
				t.Errorf("key %v lacks %s", k, f)
			}
		}
		if k["use"] != "sig" {
			t.Errorf("use = %v", k["use"])
		}
		for _, f := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := k[f]; ok {
				t.Errorf("key %s publishes private member %q", k["kid"], f)
			}
			if strings.Contains(string(raw), `"`+f+`":`) {
				t.Errorf("JWKS bytes contain %q", f)
			}
		}
	}
	set, err := jwk.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	for i := range set.Len() {
		k, _ := set.Key(i)
		if priv, err := jwk.IsPrivateKey(k); err != nil || priv {
			t.Errorf("key %d is private (%v)", i, err)
		}
		kid, _ := k.KeyID()
		pk, ok := r.PublicKey(kid)
		if !ok || !jwk.Equal(pk, k) {
			t.Errorf("PublicKey(%s) = %v, %v", kid, pk, ok)
		}
	}
	if _, ok := r.PublicKey("nope"); ok {
		t.Error("PublicKey of an unknown kid succeeded")
	}
	other := newRing(t, opts(db, clk))
	if string(other.JWKS()) != string(raw) || string(r.JWKS()) != string(raw) {
		t.Error("JWKS is not deterministic")
	}
}

func TestOptionsValidation(t *testing.T) {
	clk := newClock()
	db := openStore(t, t.TempDir(), clk)
	for name, o := range map[string]Options{
		"no store":        {Retain: time.Hour},
		"no retain":       {Store: db},
		"negative period": {Store: db, Retain: time.Hour, RotationPeriod: -time.Hour},
		"bad file alg":    {Store: db, Retain: time.Hour, Files: map[string]string{"HS256": "/dev/null"}},
	} {
		if _, err := New(context.Background(), o); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	if len(records(t, db)) != 0 {
		t.Error("a failed New wrote key records")
	}
}

// The key ring's store view is satisfied by the Badger store.
var _ Storage = (*store.DB)(nil)
