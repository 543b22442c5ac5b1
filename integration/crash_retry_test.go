package integration

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The refresh-retry crash test (issue 10 §5): the kill-and-restart
// scenario of TestCrashDurability with refresh rotations alone, run with
// strict rotation and with refresh_grace_period 1m. An app whose refresh
// lost its answer retries, after the restart, with the token it holds;
// the test counts the sessions lost (retries refused) in each mode.

// Load of the refresh-retry crash test: rounds per mode, families
// rotating at once, how many of them lose an answer to the network in a
// round, and when the kill comes.
const (
	retryRounds       = 5
	retryRotators     = 16
	retryCutsPerRound = 4
	retryMinKillAfter = 200 * time.Millisecond
	retryMaxKillAfter = 700 * time.Millisecond
)

// lossKind tells how the answer to a refresh was lost.
type lossKind int

// The ways a refresh's answer is lost.
const (
	notLost lossKind = iota
	// lostToKill: the request was sent and the process was killed
	// before its answer came; the rotation may have happened or not.
	lostToKill
	// lostToCut: the server answered (the rotation happened) and the
	// network lost the answer; the test kept the successor nobody saw.
	lostToCut
)

// retryFamily is one authorization of the app in the refresh-retry test:
// its refresh-token chain as the app saw it, and what the test holds
// beyond that.
type retryFamily struct {
	access  string   // the newest access token the app was given
	current string   // the newest refresh token the app was given
	spent   []string // refresh tokens the app presented and got a successor for
	lost    lossKind // how the answer to presenting current was lost
	unseen  string   // lostToCut: the successor in the answer nobody saw
	cutAt   int      // this round, the answer to the cutAt-th rotation is cut (0: none)
	// retried are tokens whose rotation lost its answer and whose retry
	// got a successor; replaced are the unseen successors those retries
	// replaced.
	retried, replaced []string
}

// retryRound is what one round of the refresh-retry test did, as the app
// saw it.
type retryRound struct {
	mu          sync.Mutex
	killedAfter time.Duration
	families    []*retryFamily
	rotations   int      // rotations answered (cut answers included)
	notSent     int      // refreshes refused at connect: never received
	problems    []string // answers the test did not expect
}

// retryTotals counts what a mode's rounds did and what the retries found.
type retryTotals struct {
	rounds, rotations, notSent int
	killLost, killCommitted    int // answers lost to the kill; of them, rotations that had happened
	cut                        int // answers cut by the network after the rotation
	retried, sessionsLost      int // retries made; retries refused (the user must sign in again)
	revokedChecked             int // refused retries whose family was found revoked
	replacedRefused            int // unseen successors found refused after a retry replaced them
	replays                    map[string]int
}

// retryMode is one configuration the test runs in.
type retryMode struct {
	name   string
	option string // the smart_auth line that sets it up
	grace  bool
}

// TestCrashRefreshRetry kills a Caddy process with SIGKILL under refresh
// rotations, in strict mode and with a one-minute grace period. After
// each restart every app whose refresh lost its answer (to the kill, or to
// a network cut after the rotation) retries with the token it holds.
// Strict: the retry of a rotation that had happened is reuse: refused, the
// family revoked; the retry of one that had not works. Grace: every retry
// works, and the successor it replaces is refused. In both modes, a replay
// of a token of a chain that moved on revokes the family.
func TestCrashRefreshRetry(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("SMARTAUTH_CRASH_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("SMARTAUTH_CRASH_SEED: %v", err)
		}
	}
	t.Logf("kill times and cuts seeded with %d (SMARTAUTH_CRASH_SEED=%[1]d repeats them)", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	for _, m := range []retryMode{
		{name: "strict"},
		{name: "grace_1m", option: "refresh_grace_period 1m", grace: true},
	} {
		t.Run(m.name, func(t *testing.T) { runRetryMode(t, m, rng) })
	}
}

