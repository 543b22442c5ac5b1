package storetest

import (
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/store"
)

// revocationCases check Revoke, IsRevoked, Revocation and RevokedSince.
var revocationCases = []testCase{
	{"RevokeAndLookUp", func(t *testing.T, e *env) {
		if revoked, err := e.s.IsRevoked(ctx, store.RevokedToken, "jti-1"); err != nil || revoked {
			t.Fatalf("IsRevoked before any revocation: %t %v", revoked, err)
		}
		_, err := e.s.Revocation(ctx, store.RevokedToken, "jti-1")
		e.wantErr(err, store.ErrNotFound, "Revocation before any")
		until := e.c.Now().Add(time.Hour)
		e.must(e.s.Revoke(ctx, store.RevokedToken, "jti-1", until), "Revoke")
		if revoked, err := e.s.IsRevoked(ctx, store.RevokedToken, "jti-1"); err != nil || !revoked {
			t.Fatalf("IsRevoked after Revoke: %t %v", revoked, err)
		}
		rev, err := e.s.Revocation(ctx, store.RevokedToken, "jti-1")
		e.must(err, "Revocation")
		if rev.Kind != store.RevokedToken || rev.ID != "jti-1" || !rev.At.Equal(e.c.Now()) || rev.Until.Before(until) {
			t.Errorf("revocation %+v: want kind jti, id jti-1, at now, until at or after %v", rev, until)
		}
		// The kinds are separate: the same identifier of another kind
		// is not revoked.
		for _, k := range []store.RevocationKind{store.RevokedFamily, store.RevokedClient} {
			if revoked, err := e.s.IsRevoked(ctx, k, "jti-1"); err != nil || revoked {
				t.Errorf("IsRevoked(%s, jti-1): %t %v", k, revoked, err)
			}
		}
		if revoked, err := e.s.IsRevoked(ctx, store.RevokedToken, "jti-2"); err != nil || revoked {
			t.Errorf("another jti: %t %v", revoked, err)
		}
		// The empty identifier names nothing.
		if revoked, err := e.s.IsRevoked(ctx, store.RevokedToken, ""); err != nil || revoked {
			t.Errorf("the empty id: %t %v", revoked, err)
		}
	}},
	{"SecondRevocationNeverNarrows", func(t *testing.T, e *env) {
		e.must(e.s.Revoke(ctx, store.RevokedFamily, "fam", e.c.Now().Add(2*time.Hour)), "Revoke")
		first, err := e.s.Revocation(ctx, store.RevokedFamily, "fam")
		e.must(err, "Revocation")
		e.c.Add(time.Second)
		e.must(e.s.Revoke(ctx, store.RevokedFamily, "fam", e.c.Now().Add(time.Minute)), "a shorter revocation")
		second, err := e.s.Revocation(ctx, store.RevokedFamily, "fam")
		e.must(err, "Revocation")
		if second.Until.Before(first.Until) {
			t.Errorf("a shorter second revocation narrowed the first: %+v then %+v", first, second)
		}
		e.must(e.s.Revoke(ctx, store.RevokedFamily, "fam", e.c.Now().Add(3*time.Hour)), "a longer revocation")
		third, err := e.s.Revocation(ctx, store.RevokedFamily, "fam")
		e.must(err, "Revocation")
		if third.Until.Before(e.c.Now().Add(3 * time.Hour)) {
			t.Errorf("a longer second revocation was not kept: %+v", third)
		}
		e.c.Add(2*time.Hour + time.Minute)
		if revoked, err := e.s.IsRevoked(ctx, store.RevokedFamily, "fam"); err != nil || !revoked {
			t.Errorf("the longer revocation ended early: %t %v", revoked, err)
		}
	}},
	{"ByIssueTimeLaterAtRecorded", func(t *testing.T, e *env) {
		// A client's or a user's revocation covers the tokens issued up
		// to its At: a second one, even shorter, must move At forward
		// (and keep the longer Until) and show up in the log.
		for _, k := range []store.RevocationKind{store.RevokedClient, store.RevokedUser} {
			e.must(e.s.Revoke(ctx, k, "who", e.c.Now().Add(2*time.Hour)), "Revoke")
			first, err := e.s.Revocation(ctx, k, "who")
			e.must(err, "Revocation")
			e.c.Add(5 * time.Second)
			since := e.c.Now()
			e.must(e.s.Revoke(ctx, k, "who", e.c.Now().Add(time.Minute)), "a later, shorter revocation")
			second, err := e.s.Revocation(ctx, k, "who")
			e.must(err, "Revocation")
			if !second.At.After(first.At) || second.Until.Before(first.Until) {
				t.Errorf("%s: second revocation %+v after %+v: want a later At and Until kept", k, second, first)
			}
			revs, err := e.s.RevokedSince(ctx, since)
			e.must(err, "RevokedSince")
			if len(revs) != 1 || revs[0].Kind != k || !revs[0].At.Equal(second.At) {
				t.Errorf("%s: RevokedSince after the second revocation: %+v", k, revs)
			}
			// The kinds stay apart.
			other := store.RevokedUser
			if k == store.RevokedUser {
				other = store.RevokedClient
			}
			if k == store.RevokedClient {
				if revoked, err := e.s.IsRevoked(ctx, other, "who"); err != nil || revoked {
					t.Errorf("a client revocation revoked the user of the same name: %t %v", revoked, err)
				}
			}
		}
	}},
	{"RevokedSinceOldestFirst", func(t *testing.T, e *env) {
		ids := []string{"a", "b", "c", "d"}
		kinds := []store.RevocationKind{store.RevokedToken, store.RevokedFamily, store.RevokedClient, store.RevokedToken}
		var at []time.Time
		for i, id := range ids {
			at = append(at, e.c.Now())
			e.must(e.s.Revoke(ctx, kinds[i], id, e.c.Now().Add(time.Hour)), "Revoke")
			e.c.Add(time.Second)
		}
		revs, err := e.s.RevokedSince(ctx, at[0])
		e.must(err, "RevokedSince")
		if len(revs) != len(ids) {
			t.Fatalf("RevokedSince(first): %+v", revs)
		}
		for i, r := range revs {
			if r.ID != ids[i] || r.Kind != kinds[i] || !r.At.Equal(at[i]) || r.Until.Before(at[i].Add(time.Hour)) {
				t.Errorf("entry %d: %+v, want %s %s at %v", i, r, kinds[i], ids[i], at[i])
			}
		}
		// since is inclusive: entries at or after it.
		revs, err = e.s.RevokedSince(ctx, at[2])
		e.must(err, "RevokedSince")
		if len(revs) != 2 || revs[0].ID != "c" || revs[1].ID != "d" {
			t.Errorf("RevokedSince(third): %+v, want c, d", revs)
		}
		revs, err = e.s.RevokedSince(ctx, at[2].Add(time.Millisecond))
		e.must(err, "RevokedSince")
		if len(revs) != 1 || revs[0].ID != "d" {
			t.Errorf("RevokedSince(just after the third): %+v, want d", revs)
		}
		revs, err = e.s.RevokedSince(ctx, e.c.Now())
		if err != nil || len(revs) != 0 {
			t.Errorf("RevokedSince(now): %+v %v, want none", revs, err)
		}
	}},
	{"RevokedSinceDropsEnded", func(t *testing.T, e *env) {
		e.must(e.s.Revoke(ctx, store.RevokedToken, "short", e.c.Now().Add(time.Minute)), "Revoke")
		e.must(e.s.Revoke(ctx, store.RevokedToken, "long", e.c.Now().Add(time.Hour)), "Revoke")
		e.c.Add(2 * time.Minute)
		revs, err := e.s.RevokedSince(ctx, start)
		if err != nil || len(revs) != 1 || revs[0].ID != "long" {
			t.Errorf("RevokedSince after one ended: %+v %v, want long", revs, err)
		}
	}},
}
