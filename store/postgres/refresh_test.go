package postgres_test

import (
	"errors"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/store"
	"github.com/smartcaddy/smartauth/store/postgres"
)

// graceEnv is a store with one refresh token "rt0" of family "fam" and a
// settable clock, for RotateRefresh's rules (as store/refresh_test.go
// checks them on Badger).
type graceEnv struct {
	t  *testing.T
	db *postgres.DB
	c  *clock
}

// grace is the grace period of these tests.
const grace = time.Minute

func newGraceEnv(t *testing.T) *graceEnv {
	c := newClock()
	e := &graceEnv{t: t, db: open(t, c), c: c}
	rec := &store.RefreshToken{FamilyID: "fam", ClientID: "app", Subject: "alice", Scope: "openid offline_access",
		Context: store.LaunchContext{Patient: "p1"}}
	if err := e.db.SaveRefresh(ctx, "rt0", rec, time.Hour); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *graceEnv) rotate(token, next string) (*store.RefreshToken, error) {
	return e.db.RotateRefresh(ctx, token, store.Rotation{Next: next, TTL: time.Hour, Grace: grace})
}

func (e *graceEnv) mustRotate(token, next string) *store.RefreshToken {
	e.t.Helper()
	old, err := e.rotate(token, next)
	if err != nil {
		e.t.Fatalf("rotating %s into %s: %v", token, next, err)
	}
	return old
}

func (e *graceEnv) live(tokens ...string) []string {
	var out []string
	for _, tok := range tokens {
		if _, err := e.db.GetRefresh(ctx, tok); err == nil {
			out = append(out, tok)
		}
	}
	return out
}

func (e *graceEnv) wantReuse(token, next string) {
	e.t.Helper()
	if _, err := e.rotate(token, next); !errors.Is(err, store.ErrReplayed) {
		e.t.Fatalf("presenting %s: %v, want ErrReplayed", token, err)
	}
	if revoked, _ := e.db.IsRevoked(ctx, store.RevokedFamily, "fam"); !revoked {
		e.t.Fatal("the family is not revoked")
	}
}

func TestRotateAndGet(t *testing.T) {
	e := newGraceEnv(t)
	got, err := e.db.GetRefresh(ctx, "rt0")
	if err != nil || got.Subject != "alice" || !got.IssuedAt.Equal(e.c.Now()) {
		t.Fatalf("GetRefresh: %+v, %v", got, err)
	}
	e.c.Advance(time.Second)
	old := e.mustRotate("rt0", "rt1")
	if old.Used || old.Context.Patient != "p1" {
		t.Fatalf("old record: %+v", old)
	}
	next, err := e.db.GetRefresh(ctx, "rt1")
	if err != nil || next.FamilyID != "fam" || !next.IssuedAt.Equal(e.c.Now()) || next.Used {
		t.Fatalf("successor: %+v, %v", next, err)
	}
	if live := e.live("rt0", "rt1"); len(live) != 1 || live[0] != "rt1" {
		t.Fatalf("live: %v", live)
	}
	e.c.Advance(time.Hour)
	if _, err := e.rotate("rt1", "rt2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired token: %v", err)
	}
}

