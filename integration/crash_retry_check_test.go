package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"sync"
)

// The replays replayChecks tries, by what the replayed token is.
const (
	// replaySuperseded: a token two rotations back, whose successor was
	// used (the chain moved on).
	replaySuperseded = "superseded"
	// replayRetried: a token whose lost rotation the app retried with
	// success, presented again after the chain moved on.
	replayRetried = "retried"
	// replayReplaced: a successor nobody saw (its answer was cut), which
	// a retry within the grace period replaced.
	replayReplaced = "replaced"
	// replayJustRotated: the token rotated away last (strict mode only:
	// within a grace period it is a retry).
	replayJustRotated = "just rotated"
)

// activeIs introspects a token and checks it against want, recording a
// failure when it differs; it reports whether it matched.
func (s *crashSite) activeIs(c *checker, what, token string, want bool) bool {
	got, err := s.active(token)
	switch {
	case err != nil:
		c.fail("%s: %v", what, err)
		return false
	case got != want:
		c.fail("%s: active=%t, want %t", what, got, want)
		return false
	}
	return true
}

// refreshOnce presents a refresh token as the app.
func (s *crashSite) refreshOnce(token string) (answer, tokenReply) {
	a := send(s.c, s.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}}, true))
	return a, tokenAnswer(a)
}

// refusedAsGrant tells whether an answer is 400 invalid_grant.
func refusedAsGrant(a answer, tok tokenReply) bool {
	return a.err == nil && a.status == http.StatusBadRequest && tok.Error == "invalid_grant"
}

// familyRevoked checks, after a refusal, that a family is revoked: its
// newest access token and the successor nobody saw (when known) are
// inactive and its newest refresh token is refused. It reports whether
// all held.
func (s *crashSite) familyRevoked(c *checker, what string, f *retryFamily) bool {
	ok := s.activeIs(c, what+": the newest access token", f.access, false)
	if f.unseen != "" {
		ok = s.activeIs(c, what+": the successor nobody saw", f.unseen, false) && ok
	}
	a, tok := s.refreshOnce(f.current)
	if !refusedAsGrant(a, tok) {
		c.fail("%s: the newest refresh token answered %d %v %.200s, want 400 invalid_grant", what, a.status, a.err, a.body)
		ok = false
	}
	return ok
}

