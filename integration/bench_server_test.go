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
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The benchmarks of this file measure as issue 16 asks: Caddy runs as its
// own process (../cmd/caddy), the load generator and the FHIR upstream run
// in the test process, and the server's CPU time per request is read from
// /proc/<pid>/stat, so that neither the load generator's nor the
// upstream's work is counted. The limits they compare with (a standard
// library verify and sign) are measured in the same run, on this machine.

// serverSite is a Caddy process serving the benchmark's sites.
type serverSite struct {
	proc                  *caddyProcess
	plain, guarded, floor string // base URLs
	admin                 string // the admin endpoint (pprof)
	signer                *tokenSigner
	tokenURL              string
	secret                string
}

// startServerSite runs, in its own process, plain reverse_proxy, smart_auth
// + reverse_proxy (with backend clients using keys and one using a
// secret) and a floor site whose /floor answers any request with a fixed
// body as long as a token response, all in front of one upstream in the
// test process.
func startServerSite(b *testing.B, storage string, keys backendKeys) *serverSite {
	b.Helper()
	upHost := benchUpstream(b)
	s := &serverSite{signer: newTokenSigner(b), secret: benchSecret}
	pa, pb, pc, adm := benchPort(b), benchPort(b), benchPort(b), benchPort(b)
	s.plain = fmt.Sprintf("http://localhost:%d", pa)
	s.guarded = fmt.Sprintf("http://localhost:%d", pb)
	s.floor = fmt.Sprintf("http://localhost:%d", pc)
	s.admin = fmt.Sprintf("http://localhost:%d", adm)
	s.tokenURL = s.guarded + "/auth/token"
	s.signer.issuer, s.signer.aud = s.guarded+"/auth", s.guarded+"/fhir"
	// A token response's size, so that the floor writes as much.
	floorBody := strings.Repeat("x", 560)
	cf := fmt.Sprintf(`{
	admin localhost:%d
	persist_config off
	auto_https off
	log {
		output discard
	}
}
http://localhost:%d {
	reverse_proxy /fhir/* %s
}
http://localhost:%d {
	smart_auth {
		issuer %s/auth
		fhir_base %s/fhir
		storage %s
		signing_key ES256 %s
%s
		client bench-secret {
			secret {env.SMARTAUTH_BENCH_SECRET}
			grant_types client_credentials
			allow_secret_for_client_credentials
			scopes system/*.rs
		}
	}
	reverse_proxy /fhir/* %s
}
http://localhost:%d {
	respond /floor `+"`{\"access_token\":\"%s\"}`"+` 200
}
`, adm, pa, upHost, pb, s.guarded, s.guarded, storage, s.signer.pemPath, benchClientsBlock(b, keys), upHost, pc, floorBody)
	dir := b.TempDir()
	writeCaddyfile(b, filepath.Join(dir, "Caddyfile"), cf)
	s.proc = startCaddyProcess(b, filepath.Join(dir, "Caddyfile"), filepath.Join(dir, "caddy.log"),
		"SMARTAUTH_BENCH_SECRET="+benchSecret)
	s.proc.waitReady(s.guarded + "/auth/.well-known/smart-configuration")
	return s
}

// cpu is the server process's CPU time so far, in nanoseconds: the sum
// of its threads' run time from /proc/<pid>/task/*/schedstat (/proc/<pid>/stat
// counts in 10 ms ticks, too coarse for a round of a few thousand
// requests). Go seldom ends a thread, so none of the time goes missing.
func (s *serverSite) cpu(b *testing.B) time.Duration {
	b.Helper()
	pid := s.proc.cmd.Process.Pid
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		b.Fatalf("cannot read the server's threads from /proc: %v", err)
	}
	var sum time.Duration
	for _, t := range tasks {
		raw, err := os.ReadFile(t)
		if err != nil {
			continue // the thread ended
		}
		f := strings.Fields(string(raw))
		if len(f) == 0 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			b.Fatalf("%s: %q", t, raw)
		}
		sum += time.Duration(ns)
	}
	return sum
}

