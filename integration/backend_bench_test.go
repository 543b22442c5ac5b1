package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/smartcaddy/smartauth/store"
)

// benchClients is how many backend clients share the load.
const benchClients = 4

// benchParallelism multiplies GOMAXPROCS into the number of concurrent
// HTTP clients (b.SetParallelism).
const benchParallelism = 16

// startBenchSite runs a server with benchClients backend clients
// ("bench-0", …) registered with the keys' JWK Set and one symmetric
// backend client ("bench-secret") allowed to use its secret.
func startBenchSite(b *testing.B, keys backendKeys, storage string) (tokenURL string) {
	b.Helper()
	port := freePortTB(b)
	b.Setenv("SMARTAUTH_BENCH_SECRET", benchSecret)
	cf := globalOptions + fmt.Sprintf(`
http://localhost:%d {
	smart_auth {
		issuer http://localhost:%d/auth
		fhir_base http://localhost:%d/fhir
		storage %s
%s
		client bench-secret {
			secret {env.SMARTAUTH_BENCH_SECRET}
			grant_types client_credentials
			allow_secret_for_client_credentials
			scopes system/*.rs
		}
	}
}
`, port, port, port, storage, benchClientsBlock(b, keys))
	js, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(caddyfile.Format([]byte(cf)), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		b.Fatal(err)
	}
	if err := caddy.Load(js, true); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = caddy.Stop() })
	return fmt.Sprintf("http://localhost:%d/auth/token", port)
}

// benchSecret is the symmetric benchmark client's secret: 256 random bits,
// as a server would issue.
var benchSecret = store.NewSecret()

// freePortTB returns a TCP port free on the loopback interface.
func freePortTB(b *testing.B) int {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// BenchmarkClientCredentials measures the client_credentials grant over
// loopback HTTP through a real Caddy, with many concurrent clients, on
// each store (store=badger, store=postgres), and in the same run the bare
// cryptographic cost of one grant (verifying the assertion with jwx +
// signing an ES256 access token), run on every core. It reports tokens/s,
// the 99th percentile of the request latency under that load, the
// crypto-only bound in grants/s and their ratio. Assertions are signed
// before the timer starts: signing is the client's cost, not the server's.
//
//	go test -run '^$' -bench ClientCredentials -benchtime 4000x -cpuprofile cpu.out .
func BenchmarkClientCredentials(b *testing.B) {
	keys := newBackendKeys(b)
	forEachStore(b, func(b *testing.B, storage string) {
		tokenURL := startBenchSite(b, keys, storage)
		for _, alg := range []string{"RS384", "ES384"} {
			b.Run(alg, func(b *testing.B) {
				forms := make([]string, b.N)
				for i := range forms {
					clientID := fmt.Sprintf("bench-%d", i%benchClients)
					forms[i] = ccForm(keys.assertion(b, alg, clientID, tokenURL, nil, nil), "system/Patient.rs").Encode()
				}
				cpu := startCPU(b, storage)
				lat := runTokenLoad(b, tokenURL, forms, nil)
				cpu.report(b, b.N)
				tps := float64(b.N) / b.Elapsed().Seconds()
				bound := cryptoBound(b, keys, alg, tokenURL)
				b.ReportMetric(tps, "tokens/s")
				b.ReportMetric(lat.p99ms(), "p99_ms")
				b.ReportMetric(bound, "crypto-bound/s")
				b.ReportMetric(tps/bound, "ratio")
			})
		}
		b.Run("client_secret_basic", func(b *testing.B) {
			forms := make([]string, b.N)
			form := url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Patient.rs"}}.Encode()
			for i := range forms {
				forms[i] = form
			}
			cpu := startCPU(b, storage)
			lat := runTokenLoad(b, tokenURL, forms, func(r *http.Request) { r.SetBasicAuth("bench-secret", benchSecret) })
			cpu.report(b, b.N)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
			b.ReportMetric(lat.p99ms(), "p99_ms")
		})
	})
}

// latencies are the durations of a benchmark's requests.
type latencies []time.Duration

// p99ms is the 99th percentile in milliseconds (sorting the slice).
func (l latencies) p99ms() float64 {
	if len(l) == 0 {
		return 0
	}
	slices.Sort(l)
	return float64(l[int(float64(len(l)-1)*0.99)]) / float64(time.Millisecond)
}

// runTokenLoad posts every form once from benchParallelism×GOMAXPROCS
// goroutines over keep-alive connections, fails on any non-200 and
// returns each request's latency.
func runTokenLoad(b *testing.B, tokenURL string, forms []string, edit func(*http.Request)) latencies {
	b.Helper()
	return runTokenLoadOn(b, []string{tokenURL}, forms, edit)
}

// runTokenLoadOn is runTokenLoad spreading the requests over several
// token endpoints (instances), form i to tokenURLs[i mod n].
func runTokenLoadOn(b *testing.B, tokenURLs []string, forms []string, edit func(*http.Request)) latencies {
	b.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var next atomic.Int64
	var failed atomic.Value
	lat := make(latencies, len(forms))
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			req, _ := http.NewRequest(http.MethodPost, tokenURLs[int(i)%len(tokenURLs)], strings.NewReader(forms[i]))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if edit != nil {
				edit(req)
			}
			t0 := time.Now()
			resp, err := hc.Do(req)
			if err != nil {
				failed.Store(err.Error())
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			lat[i] = time.Since(t0)
			if resp.StatusCode != http.StatusOK {
				failed.Store(fmt.Sprintf("%d %s", resp.StatusCode, body))
			}
		}
	})
	b.StopTimer()
	if f := failed.Load(); f != nil {
		b.Fatalf("a token request failed: %v", f)
	}
	return lat
}

// cryptoBound measures the grants per second the cryptography alone
// allows on this machine: every core verifying an assertion (jwx, as the
// server does) and signing an ES256 access token, with nothing else.
func cryptoBound(b *testing.B, keys backendKeys, alg, tokenURL string) float64 {
	b.Helper()
	assertion := []byte(keys.assertion(b, alg, "bench-0", tokenURL, nil, nil))
	var pub any = &keys.rsa.PublicKey
	ja := jwa.RS384()
	if alg == "ES384" {
		pub, ja = &keys.ec.PublicKey, jwa.ES384()
	}
	signer, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	one := func() error {
		if _, err := jwt.Parse(assertion, jwt.WithKey(ja, pub), jwt.WithIssuer("bench-0"), jwt.WithAudience(tokenURL)); err != nil {
			return err
		}
		tok := jwt.New()
		_ = tok.Set(jwt.SubjectKey, "bench-0")
		_ = tok.Set(jwt.ExpirationKey, time.Now().Add(5*time.Minute))
		_ = tok.Set("scope", "system/Patient.rs")
		_, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), signer))
		return err
	}
	// Enough work for a stable rate: about as many grants as the HTTP run.
	n := max(b.N, 500)
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	var next atomic.Int64
	var failed atomic.Value
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if err := one(); err != nil {
					failed.Store(err.Error())
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if f := failed.Load(); f != nil {
		b.Fatalf("crypto-only grant: %v", f)
	}
	return float64(n) / elapsed.Seconds()
}

// BenchmarkClientSecretVerify is the cost of checking a server-issued
// client secret against its stored hash (store.HashSecret's HMAC-SHA-256).
func BenchmarkClientSecretVerify(b *testing.B) {
	hash := store.HashSecret(benchSecret)
	for b.Loop() {
		if !store.VerifySecret(hash, benchSecret) {
			b.Fatal("secret refused")
		}
	}
}
