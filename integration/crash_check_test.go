package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// checker gathers failures found by concurrent checks, reported from the
// test goroutine.
type checker struct {
	t    *testing.T
	mu   sync.Mutex
	errs []string
}

// fail records a failure.
func (c *checker) fail(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

// report fails the test with what was found, at most 20 lines of it.
func (c *checker) report(what string) {
	c.t.Helper()
	for i, e := range c.errs {
		if i == 20 {
			c.t.Errorf("%s: %d more failures", what, len(c.errs)-20)
			break
		}
		c.t.Errorf("%s: %s", what, e)
	}
	c.errs = nil
}

// parallel runs fn for 0..n-1 on eight goroutines.
func parallel(n int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}

// active introspects a token as the app (which may see its own tokens).
func (s *crashSite) active(token string) (bool, error) {
	a := send(s.c, s.post("/introspect", url.Values{"token": {token}}, true))
	var r struct {
		Active bool `json:"active"`
	}
	if a.err != nil || a.status != http.StatusOK || json.Unmarshal(a.body, &r) != nil {
		return false, fmt.Errorf("introspection: %d %v %.200s", a.status, a.err, a.body)
	}
	return r.Active, nil
}

// expectActive checks a token's introspection against want.
func (s *crashSite) expectActive(c *checker, what, token string, want bool) {
	got, err := s.active(token)
	switch {
	case err != nil:
		c.fail("%s: %v", what, err)
	case got != want:
		c.fail("%s: active=%t, want %t", what, got, want)
	}
}

// refreshRefused presents a refresh token at the token endpoint and
// expects invalid_grant.
func (s *crashSite) refreshRefused(c *checker, what, token string) {
	a := send(s.c, s.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}}, true))
	if a.err != nil || a.status != http.StatusBadRequest || tokenAnswer(a).Error != "invalid_grant" {
		c.fail("%s: refresh answered %d %v %s, want 400 invalid_grant", what, a.status, a.err, a.body)
	}
}

// checkRegistered reads each registered client with its registration
// access token (RFC 7592), which rotates the token.
func checkRegistered(c *checker, hc *http.Client, issuer string, regs []registered) {
	parallel(len(regs), func(i int) {
		req, _ := http.NewRequest(http.MethodGet, issuer+"/register/"+regs[i].id, nil)
		req.Header.Set("Authorization", "Bearer "+regs[i].rat)
		a := send(hc, req)
		var got struct {
			ID  string `json:"client_id"`
			RAT string `json:"registration_access_token"`
		}
		if a.err != nil || a.status != http.StatusOK || json.Unmarshal(a.body, &got) != nil || got.ID != regs[i].id || got.RAT == "" {
			c.fail("registered client %s: %d %v %.200s", regs[i].id, a.status, a.err, a.body)
			return
		}
		regs[i].rat = got.RAT
	})
}

// roundOutcome is what a restart found of one round's writes.
type roundOutcome struct {
	live []*refreshFamily // rotating families the app can go on with
	// rotLost rotations lost their answer; of them rotCommitted had
	// used the token up (the app must send its user to sign in again).
	rotLost, rotCommitted int
	ccRecorded            int // lost client_credentials whose jti was recorded
	revCommitted          int // lost revocations that took effect
}

// verifyRound checks, after a restart, everything the previous round's
// answers promised, and finds out what became of the lost ones.
func (s *crashSite) verifyRound(r *crashRound) roundOutcome {
	s.t.Helper()
	c := &checker{t: s.t}
	var out roundOutcome
	var mu sync.Mutex

	// Every answered registration exists; its registration access token works.
	checkRegistered(c, s.c, s.issuer(), r.registered)

	// Rotated-away refresh tokens are refused; the newest answered
	// successor is valid unless a lost rotation may have used it.
	var spent []string
	for _, f := range r.rotating {
		spent = append(spent, f.spent[f.checked:]...)
		f.checked = len(f.spent)
	}
	parallel(len(spent), func(i int) { s.expectActive(c, "a rotated-away refresh token", spent[i], false) })
	parallel(len(r.rotating), func(i int) {
		f := r.rotating[i]
		if !f.lost {
			s.expectActive(c, "the newest refresh token", f.current, true)
			mu.Lock()
			out.live = append(out.live, f)
			mu.Unlock()
			return
		}
		active, err := s.active(f.current)
		if err != nil {
			c.fail("a refresh token whose rotation lost its answer: %v", err)
			return
		}
		if !active {
			// The rotation happened: the app holds a used token and
			// never saw its successor. Its retry is a reuse, refused.
			s.refreshRefused(c, "the retry of a rotation whose answer was lost", f.current)
		}
		mu.Lock()
		defer mu.Unlock()
		out.rotLost++
		if active {
			// The rotation did not happen: the app's retry works.
			f.lost = false
			out.live = append(out.live, f)
		} else {
			out.rotCommitted++
		}
	})

	// A used jti is refused when replayed; a lost one either way.
	parallel(len(r.ccUsed), func(i int) {
		a := send(s.c, s.post("/token", ccForm(r.ccUsed[i].assertion, "system/Patient.rs"), false))
		if a.err != nil || a.status != http.StatusUnauthorized || !strings.Contains(tokenAnswer(a).Desc, "already used") {
			c.fail("replay of an answered client assertion: %d %v %.200s", a.status, a.err, a.body)
		}
	})
	parallel(len(r.ccLost), func(i int) {
		a := send(s.c, s.post("/token", ccForm(r.ccLost[i], "system/Patient.rs"), false))
		switch {
		case a.err == nil && a.status == http.StatusOK:
		case a.err == nil && a.status == http.StatusUnauthorized && strings.Contains(tokenAnswer(a).Desc, "already used"):
			mu.Lock()
			out.ccRecorded++
			mu.Unlock()
		default:
			c.fail("replay of a client assertion whose answer was lost: %d %v %.200s", a.status, a.err, a.body)
		}
	})
	// Access tokens issued before the crash still pass the guard.
	for i, u := range r.ccUsed {
		if i == 20 {
			break
		}
		req, _ := http.NewRequest(http.MethodGet, s.base+"/fhir/Patient/crash", nil)
		req.Header.Set("Authorization", "Bearer "+u.access)
		if a := send(s.c, req); a.err != nil || a.status != http.StatusOK {
			c.fail("a backend access token from before the crash: %d %v %.200s", a.status, a.err, a.body)
		}
	}

	// Answered revocations are in force, on the refresh token and on the
	// access token of the family; lost ones either way; untried families
	// are untouched.
	parallel(len(r.revoked), func(i int) {
		f := r.revoked[i]
		s.expectActive(c, "a revoked refresh token", f.current, false)
		s.expectActive(c, "the access token of a revoked family", f.access, false)
		s.refreshRefused(c, "a revoked refresh token", f.current)
	})
	for _, f := range r.revLost {
		active, err := s.active(f.current)
		switch {
		case err != nil:
			c.fail("a refresh token whose revocation lost its answer: %v", err)
		case !active:
			out.revCommitted++
		}
	}
	parallel(len(r.revUntried), func(i int) {
		s.expectActive(c, "a refresh token nobody revoked", r.revUntried[i].current, true)
	})
	c.report(fmt.Sprintf("after restart %d", s.starts))
	return out
}

