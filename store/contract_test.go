package store_test

import (
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/store"
	"github.com/smartcaddy/smartauth/store/storetest"
)

// badgerOpener opens a fresh Badger store in a temporary directory on the
// suite's clock.
func badgerOpener(t *testing.T, now func() time.Time) store.Store {
	db, err := store.Open(t.TempDir(), store.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("closing the store: %v", err)
		}
	})
	return db
}

// TestContract runs the store contract suite against Badger.
func TestContract(t *testing.T) {
	storetest.Run(t, badgerOpener)
}
