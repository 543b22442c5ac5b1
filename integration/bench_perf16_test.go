package integration

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// runTokens sends one GET per token to url from conc keep-alive clients,
// each request with the next token, requires status want and returns the
// wall time and this process's CPU time spent (load generator, Caddy and
// upstream alike: the same for every configuration measured).
func runTokens(b *testing.B, hc *http.Client, url string, tokens []string, conc, want int) (wall, cpu time.Duration) {
	var next atomic.Int64
	var wg sync.WaitGroup
	c0, t0 := selfCPU(), time.Now()
	for range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(tokens) {
					return
				}
				req, _ := http.NewRequest("GET", url, nil)
				req.Header.Set("Authorization", "Bearer "+tokens[i])
				resp, err := hc.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					b.Errorf("%s: %d, want %d", url, resp.StatusCode, want)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(t0), selfCPU() - c0
}

// rate accumulates one configuration's requests, wall and CPU time.
type rate struct {
	n         int
	wall, cpu time.Duration
}

// add records one round.
func (r *rate) add(n int, wall, cpu time.Duration) {
	r.n, r.wall, r.cpu = r.n+n, r.wall+wall, r.cpu+cpu
}

// rps is requests per second; cpuUS the CPU microseconds per request.
func (r *rate) rps() float64 { return float64(r.n) / r.wall.Seconds() }
func (r *rate) cpuUS() float64 {
	return float64(r.cpu) / float64(time.Microsecond) / float64(max(r.n, 1))
}

// BenchmarkGuardNewTokens measures, on each store, plain reverse_proxy
// (a) against smart_auth + reverse_proxy (b) when every request carries a
// token the guard has not seen (a signature check per request): b.N
// requests per configuration from benchConcurrency keep-alive clients, in
// alternating rounds. It reports the throughputs, their ratio and the
// process CPU per request of each.
//
//	go test -run '^$' -bench 'BenchmarkGuardNewTokens/store=badger' -benchtime 8000x .
func BenchmarkGuardNewTokens(b *testing.B) {
	forEachStore(b, func(b *testing.B, storage string) {
		plain, guarded, signer := benchSites(b, storage)
		tokens := make([]string, b.N)
		for i := range tokens {
			tokens[i] = signer.mint(b, tokenSpec{scope: "patient/*.rs", patient: "p1"})
		}
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchConcurrency, MaxConnsPerHost: benchConcurrency}}
		path := "/fhir/Observation?code=1234"
		warm := []string{signer.mint(b, tokenSpec{scope: "patient/*.rs", patient: "p1"})}
		runTokens(b, hc, plain+path, warm, 1, 200)
		runTokens(b, hc, guarded+path, warm, 1, 200)
		const rounds = 10
		per := max(b.N/rounds, 1)
		var a, g rate
		b.ResetTimer()
		for i := range rounds {
			chunk := tokens[min(i*per, len(tokens)):min((i+1)*per, len(tokens))]
			pa := func() { w, c := runTokens(b, hc, plain+path, chunk, benchConcurrency, 200); a.add(len(chunk), w, c) }
			pg := func() { w, c := runTokens(b, hc, guarded+path, chunk, benchConcurrency, 200); g.add(len(chunk), w, c) }
			if i%2 == 0 {
				pa()
				pg()
			} else {
				pg()
				pa()
			}
		}
		b.StopTimer()
		b.ReportMetric(a.rps(), "a_req/s")
		b.ReportMetric(g.rps(), "b_req/s")
		b.ReportMetric(g.rps()/a.rps(), "b/a")
		b.ReportMetric(a.cpuUS(), "a_cpu_µs/req")
		b.ReportMetric(g.cpuUS(), "b_cpu_µs/req")
		b.ReportMetric(g.cpuUS()-a.cpuUS(), "added_cpu_µs/req")
	})
}

