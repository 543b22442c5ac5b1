package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/internal/pgtest"
	"github.com/smartcaddy/smartauth/store"
	"github.com/smartcaddy/smartauth/store/postgres"
)

// TestUseJTIGroupsAcrossInstances: two stores on one database (two
// instances), each with its jti writers grouping calls, are offered the
// same ids at once, some ids several times by each: every id is recorded
// by exactly one call, every other call is a replay, and every recorded
// id stays recorded after both stores are reopened.
func TestUseJTIGroupsAcrossInstances(t *testing.T) {
	ctx := context.Background()
	dsn := freshDSN(t)
	c := newClock()
	a, b := openDSN(t, dsn, c), openDSN(t, dsn, c)
	exp := c.Now().Add(time.Minute)
	const ids, callsPerID = 200, 6
	var mu sync.Mutex
	wins := map[int]int{}
	var wg sync.WaitGroup
	for n := range ids * callsPerID {
		db := a
		if n%2 == 1 {
			db = b
		}
		id := n % ids
		wg.Go(func() {
			err := db.UseJTI(ctx, "client", fmt.Sprint("jti-", id), exp)
			switch {
			case err == nil:
				mu.Lock()
				wins[id]++
				mu.Unlock()
			case !errors.Is(err, store.ErrReplayed):
				t.Errorf("jti %d: %v", id, err)
			}
		})
	}
	wg.Wait()
	for id := range ids {
		if wins[id] != 1 {
			t.Errorf("jti %d recorded by %d calls, want 1", id, wins[id])
		}
	}
	a.Close()
	b.Close()
	re := openDSN(t, dsn, c)
	for id := range ids {
		if err := re.UseJTI(ctx, "client", fmt.Sprint("jti-", id), exp); !errors.Is(err, store.ErrReplayed) {
			t.Fatalf("jti %d after reopening: %v, want ErrReplayed", id, err)
		}
	}
}

// TestUseJTIAfterClose: a call on a closed store fails at once instead of
// waiting for writers that have stopped.
func TestUseJTIAfterClose(t *testing.T) {
	c := newClock()
	db := open(t, c)
	db.Close()
	done := make(chan error, 1)
	go func() { done <- db.UseJTI(context.Background(), "c", "j", c.Now().Add(time.Minute)) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("UseJTI on a closed store succeeded")
		}
	case <-time.After(time.Minute):
		t.Fatal("UseJTI on a closed store did not return")
	}
}

// TestUseJTIUnavailable: while the database refuses connections, every
// call of a group fails with store.ErrUnavailable and records nothing;
// afterwards the same ids are recorded normally.
func TestUseJTIUnavailable(t *testing.T) {
	ctx := context.Background()
	dsn := freshDSN(t)
	c := newClock()
	db, err := postgres.Open(ctx, dsn, postgres.Options{Now: c.Now, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	exp := c.Now().Add(time.Minute)
	pgtest.Refuse(t, dsn)
	errs := race(20, func(i int) error { return db.UseJTI(ctx, "client", fmt.Sprint("down-", i), exp) })
	for i, err := range errs {
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("jti %d while down: %v, want store.ErrUnavailable", i, err)
		}
	}
	pgtest.Allow(t, dsn)
	for i := range 20 {
		if err := db.UseJTI(ctx, "client", fmt.Sprint("down-", i), exp); err != nil {
			t.Fatalf("jti %d after recovery: %v, want it recorded (nothing was recorded while down)", i, err)
		}
	}
}
