package store

import (
	"errors"
	"testing"
	"time"
)

// graceEnv is a store with one refresh token "rt0" of family "fam" and a
// settable clock, for the grace-period rules of RotateRefresh.
type graceEnv struct {
	t  *testing.T
	db *DB
	c  *clock
}

// grace is the grace period of these tests.
const grace = time.Minute

func newGraceEnv(t *testing.T) *graceEnv {
	c := &clock{t: time.Now()}
	e := &graceEnv{t: t, db: openTest(t, t.TempDir(), c), c: c}
	rec := &RefreshToken{FamilyID: "fam", ClientID: "app", Subject: "alice", Scope: "openid patient/*.rs offline_access",
		Context: LaunchContext{Patient: "p1", Encounter: "e1"}}
	if err := e.db.SaveRefresh(ctx, "rt0", rec, time.Hour); err != nil {
		t.Fatal(err)
	}
	return e
}

// rotate presents token and asks for next with the grace period.
func (e *graceEnv) rotate(token, next string) (*RefreshToken, error) {
	return e.db.RotateRefresh(ctx, token, Rotation{Next: next, TTL: time.Hour, Grace: grace})
}

// mustRotate rotates and fails the test on an error.
func (e *graceEnv) mustRotate(token, next string) *RefreshToken {
	e.t.Helper()
	old, err := e.rotate(token, next)
	if err != nil {
		e.t.Fatalf("rotating %s into %s: %v", token, next, err)
	}
	return old
}

// live tells which of the tokens are live.
func (e *graceEnv) live(tokens ...string) []string {
	var out []string
	for _, tok := range tokens {
		if _, err := e.db.GetRefresh(ctx, tok); err == nil {
			out = append(out, tok)
		}
	}
	return out
}

// wantReuse presents token, wants ErrReplayed, and checks that the family
// is revoked.
func (e *graceEnv) wantReuse(token, next string) {
	e.t.Helper()
	if _, err := e.rotate(token, next); !errors.Is(err, ErrReplayed) {
		e.t.Fatalf("presenting %s: %v, want ErrReplayed", token, err)
	}
	if revoked, _ := e.db.IsRevoked(ctx, RevokedFamily, "fam"); !revoked {
		e.t.Fatal("the family is not revoked")
	}
}

func TestGraceRetryReplacesTheUnusedSuccessor(t *testing.T) {
	e := newGraceEnv(t)
	e.mustRotate("rt0", "rt1")
	e.c.Add(30 * time.Second)
	old := e.mustRotate("rt0", "rt2")
	if !old.Used {
		t.Error("a grace retry returned a record that does not say it was rotated before")
	}
	if live := e.live("rt0", "rt1", "rt2"); len(live) != 1 || live[0] != "rt2" {
		t.Fatalf("live after a grace retry: %v, want only rt2", live)
	}
	// The grant is exactly the original one.
	got, _ := e.db.GetRefresh(ctx, "rt2")
	if got.Scope != "openid patient/*.rs offline_access" || got.Context.Patient != "p1" || got.Context.Encounter != "e1" ||
		got.Subject != "alice" || got.ClientID != "app" || got.FamilyID != "fam" {
		t.Errorf("the successor's grant differs from the original: %+v", got)
	}
	// The superseded successor is reuse: the whole family goes.
	e.wantReuse("rt1", "x")
	if live := e.live("rt2"); len(live) != 0 {
		t.Fatal("the live successor survived the reuse of a superseded one")
	}
}

func TestGraceRetryAfterTheSuccessorWasUsedIsReuse(t *testing.T) {
	e := newGraceEnv(t)
	e.mustRotate("rt0", "rt1")
	e.mustRotate("rt1", "rt2")
	e.wantReuse("rt0", "x")
	if live := e.live("rt2", "x"); len(live) != 0 {
		t.Fatalf("live after reuse: %v", live)
	}
}

func TestGraceRetryAfterThePeriodIsReuse(t *testing.T) {
	e := newGraceEnv(t)
	e.mustRotate("rt0", "rt1")
	e.c.Add(grace)
	e.wantReuse("rt0", "x")
	if live := e.live("rt1"); len(live) != 0 {
		t.Fatal("the successor survived")
	}
}

func TestGraceRetriesDoNotExtendThePeriod(t *testing.T) {
	e := newGraceEnv(t)
	e.mustRotate("rt0", "rt1")
	e.c.Add(40 * time.Second)
	e.mustRotate("rt0", "rt2")
	e.c.Add(40 * time.Second) // 80s after the first rotation
	e.wantReuse("rt0", "x")
}

func TestStrictRotationHasNoGrace(t *testing.T) {
	e := newGraceEnv(t)
	if _, err := e.db.RotateRefresh(ctx, "rt0", Rotation{Next: "rt1", TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.RotateRefresh(ctx, "rt0", Rotation{Next: "rt2", TTL: time.Hour}); !errors.Is(err, ErrReplayed) {
		t.Fatalf("strict: a second presentation: %v, want ErrReplayed", err)
	}
	if live := e.live("rt1", "rt2"); len(live) != 0 {
		t.Fatalf("strict: live after reuse: %v", live)
	}
}

func TestGraceRetryCheck(t *testing.T) {
	e := newGraceEnv(t)
	e.mustRotate("rt0", "rt1")
	// A check that fails for another reason leaves everything as it was.
	boom := errors.New("boom")
	var sawUsed bool
	_, err := e.db.RotateRefresh(ctx, "rt0", Rotation{Next: "rt2", TTL: time.Hour, Grace: grace,
		Check: func(old *RefreshToken) (*RefreshToken, error) { sawUsed = old.Used; return nil, boom }})
	if !errors.Is(err, boom) || !sawUsed {
		t.Fatalf("check error: %v (check saw Used=%t)", err, sawUsed)
	}
	if live := e.live("rt1", "rt2"); len(live) != 1 || live[0] != "rt1" {
		t.Fatalf("live after a refused retry: %v, want rt1", live)
	}
	// A check that calls it reuse revokes the family.
	_, err = e.db.RotateRefresh(ctx, "rt0", Rotation{Next: "rt3", TTL: time.Hour, Grace: grace,
		Check: func(*RefreshToken) (*RefreshToken, error) { return nil, ErrReplayed }})
	if !errors.Is(err, ErrReplayed) {
		t.Fatalf("check says reuse: %v", err)
	}
	if live := e.live("rt1", "rt3"); len(live) != 0 {
		t.Fatalf("live after reuse: %v", live)
	}
}
