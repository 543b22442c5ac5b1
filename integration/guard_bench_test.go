package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/store"
)

// benchConcurrency is the number of keep-alive client connections of the
// load generator.
const benchConcurrency = 16

// benchSites runs, in one Caddy, the same upstream behind (a) a plain
// reverse_proxy and (b) smart_auth + reverse_proxy, and returns the two
// base URLs with the token signer of (b); storage is the argument of (b)'s
// storage directive.
func benchSites(b *testing.B, storage string) (plain, guarded string, signer *tokenSigner) {
	b.Helper()
	upHost := benchUpstream(b)
	signer = newTokenSigner(b)
	pa, pb := benchPort(b), benchPort(b)
	plain, guarded = fmt.Sprintf("http://localhost:%d", pa), fmt.Sprintf("http://localhost:%d", pb)
	signer.issuer, signer.aud = guarded+"/auth", guarded+"/fhir"
	cf := globalOptions + fmt.Sprintf(`
http://localhost:%d {
	reverse_proxy /fhir/* %s
}
http://localhost:%d {
	smart_auth {
		issuer %s/auth
		fhir_base %s/fhir
		storage %s
		signing_key ES256 %s
		client app {
			redirect_uri https://app.example.org/cb
		}
		user alice {
			password_hash %s
			patients p1
		}
	}
	reverse_proxy /fhir/* %s
}
`, pa, upHost, pb, guarded, guarded, storage, signer.pemPath, testHash, upHost)
	js, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(caddyfile.Format([]byte(cf)), nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := caddy.Load(js, true); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = caddy.Stop() })
	return plain, guarded, signer
}

// benchUpstream starts the benchmarks' FHIR server, answering every
// request with an empty search Bundle, and returns its host:port.
func benchUpstream(b *testing.B) string {
	body := []byte(`{"resourceType":"Bundle","type":"searchset","total":0}`)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		_, _ = w.Write(body)
	}))
	b.Cleanup(up.Close)
	return strings.TrimPrefix(up.URL, "http://")
}

// benchClientsBlock is the Caddyfile lines of benchClients backend
// clients ("bench-0", …) registered with the keys' JWK Set.
func benchClientsBlock(b *testing.B, keys backendKeys) string {
	var clients strings.Builder
	for i := range benchClients {
		fmt.Fprintf(&clients, "\t\tclient bench-%d {\n\t\t\tjwks `%s`\n\t\t\tscopes system/*.rs\n\t\t}\n", i, keys.jwks(b))
	}
	return clients.String()
}

// benchPort returns a free loopback port.
func benchPort(b *testing.B) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// loadResult is one configuration's measurement.
type loadResult struct {
	requests  int
	elapsed   time.Duration
	latencies []time.Duration
}

func (r *loadResult) rps() float64 { return float64(r.requests) / r.elapsed.Seconds() }

func (r *loadResult) pct(p float64) time.Duration {
	slices.Sort(r.latencies)
	return r.latencies[int(float64(len(r.latencies)-1)*p)]
}

