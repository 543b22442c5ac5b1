package accesstoken_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/smartcaddy/smartauth/handlers/accesstoken"
	"github.com/smartcaddy/smartauth/handlers/clients"
	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/store"
)

const benchTokenURL = "https://auth.example.org/smart/token"

// grantBench is a client registry with one backend client holding an RSA
// and a P-384 key, and the access-token profile, over one real Badger
// store, with client assertions signed ahead.
type grantBench struct {
	reg  *clients.Registry
	p    *accesstoken.Profile
	db   *store.DB
	rsa  *rsa.PrivateKey
	ec   *ecdsa.PrivateKey
	sign *ecdsa.PrivateKey // a P-256 key for the bare ES256 signature
}

// newGrantBench builds the registry and profile.
func newGrantBench(b *testing.B) *grantBench {
	p, db, _ := newProfile(b, keys.ES256)
	g := &grantBench{p: p, db: db}
	var err error
	if g.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		b.Fatal(err)
	}
	if g.ec, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		b.Fatal(err)
	}
	if g.sign, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		b.Fatal(err)
	}
	set := jwk.NewSet()
	for kid, pub := range map[string]any{"rs1": &g.rsa.PublicKey, "ec1": &g.ec.PublicKey} {
		k, err := jwk.Import(pub)
		if err != nil {
			b.Fatal(err)
		}
		_ = k.Set(jwk.KeyIDKey, kid)
		_ = set.AddKey(k)
	}
	js, err := json.Marshal(set)
	if err != nil {
		b.Fatal(err)
	}
	c := &store.Client{ID: "svc", Type: store.ClientConfidentialAsymmetric, JWKS: js,
		GrantTypes: []string{"client_credentials"}, Scopes: []string{"system/*.rs"}}
	g.reg, err = clients.New(clients.Options{Issuer: testIssuer, TokenEndpoint: benchTokenURL,
		Configured: map[string]*store.Client{"svc": c}, Store: db})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = g.reg.Close() })
	return g
}

// assertions signs n client assertions with alg (RS384 or ES384).
func (g *grantBench) assertions(b *testing.B, alg string, n int) []string {
	out := make([]string, n)
	for i := range out {
		tok, err := jwt.NewBuilder().Issuer("svc").Subject("svc").Audience([]string{benchTokenURL}).
			IssuedAt(time.Now()).Expiration(time.Now().Add(4 * time.Minute)).JwtID(store.NewSecret()).Build()
		if err != nil {
			b.Fatal(err)
		}
		key, kid, ja := any(g.rsa), "rs1", jwa.RS384()
		if alg == "ES384" {
			key, kid, ja = g.ec, "ec1", jwa.ES384()
		}
		h := jws.NewHeaders()
		_ = h.Set(jws.KeyIDKey, kid)
		raw, err := jwt.Sign(tok, jwt.WithKey(ja, key, jws.WithProtectedHeaders(h)))
		if err != nil {
			b.Fatal(err)
		}
		out[i] = string(raw)
	}
	return out
}

// BenchmarkGrantCost compares, per assertion algorithm and in one run,
// the process CPU time of the server's work for a client_credentials
// grant — authenticating the client assertion (clients.Registry, which
// also records its jti in the store) and minting the access token
// (Profile.Mint, ES256) — with the bare standard-library work it
// contains: one RS384/ES384 verification and one ES256 signature. Both
// run from 16 goroutines (the jti writes are group-committed), in
// alternating rounds; the ratio grant/stdlib is the overhead factor (goal
// ≤ 1.15). The CPU of the jti write alone (store.DB.UseJTI, the same
// group-committed write) is measured too, and the ratio without it.
//
//	go test -run '^$' -bench BenchmarkGrantCost -benchtime 2000x ./handlers/accesstoken
func BenchmarkGrantCost(b *testing.B) {
	g := newGrantBench(b)
	for _, alg := range []string{"RS384", "ES384"} {
		b.Run(alg, func(b *testing.B) {
			forms := g.assertions(b, alg, b.N)
			bare := func(raw string) {
				dot := strings.LastIndexByte(raw, '.')
				s, err := base64.RawURLEncoding.DecodeString(raw[dot+1:])
				if err != nil {
					b.Error(err)
					return
				}
				h := sha512.Sum384([]byte(raw[:dot]))
				if alg == "RS384" {
					if err := rsa.VerifyPKCS1v15(&g.rsa.PublicKey, crypto.SHA384, h[:], s); err != nil {
						b.Error(err)
					}
				} else if !ecdsa.Verify(&g.ec.PublicKey, h[:], new(big.Int).SetBytes(s[:48]), new(big.Int).SetBytes(s[48:])) {
					b.Error("ES384 refused")
				}
				d := sha256.Sum256([]byte(raw[:min(dot, 400)]))
				if _, err := ecdsa.SignASN1(rand.Reader, g.sign, d[:]); err != nil {
					b.Error(err)
				}
			}
			// Authenticate reads the request's headers only (no Basic
			// credentials here): one request serves every grant.
			req := httptest.NewRequest("POST", benchTokenURL, nil)
			grant := func(raw string) {
				form := url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Patient.rs"},
					"client_assertion_type": {clients.AssertionTypeJWT}, "client_assertion": {raw}}
				c, f := g.reg.Authenticate(req, form)
				if f != nil {
					b.Error(f)
					return
				}
				if _, _, err := g.p.Mint(accesstoken.Grant{ClientID: c.ID, Scope: "system/Patient.rs"}); err != nil {
					b.Error(err)
				}
			}
			// The grant's one store write alone: a jti recorded (group
			// committed), as the assertion check does.
			jti := func(string) {
				if err := g.db.UseJTI(context.Background(), "svc", store.NewSecret(), time.Now().Add(5*time.Minute)); err != nil {
					b.Error(err)
				}
			}
			const rounds = 10
			var cpuGrant, cpuBare, cpuJTI time.Duration
			b.ResetTimer()
			for r := range rounds {
				chunk := forms[r*b.N/rounds : (r+1)*b.N/rounds]
				if r%2 == 0 {
					cpuBare += onAll(chunk, bare)
					cpuGrant += onAll(chunk, grant)
				} else {
					cpuGrant += onAll(chunk, grant)
					cpuBare += onAll(chunk, bare)
				}
				cpuJTI += onAll(chunk, jti)
			}
			b.StopTimer()
			n := float64(b.N) * float64(time.Microsecond)
			b.ReportMetric(float64(cpuGrant)/n, "grant_cpu_µs")
			b.ReportMetric(float64(cpuBare)/n, "stdlib_cpu_µs")
			b.ReportMetric(float64(cpuGrant)/float64(cpuBare), "grant/stdlib")
			b.ReportMetric(float64(cpuJTI)/n, "jti_write_cpu_µs")
			b.ReportMetric(float64(cpuGrant-cpuJTI)/float64(cpuBare), "grant_without_jti/stdlib")
		})
	}
}

// onAll runs f on every input from 16 goroutines and returns the process
// CPU time (user and system) it took.
func onAll(in []string, f func(string)) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	c0 := processCPU()
	for range 16 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(in)); i = next.Add(1) - 1 {
				f(in[i])
			}
		})
	}
	wg.Wait()
	return processCPU() - c0
}

// processCPU is this process's user and system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
