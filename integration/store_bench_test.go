package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"golang.org/x/oauth2"

	"github.com/smartcaddy/smartauth/internal/pgtest"
)

// benchStore is one storage backend the benchmarks run on: its name and
// the argument of the Caddyfile's storage directive for a fresh, empty
// store.
type benchStore struct {
	name    string
	storage func(b *testing.B) string
}

// benchStores are the stores every store-dependent benchmark compares, in
// the order they run: a Badger directory and a PostgreSQL database from
// pgtest (the cluster TestMain started, or SMARTAUTH_TEST_PG), its
// keyword/value DSN quoted as one Caddyfile token.
var benchStores = []benchStore{
	{"badger", func(b *testing.B) string { return b.TempDir() }},
	{"postgres", func(b *testing.B) string { return "postgres `" + pgtest.DSN(b) + "`" }},
}

// forEachStore runs the benchmark body once per store as the sub-benchmark
// store=<name>, each time on a fresh store. With -count n the stores
// alternate: badger, postgres, badger, postgres, …
func forEachStore(b *testing.B, body func(b *testing.B, storage string)) {
	for _, s := range benchStores {
		b.Run("store="+s.name, func(b *testing.B) { body(b, s.storage(b)) })
	}
}

// startBenchCaddyfile adapts and runs a Caddyfile until the benchmark ends.
func startBenchCaddyfile(b *testing.B, cf string) {
	b.Helper()
	js, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(caddyfile.Format([]byte(cf)), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		b.Fatal(err)
	}
	if err := caddy.Load(js, true); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = caddy.Stop() })
}

// BenchmarkCodeExchangeRefresh measures, on each store, the token
// endpoint's two user-facing grants through a real Caddy with many
// concurrent clients: authorization_code redemption (PKCE, public client)
// and refresh_token rotation. Codes and the first refresh tokens come from
// the real flow (login and consent through the browser) before the timer
// starts; the refresh load is one rotation chain per client goroutine,
// each request spending the refresh token the previous one returned. It
// reports tokens/s and the 99th percentile latency under that load.
// Codes live a minute: keep -benchtime small enough that b.N flows take
// less.
//
//	go test -run '^$' -bench CodeExchangeRefresh -benchtime 1000x .
func BenchmarkCodeExchangeRefresh(b *testing.B) {
	forEachStore(b, func(b *testing.B, storage string) {
		s := newFlowSite(b, "")
		s.storage = storage
		startBenchCaddyfile(b, s.caddyfile())
		tokenURL := s.issuer() + "/token"
		cfg := s.oauth("public-app", "", "launch/patient", "patient/*.rs", "offline_access")
		codeForm := func(br *browser) string { return benchCodeForm(br, cfg, s.fhirBase()) }
		b.Run("authorization_code", func(b *testing.B) {
			br := newBrowser(b)
			forms := make([]string, b.N)
			for i := range forms {
				forms[i] = codeForm(br)
			}
			cpu := startCPU(b, storage)
			lat := runTokenLoad(b, tokenURL, forms, nil)
			cpu.report(b, b.N)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
			b.ReportMetric(lat.p99ms(), "p99_ms")
		})
		b.Run("refresh_token", func(b *testing.B) {
			br := newBrowser(b)
			chains := make([]string, benchParallelism*runtime.GOMAXPROCS(0))
			for i := range chains {
				chains[i] = postToken(b, http.DefaultClient, tokenURL, codeForm(br))
			}
			cpu := startCPU(b, storage)
			lat := runRefreshLoad(b, tokenURL, chains)
			cpu.report(b, b.N)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
			b.ReportMetric(lat.p99ms(), "p99_ms")
		})
	})
}

// benchCodeForm runs the flow of cfg (the flow site's public-app) in br
// and returns the form redeeming its code.
func benchCodeForm(br *browser, cfg *oauth2.Config, fhirBase string) string {
	verifier := oauth2.GenerateVerifier()
	q := br.run(cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", fhirBase)), cfg.RedirectURL)
	return url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {cfg.RedirectURL},
		"client_id": {"public-app"}, "code_verifier": {verifier}}.Encode()
}

// postToken posts a form to the token endpoint and returns the refresh
// token of the answer; anything else fails the benchmark.
func postToken(b *testing.B, hc *http.Client, tokenURL, form string) string {
	rt, err := tryPostToken(hc, tokenURL, form)
	if err != nil {
		b.Fatal(err)
	}
	return rt
}

// tryPostToken posts a form to the token endpoint and returns the refresh
// token of a 200 answer that has one.
func tryPostToken(hc *http.Client, tokenURL, form string) (string, error) {
	resp, err := hc.Post(tokenURL, "application/x-www-form-urlencoded", strings.NewReader(form))
	if err != nil {
		return "", err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var m struct {
		RefreshToken string `json:"refresh_token"`
		Error        string `json:"error"`
	}
	_ = json.Unmarshal(body, &m)
	if resp.StatusCode != http.StatusOK || m.RefreshToken == "" {
		return "", fmt.Errorf("token endpoint: %d %s", resp.StatusCode, m.Error)
	}
	return m.RefreshToken, nil
}

// runRefreshLoad makes b.N refresh_token requests from one goroutine per
// chain (benchParallelism×GOMAXPROCS of them), each rotating its own
// refresh token, and returns each request's latency.
func runRefreshLoad(b *testing.B, tokenURL string, chains []string) latencies {
	b.Helper()
	return runRefreshLoadOn(b, []string{tokenURL}, chains)
}

// runRefreshLoadOn is runRefreshLoad spreading the requests over several
// token endpoints (instances), request i to tokenURLs[i mod n]: a chain's
// successive rotations land on different instances.
func runRefreshLoadOn(b *testing.B, tokenURLs []string, chains []string) latencies {
	b.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var worker, next atomic.Int64
	var failed atomic.Value
	lat := make(latencies, b.N)
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rt := chains[worker.Add(1)-1]
		for pb.Next() {
			i := next.Add(1) - 1
			form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"public-app"}}.Encode()
			t0 := time.Now()
			nextRT, err := tryPostToken(hc, tokenURLs[int(i)%len(tokenURLs)], form)
			lat[i] = time.Since(t0)
			if err != nil {
				failed.Store(err.Error())
				return
			}
			rt = nextRT
		}
	})
	b.StopTimer()
	if f := failed.Load(); f != nil {
		b.Fatalf("a refresh failed: %v", f)
	}
	return lat
}
