package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/smartcaddy/smartauth/store"
)

// revocationCases check Revoke, IsRevoked, Revocation, RevokedSince and
// TokenRevoked.
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
	// TokenRevoked is one read that must answer as the single reads
	// (IsRevoked, Revocation) the first use of an access token made
	// before it.
	{"TokenRevokedEveryKind", func(t *testing.T, e *env) {
		iat := e.c.Now().Add(time.Minute)
		revoke := func(kind store.RevocationKind, id string, at time.Time, life time.Duration) {
			t.Helper()
			setClock(e.c, at)
			e.must(e.s.Revoke(ctx, kind, id, at.Add(life)), "Revoke")
		}
		revoke(store.RevokedToken, "x", iat.Add(10*time.Second), time.Hour)   // a jti: whenever made
		revoke(store.RevokedFamily, "y", iat.Add(-10*time.Second), time.Hour) // a family: whenever made
		revoke(store.RevokedClient, "x", iat.Add(-time.Second), time.Hour)    // before the issue: not covered
		revoke(store.RevokedClient, "c", iat, time.Hour)                      // in the second: covered
		revoke(store.RevokedUser, "u", iat.Add(time.Second/2), time.Hour)     // after: covered
		revoke(store.RevokedUser, "v", iat.Add(-time.Second/2), time.Hour)    // before: not covered
		revoke(store.RevokedToken, "gone", iat.Add(-10*time.Second), time.Minute)
		revoke(store.RevokedFamily, "ended", iat.Add(-10*time.Second), time.Minute)
		revoke(store.RevokedClient, "ended", iat, time.Minute)
		revoke(store.RevokedUser, "ended", iat, time.Minute)
		for _, k := range []store.RevocationKind{store.RevokedToken, store.RevokedFamily, store.RevokedClient, store.RevokedUser} {
			revoke(k, "", iat, time.Hour) // the empty id names nothing
		}
		setClock(e.c, iat.Add(2*time.Minute)) // the one-minute revocations have ended
		q := func(jti, family, client, user string) store.TokenRevocationQuery {
			return store.TokenRevocationQuery{JTI: jti, Family: family, Client: client, User: user, IssuedAt: iat}
		}
		noIat := q("", "", "", "v")
		noIat.IssuedAt = time.Time{}
		for _, c := range []struct {
			what string
			q    store.TokenRevocationQuery
			want bool
		}{
			{"a revoked jti", q("x", "", "", ""), true},
			{"a jti named like a revoked family, a family like a revoked jti", q("y", "x", "", ""), false},
			{"a revoked family", q("", "y", "", ""), true},
			{"a client revoked before the issue", q("", "", "x", ""), false},
			{"a client revoked in the issue's second", q("", "", "c", ""), true},
			{"a client named like a revoked user", q("", "", "u", ""), false},
			{"a user revoked after the issue", q("", "", "", "u"), true},
			{"a user named like a revoked client", q("", "", "", "c"), false},
			{"a user revoked before the issue", q("", "", "", "v"), false},
			{"a token without iat, its user revoked", noIat, true},
			{"ended revocations", q("gone", "ended", "ended", "ended"), false},
			{"empty fields, the empty id revoked", q("", "", "", ""), false},
			{"only the last read revokes", q("z", "f", "x", "u"), true},
			{"nothing revoked", q("z", "f", "x", "v"), false},
		} {
			got, err := e.s.TokenRevoked(ctx, c.q)
			if err != nil || got != c.want {
				t.Errorf("%s: TokenRevoked(%+v) = %t, %v; want %t", c.what, c.q, got, err, c.want)
			}
			if want := singleReads(t, e.s, c.q); want != c.want {
				t.Errorf("%s: the single reads say %t, want %t", c.what, want, c.want)
			}
		}
	}},
	{"TokenRevokedAgreesWithSingleReads", func(t *testing.T, e *env) {
		base := e.c.Now()
		n := 0
		rapid.Check(t, func(rt *rapid.T) {
			n++
			// The identifiers of this run only, colliding across kinds;
			// "" is the empty identifier.
			name := func(label string) string {
				s := rapid.SampledFrom([]string{"", "a", "b", "u", "f"}).Draw(rt, label)
				if s == "" {
					return ""
				}
				return fmt.Sprintf("r%d-%s", n, s)
			}
			iat := base.Add(time.Minute)
			kinds := []store.RevocationKind{store.RevokedToken, store.RevokedFamily, store.RevokedClient, store.RevokedUser}
			offsets := []time.Duration{-10 * time.Second, -time.Second, -time.Second / 2, 0, time.Second / 2, time.Second, 10 * time.Second}
			for i := range rapid.IntRange(0, 6).Draw(rt, "revocations") {
				kind := rapid.SampledFrom(kinds).Draw(rt, fmt.Sprintf("kind%d", i))
				id := name(fmt.Sprintf("id%d", i))
				at := iat.Add(rapid.SampledFrom(offsets).Draw(rt, fmt.Sprintf("at%d", i)))
				life := rapid.SampledFrom([]time.Duration{time.Minute, time.Hour}).Draw(rt, fmt.Sprintf("life%d", i))
				setClock(e.c, at)
				if err := e.s.Revoke(ctx, kind, id, at.Add(life)); err != nil {
					rt.Fatalf("Revoke: %v", err)
				}
			}
			// Checked while every revocation is live, or once the
			// one-minute ones have ended.
			setClock(e.c, iat.Add(rapid.SampledFrom([]time.Duration{20 * time.Second, 2 * time.Minute}).Draw(rt, "checked")))
			q := store.TokenRevocationQuery{JTI: name("jti"), Family: name("family"), Client: name("client"), User: name("user")}
			if rapid.Bool().Draw(rt, "iat") {
				q.IssuedAt = iat
			}
			got, err := e.s.TokenRevoked(ctx, q)
			if err != nil {
				rt.Fatalf("TokenRevoked(%+v): %v", q, err)
			}
			if want := singleReads(rt, e.s, q); got != want {
				rt.Fatalf("TokenRevoked(%+v) = %t, the single reads say %t", q, got, want)
			}
		})
		setClock(e.c, base)
	}},
}

