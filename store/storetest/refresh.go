package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/store"
)

// grace is the refresh grace period of the grace cases.
const grace = time.Minute

// original is the record of "rt0", the first token of family "fam" in the
// refresh cases.
func original() *store.RefreshToken {
	return &store.RefreshToken{FamilyID: "fam", ClientID: "app", Subject: "alice", Scope: "openid patient/*.rs offline_access",
		Context: store.LaunchContext{Patient: "p1", Encounter: "e1"}, SessionHash: store.HashID("session"), AuthTime: start.Add(-time.Minute)}
}

// saveOriginal stores "rt0" for an hour.
func (e *env) saveOriginal() {
	e.t.Helper()
	e.must(e.s.SaveRefresh(ctx, "rt0", original(), time.Hour), "SaveRefresh rt0")
}

// rotate presents token and asks for next with the grace period.
func (e *env) rotate(token, next string) (*store.RefreshToken, error) {
	return e.s.RotateRefresh(ctx, token, store.Rotation{Next: next, TTL: time.Hour, Grace: grace})
}

// mustRotate rotates with the grace period and fails on an error.
func (e *env) mustRotate(token, next string) *store.RefreshToken {
	e.t.Helper()
	old, err := e.rotate(token, next)
	if err != nil {
		e.t.Fatalf("rotating %s into %s: %v", token, next, err)
	}
	return old
}

// live tells which of the refresh tokens GetRefresh finds.
func (e *env) live(tokens ...string) []string {
	var out []string
	for _, tok := range tokens {
		if _, err := e.s.GetRefresh(ctx, tok); err == nil {
			out = append(out, tok)
		}
	}
	return out
}

// wantReuse presents token, wants ErrReplayed, and checks that family
// "fam" is revoked.
func (e *env) wantReuse(token, next string) {
	e.t.Helper()
	if _, err := e.rotate(token, next); !errors.Is(err, store.ErrReplayed) {
		e.t.Fatalf("presenting %s: %v, want ErrReplayed", token, err)
	}
	if revoked, err := e.s.IsRevoked(ctx, store.RevokedFamily, "fam"); err != nil || !revoked {
		e.t.Fatalf("the family is not revoked (%v)", err)
	}
}

