package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestRevFilterReopen: the filter is rebuilt from the directory, so that
// a revocation of every kind made before a restart still reaches
// TokenRevoked, and an identifier nothing revoked does not.
func TestRevFilterReopen(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "db")
	d, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(time.Hour)
	for kind, id := range map[RevocationKind]string{RevokedToken: "j1", RevokedFamily: "f1", RevokedClient: "c1", RevokedUser: "u1"} {
		if err := d.Revoke(ctx, kind, id, until); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if d, err = Open(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	iat := time.Now().Add(-time.Minute).Truncate(time.Second)
	for _, q := range []TokenRevocationQuery{
		{JTI: "j1"}, {JTI: "x", Family: "f1"}, {JTI: "x", Client: "c1", IssuedAt: iat}, {JTI: "x", Client: "c", User: "u1", IssuedAt: iat},
	} {
		if revoked, err := d.TokenRevoked(ctx, q); err != nil || !revoked {
			t.Errorf("after reopening, %+v: revoked %v, %v", q, revoked, err)
		}
	}
	if revoked, err := d.TokenRevoked(ctx, TokenRevocationQuery{JTI: "j2", Family: "f2", Client: "c2", User: "u2", IssuedAt: iat}); err != nil || revoked {
		t.Errorf("nothing revoked: %v, %v", revoked, err)
	}
}

// TestRevFilterConcurrent: a revocation is seen by every TokenRevoked that
// starts after Revoke returns, while other goroutines read and revoke at
// the same time (run with -race).
func TestRevFilterConcurrent(t *testing.T) {
	ctx := context.Background()
	d, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				id := fmt.Sprintf("w%d-%d", w, i)
				kind := []RevocationKind{RevokedToken, RevokedFamily}[i%2]
				q := TokenRevocationQuery{JTI: id}
				if kind == RevokedFamily {
					q = TokenRevocationQuery{JTI: "other", Family: id}
				}
				if revoked, err := d.TokenRevoked(ctx, q); err != nil || revoked {
					t.Errorf("%s before its revocation: %v, %v", id, revoked, err)
					return
				}
				if err := d.Revoke(ctx, kind, id, time.Now().Add(time.Hour)); err != nil {
					t.Error(err)
					return
				}
				if revoked, err := d.TokenRevoked(ctx, q); err != nil || !revoked {
					t.Errorf("%s after its revocation: %v, %v", id, revoked, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestRevFilterNeverForgetsALiveRevocation: over generated sequences of
// revocations (ids colliding, Until before and after now) and clock moves
// (forward, and back to less than revFilterMargin before the latest time
// seen), the filter answers
// "certainly not revoked" for no identifier whose latest Until is still
// ahead of the clock; and it gives up, answering "maybe" to everything,
// rather than hold more than its bound.
func TestRevFilterNeverForgetsALiveRevocation(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		f := newRevFilter()
		f.max = rapid.IntRange(2, 8).Draw(rt, "max")
		now := time.Unix(1_800_000_000, 0)
		high := now // the latest time the clock showed
		latest := map[string]time.Time{}
		for i := range rapid.IntRange(1, 40).Draw(rt, "ops") {
			switch rapid.IntRange(0, 2).Draw(rt, fmt.Sprintf("op%d", i)) {
			case 0, 1:
				id := rapid.SampledFrom([]string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}).Draw(rt, fmt.Sprintf("id%d", i))
				until := now.Add(time.Duration(rapid.IntRange(-3, 3).Draw(rt, fmt.Sprintf("until%d", i))) * time.Hour)
				f.add(RevokedToken, id, until, now)
				if until.After(latest[id]) {
					latest[id] = until
				}
			case 2:
				if step := rapid.IntRange(-50, 240).Draw(rt, fmt.Sprintf("step%d", i)); step >= 0 {
					now = now.Add(time.Duration(step) * time.Minute)
				} else {
					now = high.Add(time.Duration(step) * time.Minute) // stepped back
				}
				if now.After(high) {
					high = now
				}
			}
			if !f.full && len(f.until) > f.max {
				rt.Fatalf("%d entries, bound %d", len(f.until), f.max)
			}
			for id, until := range latest {
				if now.Before(until) && !f.mayRevoke(&TokenRevocationQuery{JTI: id}) {
					rt.Fatalf("%s is revoked until %s (now %s) but the filter forgot it", id, until, now)
				}
			}
		}
	})
}