// singleReads is the oracle of TokenRevoked: SingleReads, failing the
// test on an error.
func singleReads(t fataler, s store.Store, q store.TokenRevocationQuery) bool {
	t.Helper()
	revoked, err := SingleReads(ctx, s, q)
	if err != nil {
		t.Fatalf("the single reads of %+v: %v", q, err)
	}
	return revoked
}

// SingleReads is the revocation check of an access token's first use as
// it was before TokenRevoked, one read per kind, stopping at the first
// that revokes: IsRevoked of the jti and of the family, then Revocation
// of the client and of the user (skipped when empty), which cover the
// tokens issued at or before their At (a token without iat counts as
// issued before any). It is TokenRevoked's oracle and the baseline of its
// benchmarks.
func SingleReads(ctx context.Context, s store.Store, q store.TokenRevocationQuery) (bool, error) {
	for _, r := range []struct {
		kind store.RevocationKind
		id   string
	}{{store.RevokedToken, q.JTI}, {store.RevokedFamily, q.Family}} {
		if revoked, err := s.IsRevoked(ctx, r.kind, r.id); err != nil || revoked {
			return revoked, err
		}
	}
	for _, r := range []struct {
		kind store.RevocationKind
		id   string
	}{{store.RevokedClient, q.Client}, {store.RevokedUser, q.User}} {
		if r.id == "" {
			continue
		}
		rev, err := s.Revocation(ctx, r.kind, r.id)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return false, err
		case !q.IssuedAt.After(rev.At):
			return true, nil
		}
	}
	return false, nil
}

// BenchTokenRevocations compares, on s, the revocation check of an
// access token's first use before TokenRevoked (reads=4: SingleReads)
// and with it (reads=1). None of the four is revoked, the common case and
// the one that reads all four; s is first given a thousand other
// revocations of every kind.
func BenchTokenRevocations(b *testing.B, s store.Store) {
	kinds := []store.RevocationKind{store.RevokedToken, store.RevokedFamily, store.RevokedClient, store.RevokedUser}
	for i := range 1000 {
		if err := s.Revoke(ctx, kinds[i%4], fmt.Sprintf("other-%d", i), time.Now().Add(time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	q := store.TokenRevocationQuery{JTI: store.NewSecret(), Family: store.NewSecret(), Client: "app", User: "alice",
		IssuedAt: time.Now().Truncate(time.Second)}
	for _, c := range []struct {
		name  string
		check func() (bool, error)
	}{
		{"reads=4", func() (bool, error) { return SingleReads(ctx, s, q) }},
		{"reads=1", func() (bool, error) { return s.TokenRevoked(ctx, q) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if revoked, err := c.check(); err != nil || revoked {
					b.Fatal(revoked, err)
				}
			}
		})
	}
}

// fataler is what singleReads needs of a *testing.T or a *rapid.T.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// setClock moves c to t.
func setClock(c *Clock, t time.Time) { c.Add(t.Sub(c.Now())) }