// refreshCases check rotation, reuse detection, the grace rules of
// store.Rotation and RevokedClient.
var refreshCases = []testCase{
	{"SaveAndGet", func(t *testing.T, e *env) {
		e.saveOriginal()
		got, err := e.s.GetRefresh(ctx, "rt0")
		e.must(err, "GetRefresh")
		want := original()
		want.IssuedAt = e.c.Now() // filled in from the store's clock
		same(t, "the stored refresh token", got, want)
		// An issue time the caller sets is kept.
		rec := original()
		rec.FamilyID, rec.IssuedAt = "f2", start.Add(-time.Hour)
		e.must(e.s.SaveRefresh(ctx, "rt-set", rec, time.Hour), "SaveRefresh")
		got, err = e.s.GetRefresh(ctx, "rt-set")
		e.must(err, "GetRefresh")
		same(t, "a refresh token with its issue time", got, rec)
		_, err = e.s.GetRefresh(ctx, "never-issued")
		e.wantErr(err, store.ErrNotFound, "GetRefresh of an unknown token")
		_, err = e.s.GetRefresh(ctx, store.HashID("rt0"))
		e.wantErr(err, store.ErrNotFound, "GetRefresh by the stored hash")
	}},
	{"Rotate", func(t *testing.T, e *env) {
		e.saveOriginal()
		e.c.Add(time.Second)
		old, err := e.s.RotateRefresh(ctx, "rt0", store.Rotation{Next: "rt1", TTL: time.Hour})
		e.must(err, "RotateRefresh")
		want := original()
		want.IssuedAt = start
		same(t, "the record RotateRefresh returns", old, want)
		got, err := e.s.GetRefresh(ctx, "rt1")
		e.must(err, "the successor")
		want.IssuedAt = e.c.Now() // the successor is issued now
		same(t, "the successor", got, want)
		_, err = e.s.GetRefresh(ctx, "rt0")
		e.wantErr(err, store.ErrNotFound, "GetRefresh of the rotated token")
		_, err = e.s.RotateRefresh(ctx, "unknown", store.Rotation{Next: "x", TTL: time.Hour})
		e.wantErr(err, store.ErrNotFound, "RotateRefresh of an unknown token")
	}},
	{"CheckShapesTheSuccessor", func(t *testing.T, e *env) {
		e.saveOriginal()
		var seen *store.RefreshToken
		_, err := e.s.RotateRefresh(ctx, "rt0", store.Rotation{Next: "rt1", TTL: time.Hour, Check: func(old *store.RefreshToken) (*store.RefreshToken, error) {
			seen = old
			n := *old
			n.Scope = "patient/*.rs"
			n.FamilyID = "another" // the family is the presented token's
			return &n, nil
		}})
		e.must(err, "RotateRefresh")
		if seen == nil || seen.Scope != original().Scope || seen.Used {
			t.Errorf("Check saw %+v", seen)
		}
		got, err := e.s.GetRefresh(ctx, "rt1")
		e.must(err, "the successor")
		if got.Scope != "patient/*.rs" || got.FamilyID != "fam" {
			t.Errorf("successor %+v: want Check's scope and the old family", got)
		}
	}},
	{"CheckRefusalLeavesStoreUntouched", func(t *testing.T, e *env) {
		e.saveOriginal()
		refuse := errors.New("wrong client")
		_, err := e.s.RotateRefresh(ctx, "rt0", store.Rotation{Next: "rt1", TTL: time.Hour,
			Check: func(*store.RefreshToken) (*store.RefreshToken, error) { return nil, refuse }})
		e.wantErr(err, refuse, "a refusing Check's error")
		if live := e.live("rt0", "rt1"); len(live) != 1 || live[0] != "rt0" {
			t.Fatalf("live after a refused rotation: %v, want rt0", live)
		}
		// Not a reuse either: the token still rotates.
		_, err = e.s.RotateRefresh(ctx, "rt0", store.Rotation{Next: "rt2", TTL: time.Hour})
		e.must(err, "rotating after a refused rotation")
	}},
	{"ReuseRevokesTheFamily", func(t *testing.T, e *env) {
		e.saveOriginal()
		_, err := e.s.RotateRefresh(ctx, "rt0", store.Rotation{Next: "rt1", TTL: time.Hour})
		e.must(err, "RotateRefresh")
		old, err := e.s.RotateRefresh(ctx, "rt0", store.Rotation{Next: "rt9", TTL: time.Hour})
		e.wantErr(err, store.ErrReplayed, "a second presentation")
		if old == nil || old.FamilyID != "fam" || old.ClientID != "app" {
			t.Errorf("reuse returned %+v, want the reused record", old)
		}
		if live := e.live("rt0", "rt1", "rt9"); len(live) != 0 {
			t.Fatalf("live after reuse: %v", live)
		}
		if revoked, err := e.s.IsRevoked(ctx, store.RevokedFamily, "fam"); err != nil || !revoked {
			t.Fatalf("family revoked=%t %v", revoked, err)
		}
		revs, err := e.s.RevokedSince(ctx, start)
		if err != nil || len(revs) != 1 || revs[0].Kind != store.RevokedFamily || revs[0].ID != "fam" {
			t.Fatalf("revocation log: %+v %v", revs, err)
		}
		// Members of a revoked family neither rotate nor count as reuse.
		_, err = e.s.RotateRefresh(ctx, "rt1", store.Rotation{Next: "rt2", TTL: time.Hour})
		e.wantErr(err, store.ErrNotFound, "rotating a member of a revoked family")
	}},
	{"ReuseRevocationOutlivesTheChain", func(t *testing.T, e *env) {
		e.saveOriginal()
		e.c.Add(50 * time.Minute)
		_, err := e.s.RotateRefresh(ctx, "rt0", store.Rotation{Next: "rt1", TTL: time.Hour})
		e.must(err, "RotateRefresh")
		// rt0 expires in 10 minutes, rt1 in an hour: reusing rt0 must
		// revoke the family past rt0's own expiry.
		_, err = e.s.RotateRefresh(ctx, "rt0", store.Rotation{Next: "x", TTL: time.Hour})
		e.wantErr(err, store.ErrReplayed, "reuse")
		e.c.Add(59 * time.Minute)
		if revoked, err := e.s.IsRevoked(ctx, store.RevokedFamily, "fam"); err != nil || !revoked {
			t.Fatal("the family revocation ended before the successor's expiry")
		}
		_, err = e.s.GetRefresh(ctx, "rt1")
		e.wantErr(err, store.ErrNotFound, "the successor after reuse")
	}},
	{"RevokedFamily", func(t *testing.T, e *env) {
		e.saveOriginal()
		e.must(e.s.Revoke(ctx, store.RevokedFamily, "fam", e.c.Now().Add(time.Hour)), "Revoke")
		_, err := e.s.GetRefresh(ctx, "rt0")
		e.wantErr(err, store.ErrNotFound, "GetRefresh of a revoked family")
		_, err = e.s.RotateRefresh(ctx, "rt0", store.Rotation{Next: "rt1", TTL: time.Hour})
		e.wantErr(err, store.ErrNotFound, "RotateRefresh of a revoked family")
	}},
	{"GraceRetryReplacesTheUnusedSuccessor", func(t *testing.T, e *env) {
		e.saveOriginal()
		e.mustRotate("rt0", "rt1")
		e.c.Add(30 * time.Second)
		if old := e.mustRotate("rt0", "rt2"); !old.Used {
			t.Error("a grace retry returned a record that does not say it was rotated before")
		}
		if live := e.live("rt0", "rt1", "rt2"); len(live) != 1 || live[0] != "rt2" {
			t.Fatalf("live after a grace retry: %v, want only rt2", live)
		}
		got, err := e.s.GetRefresh(ctx, "rt2")
		e.must(err, "rt2")
		want := original()
		want.IssuedAt = e.c.Now()
		same(t, "the grace successor's grant", got, want)
		// The superseded successor is reuse: the whole family goes.
		e.wantReuse("rt1", "x")
		if live := e.live("rt2"); len(live) != 0 {
			t.Fatal("the live successor survived the reuse of a superseded one")
		}
	}},
	{"GraceRetryAfterTheSuccessorWasUsedIsReuse", func(t *testing.T, e *env) {
		e.saveOriginal()
		e.mustRotate("rt0", "rt1")
		e.mustRotate("rt1", "rt2")
		e.wantReuse("rt0", "x")
		if live := e.live("rt2", "x"); len(live) != 0 {
			t.Fatalf("live after reuse: %v", live)
		}
	}},
	{"GraceRetryAfterThePeriodIsReuse", func(t *testing.T, e *env) {
		e.saveOriginal()
		e.mustRotate("rt0", "rt1")
		e.c.Add(grace)
		e.wantReuse("rt0", "x")
		if live := e.live("rt1"); len(live) != 0 {
			t.Fatal("the successor survived")
		}
	}},
	{"GraceRetriesDoNotExtendThePeriod", func(t *testing.T, e *env) {
		e.saveOriginal()
		e.mustRotate("rt0", "rt1")
		e.c.Add(40 * time.Second)
		e.mustRotate("rt0", "rt2")
		e.c.Add(40 * time.Second) // 80s after the first rotation
		e.wantReuse("rt0", "x")
	}},
	{"StrictRotationHasNoGrace", func(t *testing.T, e *env) {
		e.saveOriginal()
		_, err := e.s.RotateRefresh(ctx, "rt0", store.Rotation{Next: "rt1", TTL: time.Hour})
		e.must(err, "RotateRefresh")
		_, err = e.s.RotateRefresh(ctx, "rt0", store.Rotation{Next: "rt2", TTL: time.Hour})
		e.wantErr(err, store.ErrReplayed, "strict: a second presentation")
		if live := e.live("rt1", "rt2"); len(live) != 0 {
			t.Fatalf("strict: live after reuse: %v", live)
		}
	}},
	{"GraceRetryCheck", func(t *testing.T, e *env) {
		e.saveOriginal()
		e.mustRotate("rt0", "rt1")
		boom := errors.New("boom")
		var sawUsed bool
		_, err := e.s.RotateRefresh(ctx, "rt0", store.Rotation{Next: "rt2", TTL: time.Hour, Grace: grace,
			Check: func(old *store.RefreshToken) (*store.RefreshToken, error) { sawUsed = old.Used; return nil, boom }})
		if !errors.Is(err, boom) || !sawUsed {
			t.Fatalf("check error: %v (check saw Used=%t)", err, sawUsed)
		}
		if live := e.live("rt1", "rt2"); len(live) != 1 || live[0] != "rt1" {
			t.Fatalf("live after a refused retry: %v, want rt1", live)
		}
		_, err = e.s.RotateRefresh(ctx, "rt0", store.Rotation{Next: "rt3", TTL: time.Hour, Grace: grace,
			Check: func(*store.RefreshToken) (*store.RefreshToken, error) { return nil, store.ErrReplayed }})
		e.wantErr(err, store.ErrReplayed, "a check that calls a retry reuse")
		if live := e.live("rt1", "rt3"); len(live) != 0 {
			t.Fatalf("live after reuse: %v", live)
		}
	}},
	{"RevokedClient", revokedClientCase},
}

