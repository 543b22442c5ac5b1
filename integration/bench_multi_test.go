package integration

import (
	"fmt"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/internal/pgtest"
)

// BenchmarkMultiInstance measures the token endpoint served by separate
// Caddy processes (the built ../cmd/caddy), as a deployment runs it: one
// process on a Badger directory, one process on a PostgreSQL database,
// and two processes on one PostgreSQL database sharing the load (request
// i goes to instance i mod 2, as a round-robin load balancer would send
// it). Every configuration runs in the same benchmark run, on the same
// machine as the database and the load generator, so that their ratios
// compare like with like; on a machine with few cores the two instances
// share those cores, and their sum shows the cost of sharing a database,
// not a gain from a second machine. The grant is client_credentials with
// an RS384 assertion (cheap to verify, so the jti write weighs most) and
// an ES384 one (dominated by the signature check), from
// benchParallelism×GOMAXPROCS concurrent clients. It reports tokens/s,
// p99 latency, and the CPU per token of the instances (server_cpu) and of
// PostgreSQL (pg_cpu).
//
//	go test -run '^$' -bench MultiInstance -benchtime 2000x ./integration
func BenchmarkMultiInstance(b *testing.B) {
	keys := newBackendKeys(b)
	// The flow site's clients and user (its environment set here, which
	// the processes inherit).
	flow := newFlowSite(b, "")
	for _, c := range []struct {
		name      string
		instances int
		postgres  bool
	}{
		{"badger/instances=1", 1, false},
		{"postgres/instances=1", 1, true},
		{"postgres/instances=2", 2, true},
	} {
		b.Run("store="+c.name, func(b *testing.B) {
			var storage string
			var env []string
			if c.postgres {
				storage = "postgres {env.SMARTAUTH_BENCH_DSN}"
				env = append(env, "SMARTAUTH_BENCH_DSN="+pgtest.DSN(b))
			} else {
				storage = b.TempDir()
			}
			procs, tokenURLs := startBenchInstances(b, keys, flow, c.instances, storage, env)
			for _, alg := range []string{"RS384", "ES384"} {
				b.Run(alg, func(b *testing.B) {
					forms := make([]string, b.N)
					for i := range forms {
						clientID := fmt.Sprintf("bench-%d", i%benchClients)
						// Every instance has the issuer's token URL as
						// its audience, whichever instance is asked.
						forms[i] = ccForm(keys.assertion(b, alg, clientID, tokenURLs[0], nil, nil), "system/Patient.rs").Encode()
					}
					cpu := startCPU(b, pgStorage(env))
					before := procsCPU(procs)
					lat := runTokenLoadOn(b, tokenURLs, forms, nil)
					b.ReportMetric(float64(procsCPU(procs)-before)/float64(time.Microsecond)/float64(b.N), "server_cpu_µs/op")
					cpu.report(b, b.N)
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
					b.ReportMetric(lat.p99ms(), "p99_ms")
				})
			}
			b.Run("refresh_token", func(b *testing.B) {
				// The flows run on the first instance; the rotations
				// alternate between the instances.
				cfg := flow.oauth("public-app", "", "launch/patient", "patient/*.rs", "offline_access")
				cfg.Endpoint.AuthURL = strings.TrimSuffix(tokenURLs[0], "/token") + "/authorize"
				fhirBase := strings.TrimSuffix(tokenURLs[0], "/auth/token") + "/fhir"
				br := newBrowser(b)
				chains := make([]string, benchParallelism*runtime.GOMAXPROCS(0))
				for i := range chains {
					chains[i] = postToken(b, http.DefaultClient, tokenURLs[0], benchCodeForm(br, cfg, fhirBase))
				}
				cpu := startCPU(b, pgStorage(env))
				before := procsCPU(procs)
				lat := runRefreshLoadOn(b, tokenURLs, chains)
				b.ReportMetric(float64(procsCPU(procs)-before)/float64(time.Microsecond)/float64(b.N), "server_cpu_µs/op")
				cpu.report(b, b.N)
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
				b.ReportMetric(lat.p99ms(), "p99_ms")
			})
		})
	}
}

// pgStorage is the Caddyfile storage argument startCPU understands for
// the benchmark's environment: the PostgreSQL DSN when env has one.
func pgStorage(env []string) string {
	for _, kv := range env {
		if dsn, ok := strings.CutPrefix(kv, "SMARTAUTH_BENCH_DSN="); ok {
			return "postgres `" + dsn + "`"
		}
	}
	return ""
}

// startBenchInstances starts n Caddy processes serving one authorization
// server (the same issuer, clients and storage, each on its own port)
// with benchClients backend clients registered with the keys' JWK Set and
// the flow site's clients and user, and returns them with their token
// endpoints. The issuer is the first
// instance's URL, as a load balancer's would be.
func startBenchInstances(b *testing.B, keys backendKeys, flow flowSite, n int, storage string, env []string) ([]*caddyProcess, []string) {
	b.Helper()
	dir := b.TempDir()
	ports := make([]int, n)
	for i := range ports {
		ports[i] = freePortTB(b)
	}
	issuer := fmt.Sprintf("http://localhost:%d/auth", ports[0])
	procs := make([]*caddyProcess, n)
	urls := make([]string, n)
	for i, port := range ports {
		cf := filepath.Join(dir, fmt.Sprintf("Caddyfile-%d", i))
		writeCaddyfile(b, cf, fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
	log {
		output discard
	}
}

http://localhost:%d {
	smart_auth {
		issuer %s
		fhir_base http://localhost:%d/fhir
		storage %s
%s
%s
	}
}
`, port, issuer, ports[0], storage, benchClientsBlock(b, keys), flow.extra))
		procs[i] = startCaddyProcess(b, cf, filepath.Join(dir, fmt.Sprintf("caddy-%d.log", i)), env...)
		// One at a time: the first creates the schema and the keys.
		procs[i].waitReady(fmt.Sprintf("http://localhost:%d/auth/jwks", port))
		urls[i] = fmt.Sprintf("http://localhost:%d/auth/token", port)
	}
	return procs, urls
}

// procsCPU is the CPU time the processes have used so far.
func procsCPU(procs []*caddyProcess) time.Duration {
	var sum time.Duration
	for _, p := range procs {
		sum += procCPU(p.cmd.Process.Pid)
	}
	return sum
}