func TestGraceRetryReplacesTheUnusedSuccessor(t *testing.T) {
	e := newGraceEnv(t)
	e.mustRotate("rt0", "rt1")
	e.c.Advance(30 * time.Second)
	if old := e.mustRotate("rt0", "rt2"); !old.Used {
		t.Error("a grace retry returned a record that does not say it was rotated before")
	}
	if live := e.live("rt0", "rt1", "rt2"); len(live) != 1 || live[0] != "rt2" {
		t.Fatalf("live after a grace retry: %v, want only rt2", live)
	}
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

func TestGraceRetriesDoNotExtendThePeriod(t *testing.T) {
	e := newGraceEnv(t)
	e.mustRotate("rt0", "rt1")
	e.c.Advance(40 * time.Second)
	e.mustRotate("rt0", "rt2")
	e.c.Advance(20 * time.Second) // exactly the period after the first rotation
	e.wantReuse("rt0", "x")
	rev, err := e.db.Revocation(ctx, store.RevokedFamily, "fam")
	if err != nil || rev.Until.Before(e.c.Now().Add(time.Hour)) {
		t.Fatalf("family revocation: %+v, %v; want it to last the successor's lifetime", rev, err)
	}
}

func TestGraceRetryCheck(t *testing.T) {
	e := newGraceEnv(t)
	e.mustRotate("rt0", "rt1")
	boom := errors.New("boom")
	var sawUsed bool
	_, err := e.db.RotateRefresh(ctx, "rt0", store.Rotation{Next: "rt2", TTL: time.Hour, Grace: grace,
		Check: func(old *store.RefreshToken) (*store.RefreshToken, error) { sawUsed = old.Used; return nil, boom }})
	if err != boom || !sawUsed {
		t.Fatalf("check error: %v (check saw Used=%t)", err, sawUsed)
	}
	if live := e.live("rt1", "rt2"); len(live) != 1 || live[0] != "rt1" {
		t.Fatalf("live after a refused retry: %v, want rt1", live)
	}
	_, err = e.db.RotateRefresh(ctx, "rt0", store.Rotation{Next: "rt3", TTL: time.Hour, Grace: grace,
		Check: func(*store.RefreshToken) (*store.RefreshToken, error) { return nil, store.ErrReplayed }})
	if !errors.Is(err, store.ErrReplayed) {
		t.Fatalf("check says reuse: %v", err)
	}
	if live := e.live("rt1", "rt3"); len(live) != 0 {
		t.Fatalf("live after reuse: %v", live)
	}
}

func TestCheckShapesTheSuccessor(t *testing.T) {
	e := newGraceEnv(t)
	_, err := e.db.RotateRefresh(ctx, "rt0", store.Rotation{Next: "rt1", TTL: time.Hour,
		Check: func(old *store.RefreshToken) (*store.RefreshToken, error) {
			s := *old
			s.Scope = "openid"
			s.FamilyID = "other" // ignored: the family is the old one's
			return &s, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := e.db.GetRefresh(ctx, "rt1"); err != nil || got.Scope != "openid" || got.FamilyID != "fam" {
		t.Fatalf("successor: %+v, %v", got, err)
	}
}

func TestStrictConcurrentRotationOneWinner(t *testing.T) {
	e := newGraceEnv(t)
	errs := race(50, func(i int) error {
		_, err := e.db.RotateRefresh(ctx, "rt0", store.Rotation{Next: "n" + string(rune('A'+i)), TTL: time.Hour})
		return err
	})
	// The first reuse revokes the family; presentations after that find
	// a revoked family (ErrNotFound), as on Badger.
	if m := count(errs); m["ok"] != 1 || m[store.ErrReplayed.Error()] < 1 || m[store.ErrReplayed.Error()]+m[store.ErrNotFound.Error()] != 49 {
		t.Fatalf("50 rotations: %v", m)
	}
	if revoked, _ := e.db.IsRevoked(ctx, store.RevokedFamily, "fam"); !revoked {
		t.Fatal("reuse did not revoke the family")
	}
}

func TestGraceConcurrentRotationLeavesOneLive(t *testing.T) {
	e := newGraceEnv(t)
	names := make([]string, 20)
	for i := range names {
		names[i] = "g" + string(rune('A'+i))
	}
	errs := race(len(names), func(i int) error { _, err := e.rotate("rt0", names[i]); return err })
	if m := count(errs); m["ok"] != len(names) {
		t.Fatalf("20 retries within the grace period: %v", m)
	}
	if live := e.live(names...); len(live) != 1 {
		t.Fatalf("live successors: %v, want exactly one", live)
	}
}

func TestClientRevocationCoversEarlierTokens(t *testing.T) {
	e := newGraceEnv(t)
	e.c.Advance(time.Second)
	if err := e.db.Revoke(ctx, store.RevokedClient, "app", e.c.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.GetRefresh(ctx, "rt0"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("token issued before the client revocation: %v", err)
	}
	if _, err := e.rotate("rt0", "rt1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rotating it: %v", err)
	}
	e.c.Advance(time.Second)
	if err := e.db.SaveRefresh(ctx, "later", &store.RefreshToken{FamilyID: "f2", ClientID: "app", Subject: "alice"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.GetRefresh(ctx, "later"); err != nil {
		t.Fatalf("token issued after the client revocation: %v", err)
	}
	if gs, err := e.db.UserGrants(ctx, "alice"); err != nil || len(gs) != 1 || len(gs[0].Families) != 1 || gs[0].Families[0] != "f2" {
		t.Fatalf("UserGrants: %+v, %v", gs, err)
	}
}
