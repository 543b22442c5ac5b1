package handlers_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/smartcaddy/smartauth/handlers"
	"github.com/smartcaddy/smartauth/handlers/guard"
	"github.com/smartcaddy/smartauth/handlers/users"
	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/store"
)

// guardBench is a Server over a real Badger store and key ring, and a
// signer of its access tokens.
type guardBench struct {
	s    *handlers.Server
	ring *keys.Ring
}

func newGuardBench(b *testing.B, configure ...func(*handlers.Config)) *guardBench {
	b.Helper()
	db, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	ring, err := keys.New(context.Background(), keys.Options{Store: db, Retain: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	iss, _ := url.Parse("https://auth.example.org")
	fhir, _ := url.Parse("https://fhir.example.org/r4")
	cfg := handlers.Config{
		Issuer: iss, FHIRBase: fhir, Store: db, Keys: ring,
		Clients: map[string]*store.Client{"app": {ID: "app", Type: store.ClientPublic, RedirectURIs: []string{"https://app.example.org/cb"}}},
		Users:   map[string]*users.User{"alice": {Name: "alice", Patients: []string{"p1"}}},
		Guard:   guard.Options{Headers: []guard.HeaderRule{{Name: "X-Smart-Patient", Value: "{smart.patient}"}}},
	}
	for _, c := range configure {
		c(&cfg)
	}
	s, err := handlers.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return &guardBench{s: s, ring: ring}
}

// token signs an access token as the token endpoint does.
func (g *guardBench) token(b *testing.B) string {
	now := time.Now()
	tok, err := jwt.NewBuilder().Issuer("https://auth.example.org").Subject("alice").
		Audience([]string{"https://fhir.example.org/r4"}).IssuedAt(now).NotBefore(now).
		Expiration(now.Add(time.Hour)).JwtID(store.NewSecret()).
		Claim("client_id", "app").Claim("scope", "patient/*.rs").Claim("patient", "p1").Build()
	if err != nil {
		b.Fatal(err)
	}
	raw, err := g.ring.Sign(tok, keys.ES256, "at+jwt")
	if err != nil {
		b.Fatal(err)
	}
	return string(raw)
}

// serve runs one guarded search through the Server with a no-op next.
func (g *guardBench) serve(b *testing.B, token string) {
	req := httptest.NewRequest("GET", "https://fhir.example.org/r4/Observation?code=1234", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	repl := caddy.NewReplacer()
	req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, repl))
	w := httptest.NewRecorder()
	reached := false
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { reached = true; return nil })
	if err := g.s.ServeHTTP(w, req, next); err != nil || !reached {
		b.Fatalf("not allowed: %v %d %s", err, w.Code, w.Body)
	}
}

// BenchmarkGuardCachedToken is the guard's own cost for a request whose
// token was verified before (the common case): in-process, no HTTP.
func BenchmarkGuardCachedToken(b *testing.B) {
	g := newGuardBench(b)
	tok := g.token(b)
	g.serve(b, tok)
	b.ReportAllocs()
	for b.Loop() {
		g.serve(b, tok)
	}
}

// BenchmarkGuardFirstUse is the guard's cost for a token it has not seen:
// signature and claims check, revocation lookups, then the cache.
func BenchmarkGuardFirstUse(b *testing.B) {
	g := newGuardBench(b)
	tokens := make([]string, b.N)
	for i := range tokens {
		tokens[i] = g.token(b)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		g.serve(b, tokens[i])
	}
}

// BenchmarkRingVerify is the bare signature and claims check of the same
// tokens with keys.Ring.Verify, for comparison with BenchmarkGuardFirstUse.
func BenchmarkRingVerify(b *testing.B) {
	g := newGuardBench(b)
	tok := g.token(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.ring.Verify(context.Background(), []byte(tok)); err != nil {
			b.Fatal(err)
		}
	}
}