// backendToken returns a token spec the guard accepts for the benchmark's
// GET: client bench-secret's own (a backend service's) token.
func backendTokenSpec() tokenSpec {
	return tokenSpec{sub: "bench-secret", clientID: "bench-secret", scope: "system/Observation.rs"}
}

// issueTokens gets n access tokens from the server's token endpoint
// (client_credentials, client_secret_basic), from conc clients.
func (s *serverSite) issueTokens(b *testing.B, hc *http.Client, n, conc int) []string {
	b.Helper()
	out := make([]string, n)
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Observation.rs"}}.Encode()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				req, _ := http.NewRequest(http.MethodPost, s.tokenURL, strings.NewReader(form))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth("bench-secret", s.secret)
				resp, err := hc.Do(req)
				if err != nil {
					failed.Store(err.Error())
					return
				}
				var tr struct {
					AccessToken string `json:"access_token"`
				}
				err = json.NewDecoder(resp.Body).Decode(&tr)
				resp.Body.Close()
				if err != nil || tr.AccessToken == "" {
					failed.Store(fmt.Sprintf("token response %d: %v", resp.StatusCode, err))
					return
				}
				out[i] = tr.AccessToken
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f != nil {
		b.Fatal(f)
	}
	return out
}

// postForms posts each form once to url from conc keep-alive clients,
// requiring status want, and returns the wall time.
func postForms(b *testing.B, hc *http.Client, url string, forms []string, conc, want int) time.Duration {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	t0 := time.Now()
	for range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(forms) {
					return
				}
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(forms[i]))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				resp, err := hc.Do(req)
				if err != nil {
					failed.Store(err.Error())
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					failed.Store(fmt.Sprintf("%s: %d %s", url, resp.StatusCode, body))
					return
				}
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f != nil {
		b.Fatal(f)
	}
	return time.Since(t0)
}

// serverRate accumulates one configuration's requests, wall time and
// server CPU time.
type serverRate struct {
	n         int
	wall, cpu time.Duration
}

func (r *serverRate) rps() float64 { return float64(r.n) / r.wall.Seconds() }
func (r *serverRate) cpuUS() float64 {
	return float64(r.cpu) / float64(time.Microsecond) / float64(max(r.n, 1))
}

// measure runs one round of a configuration and adds its wall and server
// CPU time.
func (r *serverRate) measure(b *testing.B, s *serverSite, n int, run func() time.Duration) {
	c0 := s.cpu(b)
	wall := run()
	r.n, r.wall, r.cpu = r.n+n, r.wall+wall, r.cpu+s.cpu(b)-c0
}

// stdlibRate accumulates the CPU time of this process's calls of a
// standard-library operation on one goroutine: the cost of the operation
// itself, without contention. The benchmarks measure it in every round,
// between the load phases, so that it sees the machine as they do (a
// quiet reference measured once moves by ±20 % from run to run here).
type stdlibRate struct {
	n   int
	cpu time.Duration
}

// measure calls one n times and adds their CPU time.
func (r *stdlibRate) measure(n int, one func()) {
	one() // warm
	c0 := selfCPU()
	for range n {
		one()
	}
	r.n, r.cpu = r.n+n, r.cpu+selfCPU()-c0
}

// us is the CPU microseconds per call.
func (r *stdlibRate) us() float64 {
	return float64(r.cpu) / float64(time.Microsecond) / float64(max(r.n, 1))
}

// stdlibPerRound is how many standard-library calls a round measures.
const stdlibPerRound = 300

