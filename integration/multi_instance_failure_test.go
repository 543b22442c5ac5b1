package integration

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/internal/pgtest"
)

// TestMultiInstanceKillUnderLoad kills instance A with SIGKILL while both
// serve grants, rotations, registrations, authorizations and guarded
// reads: B keeps serving, and everything A answered with success still
// works on B.
func TestMultiInstanceKillUnderLoad(t *testing.T) {
	m := startInstances(t, pgtest.DSN(t))
	l := newLoad(m)
	b := m.browser()
	// The first authorization signs alice in and remembers her consent;
	// after it every authorization is a single redirect.
	// handedOver counts refresh tokens A answered that B then rotated.
	var handedOver atomic.Int64
	var fams [2][]*multiFamily
	for k := range 8 {
		f, _ := l.newFamily(b, k%2)
		fams[k%2] = append(fams[k%2], f)
	}
	cached := m.mustBackendToken(1)
	for i := range 2 {
		m.mustRead(i, cached, "a backend token before the load")
	}

	// Load on both. A's workers stop at their first unanswered request;
	// B's must never see one.
	for i := range 2 {
		// Each family rotates on A and B in turn, so that every refresh
		// token one instance answered is presented to the other next;
		// once A is gone (refused at connect), on B only.
		for _, f := range fams[i] {
			l.wg.Go(func() {
				fromA := false // f.current was answered by A
				for n := i; !l.stop.Load(); n++ {
					ok := l.rotate(f, n%2, nil)
					if ok && fromA {
						handedOver.Add(1)
					}
					if !ok && !f.last.notSent() {
						return
					}
					fromA = ok && n%2 == 0 || !ok && fromA
					// A pause, as an app's: a family is mostly idle
					// at the kill, so that most are checked after it.
					time.Sleep(rand.N(20 * time.Millisecond))
				}
			})
		}
		l.run(2, i, func(i int) bool { _, ok := l.backend(i, nil); return ok })
		l.run(1, i, l.register)
		l.run(2, i, func(i int) bool {
			a := m.read(i, cached)
			l.count("guarded read", i, a)
			if a.err == nil && a.status != http.StatusOK {
				l.problem("guarded read on %s: %d %.200s", instanceNames[i], a.status, a.body)
			}
			return a.err == nil && a.status == http.StatusOK
		})
	}
	l.run(1, 0, func(i int) bool {
		c, a := m.authorizeOnce(b, i)
		l.count("authorize", i, a)
		if a.err != nil {
			return false
		}
		if c.code == "" {
			l.problem("authorize on %s: %d %s", instanceNames[i], a.status, a.body)
			return false
		}
		l.mu.Lock()
		l.codes = append(l.codes, c)
		l.mu.Unlock()
		return true
	})
	time.Sleep(time.Second)
	m.procs[0].kill()
	killed := time.Now()
	time.Sleep(time.Second) // B serves alone
	l.finish()
	l.logCounts(t)
	for _, p := range l.problems {
		t.Errorf("under load: %s", p)
	}
	t.Logf("A answered %d access tokens and %d codes before the kill, the two %d registrations; load on B went on for %s after it",
		len(l.issued[0]), len(l.codes), len(l.registered), time.Since(killed).Round(time.Millisecond))
	if len(l.issued[0]) == 0 || len(l.codes) == 0 {
		t.Fatal("A answered nothing before the kill: the load did not run")
	}

	// Everything A answered works on B.
	for _, tok := range l.issued[0] {
		if ok, a := m.verifiedBy(1, tok); !ok {
			t.Errorf("an access token A issued, at B's guard: %d %v %.200s", a.status, a.err, a.body)
		}
	}
	for _, r := range l.registered {
		if a := m.readRegistration(1, r); a.err != nil || a.status != http.StatusOK {
			t.Errorf("a registration answered before the kill, read on B: %d %v %.200s", a.status, a.err, a.body)
		}
	}
	var wg sync.WaitGroup
	for _, c := range l.codes {
		wg.Go(func() {
			if a := m.exchange(1, c.code, c.verifier); a.err != nil || a.status != http.StatusOK {
				t.Errorf("a code A issued, redeemed on B: %d %v %.200s", a.status, a.err, a.body)
			}
			if a := m.exchange(1, c.code, c.verifier); a.status != http.StatusBadRequest || oauthError(a) != "invalid_grant" {
				t.Errorf("a code A issued, redeemed twice on B: %d %v %.200s", a.status, a.err, a.body)
			}
		})
	}
	wg.Wait()
	checked := 0
	for _, f := range l.families {
		if f.lost {
			continue // presented to A as it died: used up or not
		}
		checked++
		if a := m.refresh(1, f.current); a.err != nil || a.status != http.StatusOK {
			t.Errorf("the newest refresh token of a family, on B: %d %v %.200s", a.status, a.err, a.body)
		}
	}
	t.Logf("%d refresh tokens A answered were rotated on B under load; %d of %d families refreshed on B after the kill "+
		"(the others' last request went to A as it died: whether it was used is unknown)", handedOver.Load(), checked, len(l.families))
	if handedOver.Load() == 0 {
		t.Error("no refresh token A answered was presented to B")
	}
	// The load balancer sends everything to B now.
	for k := range 10 {
		if _, a := m.backendTokenVia(m.front); a.err != nil || a.status != http.StatusOK {
			t.Errorf("client_credentials %d through the load balancer after the kill: %d %v %.200s", k, a.status, a.err, a.body)
		}
	}
}

// backendTokenVia is backendToken sent to an origin (the load balancer).
func (m *instances) backendTokenVia(origin string) (string, answer) {
	assertion, err := loadAssertion(m.keys, "multi-backend", m.issuer()+"/token", newJTI())
	if err != nil {
		return "", answer{err: err}
	}
	req, _ := http.NewRequest(http.MethodPost, origin+"/auth/token", strings.NewReader(ccForm(assertion, "system/Patient.rs").Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	a := send(m.c, req)
	return tokenAnswer(a).Access, a
}

// unavailableOAuth tells whether a is the OAuth answer for an unreachable
// database: 503, temporarily_unavailable, Retry-After.
func unavailableOAuth(a answer) bool {
	return a.err == nil && a.status == http.StatusServiceUnavailable && oauthError(a) == "temporarily_unavailable" &&
		a.header.Get("Retry-After") != ""
}

// unavailableGuard tells whether a is the guard's answer for a token it
// cannot check: 503, an OperationOutcome with issue code transient,
// Retry-After, and no Bearer challenge.
func unavailableGuard(a answer) bool {
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Code string `json:"code"`
		} `json:"issue"`
	}
	return a.err == nil && a.status == http.StatusServiceUnavailable && json.Unmarshal(a.body, &oo) == nil &&
		oo.ResourceType == "OperationOutcome" && len(oo.Issue) > 0 && oo.Issue[0].Code == "transient" &&
		a.header.Get("Retry-After") != "" && a.header.Get("WWW-Authenticate") == ""
}
