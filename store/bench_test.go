package store

import (
	"errors"
	"strconv"
	"testing"
	"time"
)

// BenchmarkSaveCode measures one synced commit (SyncWrites), the cost every
// issued code, rotated refresh token and used jti pays.
func BenchmarkSaveCode(b *testing.B) {
	db, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	rec := &AuthCode{ClientID: "app", Scope: "openid patient/*.rs", FamilyID: "f"}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := db.SaveCode(ctx, "code-"+strconv.Itoa(i), rec, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSaveCodeParallel shows concurrent commits sharing syncs.
func BenchmarkSaveCodeParallel(b *testing.B) {
	db, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	rec := &AuthCode{ClientID: "app", FamilyID: "f"}
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		id := NewSecret()
		for i := 0; pb.Next(); i++ {
			if err := db.SaveCode(ctx, id+strconv.Itoa(i), rec, time.Minute); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkGetSession measures a read, the cost of a signed-in page view.
func BenchmarkGetSession(b *testing.B) {
	db, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	_ = db.SaveSession(ctx, "s", &Session{User: "alice"}, time.Hour)
	for b.Loop() {
		if _, err := db.GetSession(ctx, "s"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUseJTIParallel measures the client_credentials grant's one
// store write with many clients at once: the jti writer commits them in
// groups, one WAL sync per group (compare BenchmarkSaveCode).
func BenchmarkUseJTIParallel(b *testing.B) {
	db, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		id := NewSecret()
		for i := 0; pb.Next(); i++ {
			if err := db.UseJTI(ctx, "client", id+strconv.Itoa(i), time.Now().Add(time.Minute)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRevocationMiss is the lookup every access-token verification
// now makes for its client (the common case: no revocation).
func BenchmarkRevocationMiss(b *testing.B) {
	db, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for b.Loop() {
		if _, err := db.Revocation(ctx, RevokedClient, "some-client"); !errors.Is(err, ErrNotFound) {
			b.Fatal(err)
		}
	}
}