// profileServer starts a five-second CPU profile of the server process,
// written to $SMARTAUTH_BENCH_PROFILE/name.pprof, when that variable names
// a directory; the returned function waits for it. Start it when the
// measured load starts, with enough requests to last five seconds.
func profileServer(b *testing.B, s *serverSite, name string) (wait func()) {
	dir := os.Getenv("SMARTAUTH_BENCH_PROFILE")
	if dir == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Get(s.admin + "/debug/pprof/profile?seconds=5")
		if err != nil {
			b.Error(err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(filepath.Join(dir, name+".pprof"))
		if err != nil {
			b.Error(err)
			return
		}
		defer f.Close()
		_, _ = io.Copy(f, resp.Body)
	}()
	return func() { <-done }
}

// BenchmarkServerGuard measures the guard as issue 16 does (server CPU
// from /proc, the load generator in another process): per configuration,
// b.N GETs from benchConcurrency keep-alive clients, in alternating
// rounds: plain reverse_proxy; the guard with one token again and again
// (cached); with a new token on every request that another process
// signed with the server's key (cold: one signature check each); and with
// a new token on every request that this server's token endpoint issued
// just before (issued here). It reports each one's server CPU per request
// and throughput, the throughput ratios to plain reverse_proxy, and the
// first use's cost against the limit: cached + one standard-library
// ES256 verify, measured in the same run.
//
//	go test -run '^$' -bench 'BenchmarkServerGuard/store=badger' -benchtime 20000x .
func BenchmarkServerGuard(b *testing.B) {
	keys := newBackendKeys(b)
	forEachStore(b, func(b *testing.B, storage string) {
		s := startServerSite(b, storage, keys)
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchConcurrency, MaxConnsPerHost: benchConcurrency}}
		path := "/fhir/Observation?code=1234"
		spec := backendTokenSpec()
		cold := make([]string, b.N)
		for i := range cold {
			cold[i] = s.signer.mint(b, spec)
		}
		same := make([]string, b.N)
		one := s.signer.mint(b, spec)
		for i := range same {
			same[i] = one
		}
		runTokens(b, hc, s.plain+path, same[:min(100, len(same))], benchConcurrency, 200)
		runTokens(b, hc, s.guarded+path, same[:min(100, len(same))], benchConcurrency, 200)
		pub := &s.signer.key.PublicKey
		sample := s.signer.mint(b, spec)
		dot := strings.LastIndexByte(sample, '.')
		sig, _ := base64.RawURLEncoding.DecodeString(sample[dot+1:])
		es256Verify := func() {
			h := sha256.Sum256([]byte(sample[:dot]))
			if !ecdsa.Verify(pub, h[:], bigInt(sig[:32]), bigInt(sig[32:])) {
				b.Fatal("ES256 verify failed")
			}
		}
		const rounds = 10
		per := max(b.N/rounds, 1)
		var plain, cached, coldR, issued serverRate
		var verifyR stdlibRate
		wait := profileServer(b, s, "guard")
		b.ResetTimer()
		for i := range rounds {
			lo, hi := min(i*per, b.N), min((i+1)*per, b.N)
			b.StopTimer()
			fresh := s.issueTokens(b, hc, hi-lo, benchConcurrency)
			b.StartTimer()
			get := func(base string, toks []string) func() time.Duration {
				return func() time.Duration { w, _ := runTokens(b, hc, base+path, toks, benchConcurrency, 200); return w }
			}
			steps := []func(){
				func() { plain.measure(b, s, hi-lo, get(s.plain, same[lo:hi])) },
				func() { cached.measure(b, s, hi-lo, get(s.guarded, same[lo:hi])) },
				func() { coldR.measure(b, s, hi-lo, get(s.guarded, cold[lo:hi])) },
				func() { issued.measure(b, s, hi-lo, get(s.guarded, fresh)) },
				func() { verifyR.measure(stdlibPerRound, es256Verify) },
			}
			for j := range steps {
				steps[(i+j)%len(steps)]()
			}
		}
		b.StopTimer()
		wait()
		verify := verifyR.us()
		b.ReportMetric(plain.cpuUS(), "plain_cpu_µs")
		b.ReportMetric(cached.cpuUS(), "cached_cpu_µs")
		b.ReportMetric(coldR.cpuUS(), "cold_cpu_µs")
		b.ReportMetric(issued.cpuUS(), "issued_cpu_µs")
		b.ReportMetric(verify, "stdlib_es256_verify_µs")
		b.ReportMetric(coldR.cpuUS()/(cached.cpuUS()+verify), "cold/(cached+verify)")
		b.ReportMetric(issued.cpuUS()/(cached.cpuUS()+verify), "issued/(cached+verify)")
		b.ReportMetric(plain.rps(), "plain_req/s")
		b.ReportMetric(cached.rps()/plain.rps(), "cached/plain_tput")
		b.ReportMetric(coldR.rps()/plain.rps(), "cold/plain_tput")
		b.ReportMetric(issued.rps()/plain.rps(), "issued/plain_tput")
	})
}

