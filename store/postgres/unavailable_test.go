package postgres_test

import (
	"context"
	"errors"
	"testing"

	"github.com/smartcaddy/smartauth/internal/pgtest"
	"github.com/smartcaddy/smartauth/store"
)

// TestUnavailable: while the database refuses connections (and every open
// one was terminated), store calls fail with an error matching
// store.ErrUnavailable, reads and writes alike; once it accepts them
// again the same store works without being reopened.
func TestUnavailable(t *testing.T) {
	ctx := context.Background()
	dsn := freshDSN(t)
	db := openDSN(t, dsn, newClock())
	if err := db.PutClient(ctx, &store.Client{ID: "before"}); err != nil {
		t.Fatal(err)
	}

	pgtest.Refuse(t, dsn)
	if _, err := db.GetClient(ctx, "before"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("GetClient while down: %v, want store.ErrUnavailable", err)
	}
	if err := db.PutClient(ctx, &store.Client{ID: "during"}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("PutClient while down: %v, want store.ErrUnavailable", err)
	}
	if _, err := db.ListClients(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("ListClients while down: %v, want store.ErrUnavailable", err)
	}
	err := db.UpdateClient(ctx, "before", func(c *store.Client) (*store.Client, error) { return c, nil })
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("UpdateClient while down: %v, want store.ErrUnavailable", err)
	}
	if errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateClient while down also matches ErrNotFound: %v", err)
	}
	if err.Error() == store.ErrUnavailable.Error() {
		t.Fatalf("the cause is lost: %v", err)
	}

	pgtest.Allow(t, dsn)
	c, err := db.GetClient(ctx, "before")
	if err != nil || c.ID != "before" {
		t.Fatalf("GetClient after recovery: %v, %v", c, err)
	}
	if err := db.PutClient(ctx, &store.Client{ID: "after"}); err != nil {
		t.Fatalf("PutClient after recovery: %v", err)
	}
	if _, err := db.GetClient(ctx, "during"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a write refused while down exists: %v", err)
	}
}

// TestNotUnavailable: ordinary outcomes are not reported as unavailable.
func TestNotUnavailable(t *testing.T) {
	ctx := context.Background()
	db := open(t, newClock())
	if _, err := db.GetClient(ctx, "missing"); !errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("GetClient of a missing client: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := db.GetClient(cctx, "missing"); err == nil || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("GetClient with a cancelled context: %v", err)
	}
}
