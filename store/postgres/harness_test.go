package postgres_test

// The package's test harness: a fresh database per test from
// internal/pgtest, a settable clock, and stores closed at cleanup.

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/internal/pgtest"
	"github.com/smartcaddy/smartauth/store"
	"github.com/smartcaddy/smartauth/store/postgres"
)

// TestMain runs the tests on a throwaway cluster (or SMARTAUTH_TEST_PG),
// stopped when they end (internal/pgtest).
func TestMain(m *testing.M) { pgtest.Main(m) }

// freshDSN creates an empty database for one test and returns its DSN.
func freshDSN(t testing.TB) string {
	t.Helper()
	return pgtest.DSN(t)
}

// clock is a settable clock for expiry tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)} }

// Now returns the clock's time.
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock on by d.
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// open opens a store on a fresh database with clock c, closed at cleanup.
func open(t *testing.T, c *clock) *postgres.DB {
	t.Helper()
	return openDSN(t, freshDSN(t), c)
}

// openDSN opens a store on dsn with clock c, closed at cleanup.
func openDSN(t testing.TB, dsn string, c *clock) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), dsn, postgres.Options{Now: c.Now, MaxConns: 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Interface guards
var _ store.Store = (*postgres.DB)(nil)