// BenchmarkServerGrant measures the client_credentials grant with an
// RS384 or ES384 assertion as issue 16 does (server CPU from /proc, the
// load generator in another process), against, in the same run: the
// standard library's verify of that assertion + an ES256 sign (the
// limit), and the floor: the same POST answered by Caddy's respond with a
// body as long as a token response (what any handler behind Caddy's HTTP
// server costs). It reports CPU per grant, the ratio to the limit, and the
// ratio of the part above the floor to the limit.
//
//	go test -run '^$' -bench 'BenchmarkServerGrant/store=badger' -benchtime 20000x .
func BenchmarkServerGrant(b *testing.B) {
	keys := newBackendKeys(b)
	forEachStore(b, func(b *testing.B, storage string) {
		s := startServerSite(b, storage, keys)
		signer, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchConcurrency, MaxConnsPerHost: benchConcurrency}}
		for _, alg := range []string{"RS384", "ES384"} {
			b.Run(alg, func(b *testing.B) {
				forms := make([]string, b.N)
				for i := range forms {
					forms[i] = ccForm(keys.assertion(b, alg, fmt.Sprintf("bench-%d", i%benchClients), s.tokenURL, nil, nil), "system/Patient.rs").Encode()
				}
				warm := make([]string, 50)
				for i := range warm {
					warm[i] = ccForm(keys.assertion(b, alg, "bench-0", s.tokenURL, nil, nil), "system/Patient.rs").Encode()
				}
				postForms(b, hc, s.tokenURL, warm, benchConcurrency, 200)
				assertion := keys.assertion(b, alg, "bench-0", s.tokenURL, nil, nil)
				dot := strings.LastIndexByte(assertion, '.')
				sig, _ := base64.RawURLEncoding.DecodeString(assertion[dot+1:])
				payload := make([]byte, 420) // a backend access token's signing input
				verifySign := func() {
					h := sha512.Sum384([]byte(assertion[:dot]))
					if alg == "RS384" {
						if rsa.VerifyPKCS1v15(&keys.rsa.PublicKey, crypto.SHA384, h[:], sig) != nil {
							b.Fatal("RS384 verify failed")
						}
					} else if !ecdsa.Verify(&keys.ec.PublicKey, h[:], bigInt(sig[:48]), bigInt(sig[48:])) {
						b.Fatal("ES384 verify failed")
					}
					d := sha256.Sum256(payload)
					if _, err := ecdsa.SignASN1(rand.Reader, signer, d[:]); err != nil {
						b.Fatal(err)
					}
				}
				const rounds = 10
				per := max(b.N/rounds, 1)
				var grant, floor serverRate
				var limitR stdlibRate
				wait := profileServer(b, s, "grant-"+alg)
				b.ResetTimer()
				for i := range rounds {
					chunk := forms[min(i*per, b.N):min((i+1)*per, b.N)]
					g := func() {
						grant.measure(b, s, len(chunk), func() time.Duration { return postForms(b, hc, s.tokenURL, chunk, benchConcurrency, 200) })
					}
					f := func() {
						floor.measure(b, s, len(chunk), func() time.Duration { return postForms(b, hc, s.floor+"/floor", chunk, benchConcurrency, 200) })
					}
					l := func() { limitR.measure(stdlibPerRound, verifySign) }
					steps := []func(){g, f, l}
					for j := range steps {
						steps[(i+j)%len(steps)]()
					}
				}
				b.StopTimer()
				wait()
				limit := limitR.us()
				b.ReportMetric(grant.cpuUS(), "grant_cpu_µs")
				b.ReportMetric(floor.cpuUS(), "floor_cpu_µs")
				b.ReportMetric(limit, "stdlib_verify+sign_µs")
				b.ReportMetric(grant.cpuUS()/limit, "grant/stdlib")
				b.ReportMetric((grant.cpuUS()-floor.cpuUS())/limit, "(grant-floor)/stdlib")
				b.ReportMetric(grant.rps(), "grants/s")
			})
		}
	})
}