// retryLost runs after a restart: families whose answers all came keep
// a valid newest refresh token; every family whose last refresh lost its
// answer retries with the token it holds. Strict rotation refuses the
// retry exactly when the rotation had happened, and revokes the family;
// a grace period accepts every retry, and the successor it replaces is
// refused. It counts into total and returns the families the app can go
// on with.
func (s *crashSite) retryLost(m retryMode, r *retryRound, total *retryTotals) []*retryFamily {
	s.t.Helper()
	c := &checker{t: s.t}
	var mu sync.Mutex
	var live []*retryFamily
	parallel(len(r.families), func(i int) {
		f := r.families[i]
		if f.lost == notLost {
			if s.activeIs(c, "the newest refresh token of an answered rotation", f.current, true) {
				mu.Lock()
				live = append(live, f)
				mu.Unlock()
			}
			return
		}
		kind := f.lost
		how := map[lossKind]string{lostToKill: "lost to the kill", lostToCut: "cut by the network"}[f.lost]
		// Did the rotation happen? A cut one did; a used refresh token
		// is inactive.
		active, err := s.active(f.current)
		if err != nil {
			c.fail("a refresh token whose answer was %s: %v", how, err)
			return
		}
		if kind == lostToCut && active {
			c.fail("a refresh token whose rotation was answered (then cut) is still active")
			return
		}
		happened := !active
		a, tok := s.refreshOnce(f.current)
		kept, replacedRefused, revoked := false, false, false
		switch {
		case a.err == nil && a.status == http.StatusOK && tok.Refresh != "" && tok.Access != "":
			if !m.grace && happened {
				c.fail("strict: the retry of a rotation that had happened (answer %s) was accepted: reuse went undetected", how)
				return
			}
			s.activeIs(c, "the successor of a retry", tok.Refresh, true)
			if f.unseen != "" {
				replacedRefused = s.activeIs(c, "the successor nobody saw, after a retry replaced it", f.unseen, false)
				f.replaced = append(f.replaced, f.unseen)
			}
			f.retried = append(f.retried, f.current)
			f.spent = append(f.spent, f.current)
			f.current, f.access, f.lost, f.unseen = tok.Refresh, tok.Access, notLost, ""
			kept = true
		case refusedAsGrant(a, tok):
			switch {
			case m.grace:
				c.fail("grace: the retry of a rotation whose answer was %s (happened: %t) was refused: %s", how, happened, tok.Desc)
			case !happened:
				c.fail("strict: the retry of a rotation that had not happened (answer %s) was refused: %s", how, tok.Desc)
			}
			revoked = s.familyRevoked(c, "strict: after the refused retry of a rotation whose answer was "+how, f)
		default:
			c.fail("the retry of a rotation whose answer was %s: %d %v %.200s", how, a.status, a.err, a.body)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		total.retried++
		if kind == lostToCut {
			total.cut++
		} else {
			total.killLost++
			if happened {
				total.killCommitted++
			}
		}
		if kept {
			live = append(live, f)
		} else {
			total.sessionsLost++
		}
		if replacedRefused {
			total.replacedRefused++
		}
		if revoked {
			total.revokedChecked++
		}
	})
	c.report(fmt.Sprintf("after restart %d", s.starts))
	return live
}

// replayChecks runs at the end of a mode: every live family refreshes
// twice more (the app goes on), then presents one token it should no
// longer present, which must be refused and revoke the family. The kinds
// of replay are spread over the families so that each kind the mode
// allows is tried.
func (s *crashSite) replayChecks(live []*retryFamily, grace bool, total *retryTotals) {
	s.t.Helper()
	c := &checker{t: s.t}
	parallel(len(live), func(i int) {
		f := live[i]
		for range 2 {
			a, tok := s.refreshOnce(f.current)
			if a.err != nil || a.status != http.StatusOK || tok.Refresh == "" || tok.Access == "" {
				c.fail("a refresh after the last restart: %d %v %.200s", a.status, a.err, a.body)
				return
			}
			f.spent = append(f.spent, f.current)
			f.current, f.access = tok.Refresh, tok.Access
		}
	})
	c.report("refreshing after the last restart")
	var mu sync.Mutex
	kinds := make([]string, len(live))
	for i, f := range live {
		// The kinds this family allows, the rarest first: on a tie the
		// first wins.
		var options []string
		if grace && len(f.replaced) > 0 {
			options = append(options, replayReplaced)
		}
		if len(f.retried) > 0 {
			options = append(options, replayRetried)
		}
		if !grace {
			options = append(options, replayJustRotated)
		}
		options = append(options, replaySuperseded)
		kinds[i] = options[0]
		for _, k := range options {
			if total.replays[k] < total.replays[kinds[i]] {
				kinds[i] = k
			}
		}
		total.replays[kinds[i]]++ // counted here to spread the kinds; undone below on failure
	}
	parallel(len(live), func(i int) {
		f := live[i]
		var token string
		switch kinds[i] {
		case replaySuperseded:
			token = f.spent[len(f.spent)-2]
		case replayRetried:
			token = f.retried[len(f.retried)-1]
		case replayReplaced:
			token = f.replaced[len(f.replaced)-1]
		case replayJustRotated:
			token = f.spent[len(f.spent)-1]
		}
		what := "a replay of a " + kinds[i] + " refresh token"
		a, tok := s.refreshOnce(token)
		ok := refusedAsGrant(a, tok)
		if !ok {
			c.fail("%s: %d %v %.200s, want 400 invalid_grant", what, a.status, a.err, a.body)
		}
		ok = s.familyRevoked(c, what, f) && ok
		if !ok {
			mu.Lock()
			total.replays[kinds[i]]--
			mu.Unlock()
		}
	})
	c.report("replays after the last restart")
}