// finalChecks runs at the last start: every client registered in any
// round still exists, every revocation of any round is in force, every
// refresh token ever rotated away is refused, and presenting one at the
// token endpoint revokes its family.
func (s *crashSite) finalChecks(all []registered, revoked, live []*refreshFamily) {
	s.t.Helper()
	c := &checker{t: s.t}
	checkRegistered(c, s.c, s.issuer(), all)
	parallel(len(revoked), func(i int) { s.expectActive(c, "a revoked refresh token", revoked[i].current, false) })
	var spent []string
	for _, f := range live {
		spent = append(spent, f.spent...)
	}
	parallel(len(spent), func(i int) { s.expectActive(c, "a rotated-away refresh token", spent[i], false) })
	for _, f := range live {
		s.expectActive(c, "the newest refresh token", f.current, true)
		if len(f.spent) > 0 {
			s.refreshRefused(c, "reuse of a rotated-away refresh token", f.spent[len(f.spent)-1])
			s.refreshRefused(c, "the newest refresh token after a reuse of its family", f.current)
		}
	}
	c.report("final checks")
	s.t.Logf("final checks: %d registered clients, %d revoked families, %d rotated-away refresh tokens, %d live families",
		len(all), len(revoked), len(spent), len(live))
}

// crashTotals adds up the rounds.
type crashTotals struct {
	rounds                                  int
	regs, regLost, rots, rotLost, rotCommit int
	cc, ccLost, ccRecorded, revs, revLost   int
	revCommitted, notSent                   int
}

// add counts one round.
func (t *crashTotals) add(r *crashRound, o roundOutcome) {
	t.rounds++
	t.regs += len(r.registered)
	t.regLost += r.regLost
	t.rots += r.rotations
	t.rotLost += o.rotLost
	t.rotCommit += o.rotCommitted
	t.cc += len(r.ccUsed)
	t.ccLost += len(r.ccLost)
	t.ccRecorded += o.ccRecorded
	t.revs += len(r.revoked)
	t.revLost += len(r.revLost)
	t.revCommitted += o.revCommitted
	t.notSent += r.notSent
}

// String describes the totals as describeRound describes a round.
func (t crashTotals) String() string {
	return summary(t.regs, t.regLost, t.rots, t.rotLost, t.rotCommit, t.cc, t.ccLost, t.ccRecorded, t.revs, t.revLost, t.revCommitted, t.notSent)
}

// describeRound sums up a round and what the restart found.
func describeRound(r *crashRound, o roundOutcome) string {
	return summary(len(r.registered), r.regLost, r.rotations, o.rotLost, o.rotCommitted, len(r.ccUsed), len(r.ccLost), o.ccRecorded,
		len(r.revoked), len(r.revLost), o.revCommitted, r.notSent)
}

// summary is the one-line account of answered and lost writes.
func summary(regs, regLost, rots, rotLost, rotCommit, cc, ccLost, ccRec, revs, revLost, revCommit, notSent int) string {
	return fmt.Sprintf("registrations %d answered, %d lost; "+
		"refresh rotations %d answered, %d lost (%d had happened: the app holds a used token and must sign in again; %d had not: its retry works); "+
		"client_credentials %d answered, %d lost (%d jti recorded); "+
		"revocations %d answered, %d lost (%d in force); %d requests never sent (connection refused)",
		regs, regLost, rots, rotLost, rotCommit, rotLost-rotCommit, cc, ccLost, ccRec, revs, revLost, revCommit, notSent)
}