// revokedClientCase: a RevokedClient revocation kills the client's tokens
// issued at or before it, and only those.
func revokedClientCase(t *testing.T, e *env) {
	e.must(e.s.SaveRefresh(ctx, "old", &store.RefreshToken{FamilyID: "f1", ClientID: "app"}, time.Hour), "SaveRefresh")
	e.must(e.s.SaveRefresh(ctx, "other", &store.RefreshToken{FamilyID: "f2", ClientID: "other-app"}, time.Hour), "SaveRefresh")
	_, err := e.s.Revocation(ctx, store.RevokedClient, "app")
	e.wantErr(err, store.ErrNotFound, "Revocation before any")
	e.c.Add(time.Second)
	e.must(e.s.Revoke(ctx, store.RevokedClient, "app", e.c.Now().Add(time.Hour)), "Revoke")
	rev, err := e.s.Revocation(ctx, store.RevokedClient, "app")
	if err != nil || !rev.At.Equal(e.c.Now()) || rev.Kind != store.RevokedClient || rev.ID != "app" {
		t.Fatalf("revocation: %+v %v", rev, err)
	}
	// Issued at the revocation's very instant: covered too.
	e.must(e.s.SaveRefresh(ctx, "same-instant", &store.RefreshToken{FamilyID: "f0", ClientID: "app"}, time.Hour), "SaveRefresh")
	for _, tok := range []string{"old", "same-instant"} {
		_, err = e.s.GetRefresh(ctx, tok)
		e.wantErr(err, store.ErrNotFound, "GetRefresh of a revoked client's token "+tok)
		_, err = e.s.RotateRefresh(ctx, tok, store.Rotation{Next: tok + "-next", TTL: time.Hour})
		e.wantErr(err, store.ErrNotFound, "RotateRefresh of a revoked client's token "+tok)
	}
	if _, err := e.s.GetRefresh(ctx, "other"); err != nil {
		t.Errorf("another client's token: %v", err)
	}
	// Tokens issued after the revocation live; rotation stamps the
	// successor's issue time.
	e.c.Add(time.Second)
	e.must(e.s.SaveRefresh(ctx, "new", &store.RefreshToken{FamilyID: "f3", ClientID: "app"}, time.Hour), "SaveRefresh")
	_, err = e.s.RotateRefresh(ctx, "new", store.Rotation{Next: "newer", TTL: time.Hour})
	e.must(err, "rotating a token issued after the revocation")
	_, err = e.s.GetRefresh(ctx, "newer")
	e.must(err, "its successor")
	// A second revocation covers at least what the first did, even with
	// a clock stepped back: At and Until never move back.
	first, err := e.s.Revocation(ctx, store.RevokedClient, "app")
	e.must(err, "Revocation")
	e.c.Add(-time.Hour)
	e.must(e.s.Revoke(ctx, store.RevokedClient, "app", e.c.Now().Add(time.Minute)), "Revoke again")
	second, err := e.s.Revocation(ctx, store.RevokedClient, "app")
	if err != nil || second.At.Before(first.At) || second.Until.Before(first.Until) {
		t.Errorf("second revocation %+v narrowed the first %+v (%v)", second, first, err)
	}
	// A later revocation covers the tokens issued since the first.
	e.c.Add(time.Hour + time.Second)
	e.must(e.s.Revoke(ctx, store.RevokedClient, "app", e.c.Now().Add(time.Hour)), "Revoke later")
	_, err = e.s.GetRefresh(ctx, "newer")
	e.wantErr(err, store.ErrNotFound, "a token issued between two client revocations")
}
