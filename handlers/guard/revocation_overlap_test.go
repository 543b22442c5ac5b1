package guard

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/store"
)

// settableClock is a store clock a test moves by hand.
type settableClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *settableClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *settableClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// TestRevocationVisibleLate: a revocation that becomes visible after one
// stamped later (another instance's clock is behind, or its transaction
// committed late) still reaches the guard, as long as it is within
// revocationOverlap of the newest one seen. Without the overlap the
// guard's next read would start after it and never see it.
func TestRevocationVisibleLate(t *testing.T) {
	e := newFuzzEnv(t)
	if err := e.g.Close(); err != nil { // the test polls by hand
		t.Fatal(err)
	}
	clk := &settableClock{t: time.Now()}
	db, err := store.Open(t.TempDir(), store.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	e.g.store = db
	ctx := context.Background()
	t0 := clk.Now()
	until := t0.Add(time.Hour)

	if err := db.Revoke(ctx, store.RevokedToken, "jti-newer", until); err != nil {
		t.Fatal(err)
	}
	if err := e.g.pollRevocations(ctx); err != nil {
		t.Fatal(err)
	}
	// Recorded 5 s before the one the guard has seen.
	clk.Set(t0.Add(-5 * time.Second))
	if err := db.Revoke(ctx, store.RevokedToken, "jti-late", until); err != nil {
		t.Fatal(err)
	}
	if err := e.g.pollRevocations(ctx); err != nil {
		t.Fatal(err)
	}
	gs := e.g.gs
	gs.mu.Lock()
	_, newer := gs.revJTI["jti-newer"]
	_, late := gs.revJTI["jti-late"]
	gs.mu.Unlock()
	if !newer || !late {
		t.Fatalf("revocations known to the guard: newer %v, late %v; want both", newer, late)
	}
}

// TestRevocationRereadIsIdle: revocations the overlap reads again change
// nothing: a poll that finds only known revocations leaves the token
// cache alone (it sweeps the cache only when a revocation is new), and a
// new one still sweeps it.
func TestRevocationRereadIsIdle(t *testing.T) {
	e := newFuzzEnv(t)
	if err := e.g.Close(); err != nil { // the test polls by hand
		t.Fatal(err)
	}
	ctx := context.Background()
	until := time.Now().Add(time.Hour)
	if err := e.db.Revoke(ctx, store.RevokedToken, "jti-known", until); err != nil {
		t.Fatal(err)
	}
	if err := e.g.pollRevocations(ctx); err != nil {
		t.Fatal(err)
	}
	gs := e.g.gs
	// A cache entry a known revocation hits: only a sweep drops it.
	marker := [32]byte{1}
	gs.mu.Lock()
	gs.tokens[marker] = &principal{jti: "jti-known", clientID: "c", exp: until}
	gs.mu.Unlock()
	present := func() bool {
		gs.mu.RLock()
		defer gs.mu.RUnlock()
		return gs.tokens[marker] != nil
	}
	if err := e.g.pollRevocations(ctx); err != nil {
		t.Fatal(err)
	}
	if !present() {
		t.Fatal("a poll that read only known revocations swept the token cache")
	}
	if err := e.db.Revoke(ctx, store.RevokedToken, "jti-new", until); err != nil {
		t.Fatal(err)
	}
	if err := e.g.pollRevocations(ctx); err != nil {
		t.Fatal(err)
	}
	if present() {
		t.Fatal("a poll that read a new revocation did not sweep the token cache")
	}
	gs.mu.RLock()
	_, known := gs.revJTI["jti-new"]
	gs.mu.RUnlock()
	if !known {
		t.Fatal("the new revocation is not known to the guard")
	}
}
