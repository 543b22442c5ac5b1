package keys

import (
	"context"
	"testing"
	"time"
)

// TestStatusThroughRotation follows one key's states through a forced
// rotation: active, then with a pending successor (next_rotation its
// start), then retiring once the successor signs.
func TestStatusThroughRotation(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	t0 := clk.Now()
	db := openStore(t, t.TempDir(), clk)
	o := opts(db, clk)
	o.RotationPeriod, o.PublishAhead, o.Retain = time.Hour, 5*time.Minute, 2*time.Hour
	r := newRing(t, o)
	state := func(st Status) map[string]map[string]string { // alg → state → kid
		out := map[string]map[string]string{}
		for _, k := range st.Keys {
			if out[k.Alg] == nil {
				out[k.Alg] = map[string]string{}
			}
			if out[k.Alg][k.State] != "" {
				t.Fatalf("two %s %s keys: %+v", k.Alg, k.State, st.Keys)
			}
			out[k.Alg][k.State] = k.KID
		}
		return out
	}
	st := r.Status()
	if !r.Ready() || len(st.Keys) != 2 || !st.NextRotation[ES256].Equal(t0.Add(time.Hour+5*time.Minute)) {
		t.Fatalf("first status: ready %v, %+v", r.Ready(), st)
	}
	first := state(st)
	if err := r.Rotate(ctx, ES256); err != nil {
		t.Fatal(err)
	}
	st = r.Status()
	s := state(st)
	if s[ES256]["active"] != first[ES256]["active"] || s[ES256]["pending"] == "" || s[RS256]["pending"] != "" {
		t.Fatalf("after Rotate(ES256): %+v", st.Keys)
	}
	if !st.NextRotation[ES256].Equal(t0.Add(5 * time.Minute)) {
		t.Errorf("next ES256 rotation %v, want the successor's start", st.NextRotation[ES256])
	}
	clk.Add(5 * time.Minute)
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	after := state(r.Status())
	if after[ES256]["active"] != s[ES256]["pending"] || after[ES256]["retiring"] != first[ES256]["active"] {
		t.Errorf("after the successor signs: %v (was %v)", after, s)
	}
	if !r.Rotatable(ES256) || r.Rotatable("HS256") {
		t.Error("Rotatable")
	}
}
