package integration

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/internal/pgtest"
)

// Phases of the outage test, in order.
const (
	phaseUp       int32 = iota // PostgreSQL serves
	phaseStopping              // Stop called
	phaseDown                  // Stop returned: the server is gone
	phaseStarting              // Start called
	phaseBack                  // Start returned
)

// TestMultiInstanceDatabaseOutage stops PostgreSQL (a cluster of its own)
// under load on both instances and starts it again: every answer is a
// success or the documented 503 (OAuth temporarily_unavailable with
// Retry-After; the guard's OperationOutcome), never a 500 or a wrong
// answer; while the server is down, grants are all 503 and cached tokens
// keep reading; service resumes by itself once it is back.
func TestMultiInstanceDatabaseOutage(t *testing.T) {
	cl := pgtest.NewCluster(t)
	m := startInstances(t, cl.DSN())
	l := newLoad(m)
	b := m.browser()
	var fams [2][]*multiFamily
	for k := range 4 {
		f, _ := l.newFamily(b, k%2)
		fams[k%2] = append(fams[k%2], f)
	}
	cached := m.mustBackendToken(0)
	for i := range 2 {
		m.mustRead(i, cached, "a backend token before the outage")
	}

	var phase atomic.Int32
	var downOK, downUnavailable, downCached atomic.Int64
	// during tells whether a request sent at phase sent and answered now
	// ran entirely while the server was down.
	during := func(sent int32) bool { return sent == phaseDown && phase.Load() == phaseDown }
	// oauth accepts a 503 at any time; during the outage, only a 503.
	oauth := func(sent int32) func(a answer) bool {
		return func(a answer) bool {
			if !unavailableOAuth(a) {
				return false
			}
			if during(sent) {
				downUnavailable.Add(1)
			}
			return true
		}
	}
	success := func(kind string, i int, sent int32) {
		if during(sent) {
			downOK.Add(1)
			l.problem("%s on %s succeeded while PostgreSQL was down", kind, instanceNames[i])
		}
	}
	for i := range 2 {
		for _, f := range fams[i] {
			l.wg.Go(func() {
				for !l.stop.Load() {
					sent, before := phase.Load(), f.current
					if !l.rotate(f, i, oauth(sent)) {
						return
					}
					if f.current != before {
						success("refresh", i, sent)
					}
				}
			})
		}
		l.run(2, i, func(i int) bool {
			sent := phase.Load()
			tok, ok := l.backend(i, oauth(sent))
			if tok != "" {
				success("client_credentials", i, sent)
			}
			return ok
		})
		// Cached tokens are served throughout.
		l.run(1, i, func(i int) bool {
			sent := phase.Load()
			a := m.read(i, cached)
			l.count("guarded read, cached token", i, a)
			if a.err != nil || a.status != http.StatusOK {
				l.problem("a cached token at %s's guard: %d %v %.200s", instanceNames[i], a.status, a.err, a.body)
				return false
			}
			if during(sent) {
				downCached.Add(1)
			}
			return true
		})
		// The newest token the other instance issued: maybe never seen
		// by this guard, so verified (200, or 403 for scope only) or
		// the guard's 503.
		l.run(1, i, func(i int) bool {
			l.mu.Lock()
			issued := l.issued[1-i]
			l.mu.Unlock()
			if len(issued) == 0 {
				time.Sleep(5 * time.Millisecond)
				return true
			}
			ok, a := m.verifiedBy(i, issued[len(issued)-1])
			l.count("guarded read, newest token", i, a)
			if !ok && !unavailableGuard(a) {
				l.problem("the newest token at %s's guard: %d %v %v %.200s", instanceNames[i], a.status, a.err, a.header, a.body)
				return false
			}
			return true
		})
	}

	time.Sleep(700 * time.Millisecond)
	phase.Store(phaseStopping)
	cl.Stop()
	phase.Store(phaseDown)
	time.Sleep(1500 * time.Millisecond)
	phase.Store(phaseStarting)
	cl.Start()
	phase.Store(phaseBack)
	started := time.Now()
	var resumed [2]time.Duration
	for i := range 2 {
		for {
			tok, a := m.backendToken(i)
			if tok != "" {
				resumed[i] = time.Since(started)
				break
			}
			if !unavailableOAuth(a) {
				t.Fatalf("client_credentials on %s after PostgreSQL restarted: %d %v %.200s", instanceNames[i], a.status, a.err, a.body)
			}
			if time.Since(started) > 30*time.Second {
				t.Fatalf("%s still answers 503 30 s after PostgreSQL restarted", instanceNames[i])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(500 * time.Millisecond)
	l.finish()
	l.logCounts(t)
	t.Logf("while PostgreSQL was down: %d OAuth answers 503, %d successes, %d cached-token reads served; "+
		"first client_credentials success after the restart: A %s, B %s", downUnavailable.Load(), downOK.Load(),
		downCached.Load(), resumed[0].Round(time.Millisecond), resumed[1].Round(time.Millisecond))
	for _, p := range l.problems {
		t.Errorf("under load: %s", p)
	}
	if downUnavailable.Load() == 0 || downCached.Load() == 0 {
		t.Fatalf("the load saw no outage: %d 503s, %d cached reads while PostgreSQL was down", downUnavailable.Load(), downCached.Load())
	}
	// No refresh token was used up by an answer that was not a success.
	for k, f := range l.families {
		if f.lost {
			t.Errorf("family %d: a refresh got no answer", k)
			continue
		}
		if a := m.refresh(k%2, f.current); a.err != nil || a.status != http.StatusOK {
			t.Errorf("family %d's newest refresh token after the outage, on %s: %d %v %.200s", k, instanceNames[k%2], a.status, a.err, a.body)
		}
	}
}
