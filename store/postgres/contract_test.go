package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/internal/pgtest"
	"github.com/smartcaddy/smartauth/store"
	"github.com/smartcaddy/smartauth/store/postgres"
	"github.com/smartcaddy/smartauth/store/storetest"
)

// TestContract runs the one store contract suite (store/storetest) on
// PostgreSQL: the same cases Badger passes (store/contract_test.go).
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
		dsn := pgtest.DSN(t)
		db, err := postgres.Open(context.Background(), dsn, postgres.Options{Now: now, MaxConns: 60})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}
