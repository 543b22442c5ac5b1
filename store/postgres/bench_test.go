package postgres_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/store"
	"github.com/smartcaddy/smartauth/store/postgres"
	"github.com/smartcaddy/smartauth/store/storetest"
)

// openBench opens a store on a fresh database for a benchmark (the test
// cluster is durable: fsync and synchronous_commit on).
func openBench(b *testing.B) *postgres.DB {
	b.Helper()
	db, err := postgres.Open(ctx, freshDSN(b), postgres.Options{MaxConns: 16})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// BenchmarkSaveCode measures one committed write (store/bench_test.go has
// Badger's).
func BenchmarkSaveCode(b *testing.B) {
	db := openBench(b)
	rec := &store.AuthCode{ClientID: "app", Scope: "openid patient/*.rs", FamilyID: "f"}
	for i := 0; b.Loop(); i++ {
		if err := db.SaveCode(ctx, "code-"+strconv.Itoa(i), rec, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRedeemCodeParallel measures the consume-once UPDATE with many
// callers at once.
func BenchmarkRedeemCodeParallel(b *testing.B) {
	db := openBench(b)
	rec := &store.AuthCode{ClientID: "app", FamilyID: "f"}
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		id := store.NewSecret()
		for i := 0; pb.Next(); i++ {
			code := id + strconv.Itoa(i)
			if err := db.SaveCode(ctx, code, rec, time.Minute); err != nil {
				b.Error(err)
				return
			}
			if _, err := db.RedeemCode(ctx, code); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkGetSession measures a read.
func BenchmarkGetSession(b *testing.B) {
	db := openBench(b)
	_ = db.SaveSession(ctx, "s", &store.Session{User: "alice"}, time.Hour)
	for b.Loop() {
		if _, err := db.GetSession(ctx, "s"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUseJTIParallel measures the client_credentials grant's one
// store write with many clients at once (grouped by the jti writer).
func BenchmarkUseJTIParallel(b *testing.B) {
	db := openBench(b)
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		id := store.NewSecret()
		for i := 0; pb.Next(); i++ {
			if err := db.UseJTI(ctx, "client", id+strconv.Itoa(i), time.Now().Add(time.Minute)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRotateRefreshParallel measures refresh rotations with many
// chains at once, each goroutine rotating its own chain, with several
// pool sizes.
func BenchmarkRotateRefreshParallel(b *testing.B) {
	for _, conns := range []int32{4, 8, 16} {
		b.Run("conns="+strconv.Itoa(int(conns)), func(b *testing.B) {
			db, err := postgres.Open(ctx, freshDSN(b), postgres.Options{MaxConns: conns})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { db.Close() })
			b.SetParallelism(32)
			b.RunParallel(func(pb *testing.PB) {
				tok := store.NewSecret()
				if err := db.SaveRefresh(ctx, tok, &store.RefreshToken{ClientID: "app", FamilyID: store.NewSecret(), Subject: "alice"}, time.Hour); err != nil {
					b.Error(err)
					return
				}
				for pb.Next() {
					next := store.NewSecret()
					if _, err := db.RotateRefresh(ctx, tok, store.Rotation{Next: next, TTL: time.Hour}); err != nil {
						b.Error(err)
						return
					}
					tok = next
				}
			})
		})
	}
}

// BenchmarkTokenRevocations measures an access token's revocation check
// on PostgreSQL: four round trips (reads=4) against TokenRevoked's one
// statement (reads=1). store/tokenrevoked_bench_test.go has Badger's.
func BenchmarkTokenRevocations(b *testing.B) {
	storetest.BenchTokenRevocations(b, openBench(b))
}