// BenchmarkGuardInvalidFlood measures, on each store, how fast the guard
// refuses (401) floods of invalid tokens, each request with another token
// unless the kind says "repeated": an unknown kid, an alg that is not the
// key's, expired, the wrong iss, the wrong aud (all readable before the
// signature), a bad signature (one signature check each), the same bad
// token again and again (the negative cache), against plain
// reverse_proxy's 200s in the same run.
//
//	go test -run '^$' -bench 'BenchmarkGuardInvalidFlood/store=badger' -benchtime 4000x .
func BenchmarkGuardInvalidFlood(b *testing.B) {
	forEachStore(b, func(b *testing.B, storage string) {
		plain, guarded, signer := benchSites(b, storage)
		stranger := newTokenSigner(b)
		stranger.issuer, stranger.aud = signer.issuer, signer.aud
		spec := tokenSpec{scope: "patient/*.rs", patient: "p1"}
		flip := func(tok string) string {
			i := strings.LastIndexByte(tok, '.') + 5
			c := byte('A')
			if tok[i] == 'A' {
				c = 'B'
			}
			return tok[:i] + string(c) + tok[i+1:]
		}
		kinds := []struct {
			name string
			make func() string
		}{
			{"unknown_kid", func() string { return stranger.mint(b, spec) }},
			{"wrong_alg", func() string {
				tok := signer.mint(b, spec)
				h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"` + signer.kid + `","typ":"at+jwt"}`))
				return h + tok[strings.IndexByte(tok, '.'):]
			}},
			{"expired", func() string {
				s := spec
				s.iat, s.exp = time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
				return signer.mint(b, s)
			}},
			{"wrong_iss", func() string { s := spec; s.iss = "https://elsewhere.example/auth"; return signer.mint(b, s) }},
			{"wrong_aud", func() string { s := spec; s.aud = "https://elsewhere.example/fhir"; return signer.mint(b, s) }},
			{"bad_signature", func() string { return flip(signer.mint(b, spec)) }},
		}
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchConcurrency, MaxConnsPerHost: benchConcurrency}}
		path := "/fhir/Observation?code=1234"
		good := make([]string, b.N)
		valid := signer.mint(b, spec)
		for i := range good {
			good[i] = valid
		}
		sets := make([][]string, len(kinds))
		for k, kind := range kinds {
			sets[k] = make([]string, b.N)
			for i := range sets[k] {
				sets[k][i] = kind.make()
			}
		}
		repeated := make([]string, b.N)
		bad := flip(valid)
		for i := range repeated {
			repeated[i] = bad
		}
		b.ResetTimer()
		var plainRate rate
		w, c := runTokens(b, hc, plain+path, good, benchConcurrency, 200)
		plainRate.add(len(good), w, c)
		for k, kind := range kinds {
			var r rate
			w, c := runTokens(b, hc, guarded+path, sets[k], benchConcurrency, 401)
			r.add(b.N, w, c)
			b.ReportMetric(r.rps(), kind.name+"_refusals/s")
			b.ReportMetric(r.cpuUS(), kind.name+"_cpu_µs")
		}
		var r rate
		w, c = runTokens(b, hc, guarded+path, repeated, benchConcurrency, 401)
		r.add(b.N, w, c)
		b.ReportMetric(r.rps(), "bad_signature_repeated_refusals/s")
		b.ReportMetric(r.cpuUS(), "bad_signature_repeated_cpu_µs")
		b.StopTimer()
		b.ReportMetric(plainRate.rps(), "plain_proxy_req/s")
		b.ReportMetric(plainRate.cpuUS(), "plain_proxy_cpu_µs")
	})
}

// BenchmarkGrantCryptoStdlib is the bare standard-library cost of the
// cryptography of one client_credentials grant, on every core: verifying
// an RS384 or ES384 assertion's signature and signing an ES256 access
// token, nothing else (no JSON, no JOSE). It is the limit the token
// endpoint's BenchmarkClientCredentials is compared with: the ratio of
// its grants/s to BenchmarkClientCredentials' tokens/s.
//
//	go test -run '^$' -bench BenchmarkGrantCryptoStdlib -benchtime 4000x .
func BenchmarkGrantCryptoStdlib(b *testing.B) {
	keys := newBackendKeys(b)
	signer, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	for _, alg := range []string{"RS384", "ES384"} {
		b.Run(alg, func(b *testing.B) {
			assertion := keys.assertion(b, alg, "bench-0", "https://auth.example.org/token", nil, nil)
			dot := strings.LastIndexByte(assertion, '.')
			input := []byte(assertion[:dot])
			sig, err := base64.RawURLEncoding.DecodeString(assertion[dot+1:])
			if err != nil {
				b.Fatal(err)
			}
			payload := make([]byte, 420) // the size of a backend access token's signing input
			one := func() error {
				h := sha512.Sum384(input)
				if alg == "RS384" {
					if err := rsa.VerifyPKCS1v15(&keys.rsa.PublicKey, crypto.SHA384, h[:], sig); err != nil {
						return err
					}
				} else if !ecdsa.Verify(&keys.ec.PublicKey, h[:], bigInt(sig[:48]), bigInt(sig[48:])) {
					return fmt.Errorf("ES384 signature refused")
				}
				d := sha256.Sum256(payload)
				_, err := ecdsa.SignASN1(rand.Reader, signer, d[:])
				return err
			}
			workers := runtime.GOMAXPROCS(0)
			var next atomic.Int64
			var wg sync.WaitGroup
			var failed atomic.Value
			b.ResetTimer()
			for range workers {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if err := one(); err != nil {
							failed.Store(err.Error())
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			if f := failed.Load(); f != nil {
				b.Fatal(f)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "grants/s")
		})
	}
}

// bigInt reads a big-endian unsigned integer.
func bigInt(b []byte) *big.Int { return new(big.Int).SetBytes(b) }
