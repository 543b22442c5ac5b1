package postgres_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/store"
)

// BenchmarkImportAll copies a Badger store of 10,000 records (sessions,
// refresh tokens, used JWT ids) to PostgreSQL; ns/op is one whole copy.
func BenchmarkImportAll(b *testing.B) {
	c := newClock()
	src, err := store.Open(b.TempDir(), store.Options{Now: c.Now})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	const n = 10000
	for i := range n / 3 {
		s := strconv.Itoa(i)
		if err := src.SaveSession(ctx, "s"+s, &store.Session{User: "u" + s, AuthTime: c.Now()}, time.Hour); err != nil {
			b.Fatal(err)
		}
		if err := src.SaveRefresh(ctx, "r"+s, &store.RefreshToken{FamilyID: "f" + s, ClientID: "app", Subject: "u" + s}, time.Hour); err != nil {
			b.Fatal(err)
		}
		if err := src.UseJTI(ctx, "app", "j"+s, c.Now().Add(time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		b.StopTimer()
		dst := openDSN(b, freshDSN(b), c)
		b.StartTimer()
		counts, err := dst.ImportAll(ctx, src)
		if err != nil {
			b.Fatal(err)
		}
		if counts[store.KindSession] != n/3 {
			b.Fatalf("counts %v", counts)
		}
	}
}
