package store

import (
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestUseJTIGroupCommitIsDurable records many jtis at once (they are
// committed in groups), then reopens the database: every one is still
// known, and a replay is refused.
func TestUseJTIGroupCommitIsDurable(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	exp := time.Now().Add(time.Hour)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.UseJTI(ctx, "client", "jti-"+strconv.Itoa(i), exp)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("jti %d: %v", i, err)
		}
	}
	// The same jti under another issuer is another record.
	if err := db.UseJTI(ctx, "other-client", "jti-1", exp); err != nil {
		t.Fatalf("another issuer: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir)
	for _, i := range []int{0, 1, n / 2, n - 1} {
		if err := db.UseJTI(ctx, "client", "jti-"+strconv.Itoa(i), exp); !errors.Is(err, ErrReplayed) {
			t.Fatalf("jti %d after reopening: %v, want ErrReplayed", i, err)
		}
	}
}

// TestUseJTIAfterClose checks that a call on a closed DB fails instead of
// waiting forever.
func TestUseJTIAfterClose(t *testing.T) {
	db, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	if err := db.UseJTI(ctx, "c", "j", time.Now().Add(time.Minute)); err == nil {
		t.Fatal("UseJTI on a closed DB succeeded")
	}
}
