package handlers_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/handlers/guard"
	"github.com/smartcaddy/smartauth/internal/pgtest"
)

// TestGuardRevocationStaleness: while the database refuses connections,
// the guard serves a token it has cached only until its view of the
// revocation log is older than revocation_staleness; after that the same
// token gets 503 with Retry-After and no Bearer challenge, and never
// reaches the upstream, until the log can be read again. With the bound
// off, the cached token keeps passing through the outage. Either way no
// answer is a 401 or a 500.
func TestGuardRevocationStaleness(t *testing.T) {
	for _, c := range []struct {
		name      string
		staleness time.Duration
	}{{"bounded", time.Second}, {"off", -1}} {
		t.Run(c.name, func(t *testing.T) {
			pe := newPGEnv(t, guard.Options{RevocationStaleness: c.staleness})
			tok := pe.post(pe.seed(tkPublic), nil)
			access := tok.str("access_token")
			if tok.status != http.StatusOK || access == "" {
				t.Fatalf("a token: %d %v", tok.status, tok.body)
			}
			// Cached: the upstream answers 404 here.
			if resp := pe.read(access); resp.StatusCode != http.StatusNotFound {
				t.Fatalf("guarded read before the outage: %d, want the upstream's 404", resp.StatusCode)
			}

			pgtest.Refuse(t, pe.dsn)
			served, refused := 0, 0
			// Read for three times the bound (the poller reads every
			// 250 ms): the bounded guard must start refusing and then
			// never serve again; the unbounded one must always serve.
			for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
				before := pe.h.upstream.Load()
				resp := pe.read(access)
				switch {
				case resp.StatusCode == http.StatusNotFound:
					if refused > 0 {
						t.Fatalf("a cached token served again after the guard refused it, the database still down")
					}
					served++
				case resp.StatusCode == http.StatusServiceUnavailable:
					if resp.Header.Get("Retry-After") != "5" || resp.Header.Get("WWW-Authenticate") != "" || pe.h.upstream.Load() != before {
						t.Fatalf("a refused cached token: Retry-After %q, WWW-Authenticate %q, upstream calls %d; want 5, none, 0",
							resp.Header.Get("Retry-After"), resp.Header.Get("WWW-Authenticate"), pe.h.upstream.Load()-before)
					}
					refused++
				default:
					t.Fatalf("a cached token while the database is down: %d, want the upstream's 404 or 503", resp.StatusCode)
				}
			}
			t.Logf("while the database refused connections: %d reads served, %d refused", served, refused)
			switch {
			case c.staleness > 0 && (served == 0 || refused == 0):
				t.Fatalf("bounded: %d served, %d refused; want served first (within the bound), then refused", served, refused)
			case c.staleness < 0 && refused > 0:
				t.Fatalf("off: %d of the cached token's reads refused, want none", refused)
			}

			pgtest.Allow(t, pe.dsn)
			deadline := time.Now().Add(15 * time.Second)
			for resp := pe.read(access); resp.StatusCode != http.StatusNotFound; resp = pe.read(access) {
				if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
					t.Fatalf("after the database is back: %d, want the upstream's 404 again", resp.StatusCode)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}
