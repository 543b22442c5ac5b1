package store_test

import (
	"testing"

	"github.com/smartcaddy/smartauth/store"
	"github.com/smartcaddy/smartauth/store/storetest"
)

// BenchmarkTokenRevocations measures an access token's revocation check
// on Badger: four Views (reads=4) against TokenRevoked (reads=1: one View,
// or none when the revocation filter knows nothing of the token's
// identifiers, the common case measured here).
func BenchmarkTokenRevocations(b *testing.B) {
	db, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	storetest.BenchTokenRevocations(b, db)
}