// runRetryMode runs the rounds of one mode on a fresh site and checks
// and logs what they did.
func runRetryMode(t *testing.T, m retryMode, rng *rand.Rand) {
	s := newCrashSite(t, m.option)
	total := retryTotals{replays: map[string]int{}}
	var live []*retryFamily
	s.start()
	for round := 1; round <= retryRounds; round++ {
		for len(live) < retryRotators {
			f := s.newFamily()
			live = append(live, &retryFamily{access: f.access, current: f.current})
		}
		for i, f := range live {
			f.cutAt = 0
			if i < retryCutsPerRound {
				f.cutAt = 1 + rng.IntN(3)
			}
		}
		rng.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
		killAfter := retryMinKillAfter + time.Duration(rng.Int64N(int64(retryMaxKillAfter-retryMinKillAfter)))
		r := s.runRetryRound(live, killAfter)
		s.start()
		before := total
		total.rounds++
		total.rotations += r.rotations
		total.notSent += r.notSent
		live = s.retryLost(m, r, &total)
		t.Logf("%s round %d: killed %s into the load; %s", m.name, round, killAfter.Round(time.Millisecond), total.since(before))
		if t.Failed() {
			return
		}
	}
	s.replayChecks(live, m.grace, &total)
	t.Logf("%s: %s", m.name, total)
	s.proc.stop()

	// The totals agree with the per-family checks, and the test
	// exercised what it asserts.
	want := 0 // sessions lost
	if !m.grace {
		want = total.cut + total.killCommitted
	}
	if total.sessionsLost != want {
		t.Errorf("%s: %d sessions lost, want %d", m.name, total.sessionsLost, want)
	}
	if total.sessionsLost != total.revokedChecked {
		t.Errorf("%s: %d sessions lost, %d of them with the family found revoked", m.name, total.sessionsLost, total.revokedChecked)
	}
	if total.cut == 0 {
		t.Errorf("%s: no answer was cut by the network: the retry of a rotation known to have happened went untested", m.name)
	}
	if total.replays[replaySuperseded] == 0 {
		t.Errorf("%s: no replay of a superseded token was tried", m.name)
	}
	if m.grace && (total.replacedRefused == 0 || total.replays[replayReplaced] == 0) {
		t.Errorf("%s: no unseen successor replaced by a retry was checked (%d) or replayed (%d)",
			m.name, total.replacedRefused, total.replays[replayReplaced])
	}
	if !m.grace && total.replays[replayJustRotated] == 0 {
		t.Errorf("%s: no replay of a token just rotated away was tried", m.name)
	}
}

// runRetryRound rotates every family's refresh token until the process,
// killed with SIGKILL after killAfter, stops answering.
func (s *crashSite) runRetryRound(families []*retryFamily, killAfter time.Duration) *retryRound {
	s.t.Helper()
	r := &retryRound{killedAfter: killAfter, families: families}
	var wg sync.WaitGroup
	for _, f := range families {
		wg.Go(func() { s.retryRotator(r, f) })
	}
	time.Sleep(killAfter)
	s.proc.kill()
	wg.Wait()
	for _, p := range r.problems {
		s.t.Errorf("round under load: %s", p)
	}
	return r
}

// retryRotator rotates one family's refresh token until a request goes
// unanswered, or until the answer to its cutAt-th rotation is cut: the
// server answered, but the app never saw it.
func (s *crashSite) retryRotator(r *retryRound, f *retryFamily) {
	for n := 1; ; n++ {
		a := send(s.c, s.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {f.current}}, true))
		r.mu.Lock()
		if a.err != nil {
			if a.notSent() {
				r.notSent++
			} else {
				f.lost = lostToKill
			}
			r.mu.Unlock()
			return
		}
		tok := tokenAnswer(a)
		if a.status != http.StatusOK || tok.Refresh == "" || tok.Access == "" {
			r.problems = append(r.problems, fmt.Sprintf("refresh: %d %.200s", a.status, a.body))
			r.mu.Unlock()
			return
		}
		r.rotations++
		if n == f.cutAt {
			f.lost, f.unseen = lostToCut, tok.Refresh
			r.mu.Unlock()
			return
		}
		f.spent = append(f.spent, f.current)
		f.current, f.access = tok.Refresh, tok.Access
		r.mu.Unlock()
	}
}

// since describes what was counted after before, for a round's log line.
func (t retryTotals) since(before retryTotals) string {
	return fmt.Sprintf("%d rotations answered; answers lost: %d to the kill (%d after the rotation happened), %d cut by the network after it; "+
		"%d retries refused (sessions lost); %d requests never sent",
		t.rotations-before.rotations, t.killLost-before.killLost, t.killCommitted-before.killCommitted, t.cut-before.cut,
		t.sessionsLost-before.sessionsLost, t.notSent-before.notSent)
}

// String is the one-line summary of a mode.
func (t retryTotals) String() string {
	return fmt.Sprintf("%d kills, %d rotations answered; %d answers lost: %d to the kill (%d after the rotation happened, %d before), "+
		"%d cut by the network after the rotation; the app retried %d: %d SESSIONS LOST (retry refused; %d of them with the family found revoked), %d kept; "+
		"%d unseen successors refused after a retry replaced them; replays that revoked their family: %d of a superseded token, "+
		"%d of a retried token after its chain moved on, %d of a replaced successor, %d of the token just rotated away",
		t.rounds, t.rotations, t.killLost+t.cut, t.killLost, t.killCommitted, t.killLost-t.killCommitted,
		t.cut, t.retried, t.sessionsLost, t.revokedChecked, t.retried-t.sessionsLost,
		t.replacedRefused, t.replays[replaySuperseded], t.replays[replayRetried], t.replays[replayReplaced], t.replays[replayJustRotated])
}
