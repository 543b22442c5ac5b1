package keys

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestRotation(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	t0 := clk.Now()
	db := openStore(t, t.TempDir(), clk)
	o := opts(db, clk)
	o.RotationPeriod, o.PublishAhead, o.Retain = time.Hour, 5*time.Minute, 2*time.Hour
	r := newRing(t, o)
	old := map[string]string{RS256: signingKID(t, r, clk, RS256), ES256: signingKID(t, r, clk, ES256)}
	oldTok := map[string][]byte{RS256: sign(t, r, clk, RS256), ES256: sign(t, r, clk, ES256)}

	clk.Add(59 * time.Minute)
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(r.KIDs()); n != 2 {
		t.Fatalf("before the period ended: %d keys, want 2", n)
	}

	clk.Add(time.Minute) // t0+1h: rotation is due
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	recs := records(t, db)
	if len(recs) != 4 || len(r.KIDs()) != 4 {
		t.Fatalf("after 1h: store %d records, JWKS %d keys, want 4 and 4", len(recs), len(r.KIDs()))
	}
	next := make(map[string]string)
	for kid, k := range recs {
		if kid == old[k.Alg] {
			continue
		}
		next[k.Alg] = kid
		if want := t0.Add(time.Hour + 5*time.Minute); !k.ActiveFrom.Equal(want) {
			t.Errorf("%s successor ActiveFrom = %v, want %v", k.Alg, k.ActiveFrom, want)
		}
		if _, ok := r.PublicKey(kid); !ok {
			t.Errorf("%s successor not published", k.Alg)
		}
	}
	for alg, kid := range old {
		if got := signingKID(t, r, clk, alg); got != kid {
			t.Errorf("%s: the pending successor signs before PublishAhead", alg)
		}
	}

	clk.Add(5 * time.Minute) // t0+1h5m: the successor signs, even before a Refresh
	for alg, kid := range next {
		if got := signingKID(t, r, clk, alg); got != kid {
			t.Errorf("%s signs with %s after PublishAhead, want the successor %s", alg, got, kid)
		}
	}
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	retiredAt := t0.Add(time.Hour + 5*time.Minute)
	recs = records(t, db)
	for alg, kid := range old {
		k := recs[kid]
		if k == nil || !k.RetiredAt.Equal(retiredAt) || !k.PublishUntil.Equal(retiredAt.Add(2*time.Hour)) {
			t.Fatalf("%s old key record = %+v, want retired at %v until +2h", alg, k, retiredAt)
		}
	}

	clk.Set(retiredAt.Add(2*time.Hour - time.Second))
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	for alg, kid := range old {
		if _, ok := r.PublicKey(kid); !ok {
			t.Errorf("%s old key left the JWKS before Retain", alg)
		}
		if _, err := r.Verify(ctx, oldTok[alg]); err != nil {
			t.Errorf("%s token of the old key no longer verifies: %v", alg, err)
		}
	}

	clk.Add(time.Second) // successor.ActiveFrom + Retain
	for alg, kid := range old {
		if slices.Contains(r.KIDs(), kid) {
			t.Errorf("%s old key still in the JWKS after Retain", alg)
		}
	}
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	recs = records(t, db)
	for alg, kid := range old {
		if recs[kid] != nil {
			t.Errorf("%s old key still in the store after Retain", alg)
		}
		if _, err := r.Verify(ctx, oldTok[alg]); !errors.Is(err, ErrUnknownKey) {
			t.Errorf("%s token of the deleted key: err = %v, want ErrUnknownKey", alg, err)
		}
	}
}

// Set moves the clock to t.
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func TestForcedRotate(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openStore(t, t.TempDir(), clk)
	a := newRing(t, opts(db, clk)) // RotationPeriod 0: never on its own
	b := newRing(t, opts(db, clk))
	oldEC, oldRS := signingKID(t, a, clk, ES256), signingKID(t, a, clk, RS256)
	start := clk.Now()

	clk.Add(24 * time.Hour)
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if len(records(t, db)) != 2 {
		t.Fatal("a ring with RotationPeriod 0 rotated")
	}
	// Two rings rotating at once make one successor.
	var wg sync.WaitGroup
	for _, r := range []*Ring{a, b, a, b} {
		wg.Go(func() {
			if err := r.Rotate(ctx, ES256); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	recs := records(t, db)
	if n := byAlg(recs); n[ES256] != 2 || n[RS256] != 1 {
		t.Fatalf("after Rotate(ES256): %v, want 2 ES256 and 1 RS256", n)
	}
	var next string
	for kid, k := range recs {
		if k.Alg == ES256 && kid != oldEC {
			next = kid
			if want := clk.Now().Add(DefaultPublishAhead); !k.ActiveFrom.Equal(want) {
				t.Errorf("successor ActiveFrom = %v, want %v", k.ActiveFrom, want)
			}
		}
	}
	if got := signingKID(t, a, clk, ES256); got != oldEC {
		t.Error("the successor signs before PublishAhead")
	}
	clk.Add(DefaultPublishAhead)
	if got := signingKID(t, a, clk, ES256); got != next {
		t.Errorf("after PublishAhead ES256 signs with %s, want %s", got, next)
	}
	if got := signingKID(t, a, clk, RS256); got != oldRS {
		t.Error("RS256 changed with Rotate(ES256)")
	}
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	k := records(t, db)[oldEC]
	if want := clk.Now().Add(2 * time.Hour); k == nil || !k.PublishUntil.Equal(want) || !k.ActiveFrom.Equal(start) {
		t.Fatalf("old ES256 record = %+v, want PublishUntil %v", k, want)
	}
	clk.Add(2 * time.Hour)
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := records(t, db)[oldEC]; ok || slices.Contains(b.KIDs(), oldEC) {
		t.Error("the old ES256 key outlived Retain")
	}
	if err := a.Rotate(ctx, "HS256"); err == nil {
		t.Error("Rotate(HS256) succeeded")
	}
}

func TestMaintainStops(t *testing.T) {
	clk := newClock()
	db := openStore(t, t.TempDir(), clk)
	r := newRing(t, opts(db, clk))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Maintain(ctx); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Maintain did not return after its context ended")
	}
}