// runLoad sends n GETs to url from conc keep-alive clients and adds the
// timings to res.
func runLoad(b *testing.B, hc *http.Client, url, token string, n, conc int, res *loadResult) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	per := max(n/conc, 1)
	start := time.Now()
	for range conc {
		wg.Go(func() {
			lat := make([]time.Duration, 0, per)
			req, _ := http.NewRequest("GET", url, nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			for range per {
				t0 := time.Now()
				resp, err := hc.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("%s: %d", url, resp.StatusCode)
					return
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			res.latencies = append(res.latencies, lat...)
			mu.Unlock()
		})
	}
	wg.Wait()
	res.elapsed += time.Since(start)
	res.requests += per * conc
}

// BenchmarkGuardVsPlainProxy measures, in one run and on each store, (a) reverse_proxy and
// (b) smart_auth + reverse_proxy in front of the same upstream, with one
// token reused across requests as apps do (a patient/ search, which the
// guard also rewrites with the patient parameter). Throughput: b.N
// requests per configuration from benchConcurrency keep-alive clients, in
// alternating rounds so that both see the same background load. Latency:
// b.N/4 requests per configuration from one client at a time, so that the
// percentiles are service times rather than queueing.
//
//	go test -run '^$' -bench BenchmarkGuardVsPlainProxy -benchtime 40000x .
func BenchmarkGuardVsPlainProxy(b *testing.B) {
	forEachStore(b, benchGuardVsPlainProxy)
}

// benchGuardVsPlainProxy is BenchmarkGuardVsPlainProxy on one store.
func benchGuardVsPlainProxy(b *testing.B, storage string) {
	plain, guarded, signer := benchSites(b, storage)
	token := signer.mint(b, tokenSpec{scope: "patient/*.rs", patient: "p1"})
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchConcurrency, MaxConnsPerHost: benchConcurrency}}
	path := "/fhir/Observation?code=1234"
	// Warm up both (connections, the token cache).
	runLoad(b, hc, plain+path, token, 4*benchConcurrency, benchConcurrency, &loadResult{})
	runLoad(b, hc, guarded+path, token, 4*benchConcurrency, benchConcurrency, &loadResult{})
	const rounds = 20
	var a, g, la, lg loadResult
	cpu := startCPU(b, storage)
	b.ResetTimer()
	for i := range rounds {
		if i%2 == 0 {
			runLoad(b, hc, plain+path, token, b.N/rounds, benchConcurrency, &a)
			runLoad(b, hc, guarded+path, token, b.N/rounds, benchConcurrency, &g)
		} else {
			runLoad(b, hc, guarded+path, token, b.N/rounds, benchConcurrency, &g)
			runLoad(b, hc, plain+path, token, b.N/rounds, benchConcurrency, &a)
		}
		runLoad(b, hc, plain+path, token, b.N/rounds/4, 1, &la)
		runLoad(b, hc, guarded+path, token, b.N/rounds/4, 1, &lg)
	}
	b.StopTimer()
	// CPU per request, plain and guarded alike: the store's server
	// should use next to none on this path.
	cpu.report(b, a.requests+g.requests+la.requests+lg.requests)
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	b.ReportMetric(a.rps(), "a_req/s")
	b.ReportMetric(g.rps(), "b_req/s")
	b.ReportMetric(g.rps()/a.rps(), "b/a")
	b.ReportMetric(us(a.pct(0.99)), "a_p99_µs_c16")
	b.ReportMetric(us(g.pct(0.99)), "b_p99_µs_c16")
	b.ReportMetric(us(la.pct(0.5)), "a_p50_µs")
	b.ReportMetric(us(la.pct(0.99)), "a_p99_µs")
	b.ReportMetric(us(lg.pct(0.5)), "b_p50_µs")
	b.ReportMetric(us(lg.pct(0.99)), "b_p99_µs")
	b.ReportMetric(us(lg.pct(0.5)-la.pct(0.5)), "added_p50_µs")
	b.ReportMetric(us(lg.pct(0.99)-la.pct(0.99)), "added_p99_µs")
}

// BenchmarkGuardTokenFirstUse compares, on each store, in one run and one client at a
// time, a request with a token the guard has not seen (signature check and
// claims, then cached) with a request reusing a cached token, and the bare
// keys.Ring.Verify of such a token.
//
//	go test -run '^$' -bench BenchmarkGuardTokenFirstUse -benchtime 2000x .
func BenchmarkGuardTokenFirstUse(b *testing.B) {
	forEachStore(b, benchGuardTokenFirstUse)
}

// benchGuardTokenFirstUse is BenchmarkGuardTokenFirstUse on one store.
func benchGuardTokenFirstUse(b *testing.B, storage string) {
	_, guarded, signer := benchSites(b, storage)
	tokens := make([]string, b.N)
	for i := range tokens {
		tokens[i] = signer.mint(b, tokenSpec{scope: "patient/*.rs", patient: "p1"})
	}
	ring := benchRing(b, signer)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	url := guarded + "/fhir/Observation?code=1234"
	get := func(tok string) time.Duration {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		t0 := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
		return time.Since(t0)
	}
	get(signer.mint(b, tokenSpec{scope: "patient/*.rs", patient: "p1"}))
	cachedTok := tokens[0]
	get(cachedTok)
	var miss, hit, verify time.Duration
	b.ResetTimer()
	for i := 1; i < b.N; i++ {
		miss += get(tokens[i])
		hit += get(cachedTok)
		t0 := time.Now()
		if _, err := ring.Verify(context.Background(), []byte(tokens[i])); err != nil {
			b.Fatal(err)
		}
		verify += time.Since(t0)
	}
	b.StopTimer()
	n := float64(max(b.N-1, 1)) * float64(time.Microsecond)
	b.ReportMetric(float64(miss)/n, "first_use_µs")
	b.ReportMetric(float64(hit)/n, "cached_µs")
	b.ReportMetric(float64(miss-hit)/n, "miss_extra_µs")
	b.ReportMetric(float64(verify)/n, "ring_verify_µs")
}

// benchRing is a key ring over its own store holding the signer's key.
func benchRing(b *testing.B, signer *tokenSigner) *keys.Ring {
	b.Helper()
	dir := b.TempDir()
	db, err := store.Acquire(dir, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = store.Release(dir) })
	ring, err := keys.New(context.Background(), keys.Options{Store: db, Retain: time.Hour, Files: map[string]string{"ES256": signer.pemPath}})
	if err != nil {
		b.Fatal(err)
	}
	return ring
}
