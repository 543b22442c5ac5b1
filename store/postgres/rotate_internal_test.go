package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smartcaddy/smartauth/internal/pgtest"
	"github.com/smartcaddy/smartauth/store"
)

// TestClientLockSQLMatchesGo: the advisory-lock key SQL computes from a
// row's client_id (the rotation's) is the one Go computes (the
// revocation's), for ids of any bytes.
func TestClientLockSQLMatchesGo(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, id := range []string{"", "app", "bench-0", "ü-client", "a\x00b", "\xff\xfe", "https://app.example.org/client?x='1'"} {
		var got int64
		if err := conn.QueryRow(ctx, `SELECT `+clientLockSQLOf("$1::bytea"), []byte(id)).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if want := clientLock(id); got != want {
			t.Errorf("client %q: SQL key %d, Go key %d", id, got, want)
		}
	}
}

// TestRotationWaitsForClientRevocation: a rotation whose client's
// revocation holds the lock (a RevokedClient revocation in progress)
// waits for it and then sees it: the token is refused, not rotated. This
// is what the pipelined first round trip must keep, the revocation check
// starting only once the lock is held.
func TestRotationWaitsForClientRevocation(t *testing.T) {
	ctx := context.Background()
	db, _ := openWithToken(t, "rt")
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, clientLock("app")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := db.RotateRefresh(ctx, "rt", store.Rotation{Next: "rt2", TTL: time.Hour})
		done <- err
	}()
	// Wait until the rotation waits for the advisory lock.
	for waiting := false; !waiting; {
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted)`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			t.Fatalf("the rotation did not wait for the revocation's lock: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := db.revoke(ctx, tx, store.RevokedClient, "app", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rotation after a client revocation it waited for: %v, want ErrNotFound", err)
	}
	if _, err := db.GetRefresh(ctx, "rt2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the successor exists: %v", err)
	}
}

// TestRotationUnavailable: while the database refuses connections a
// rotation fails with store.ErrUnavailable and uses nothing up; once it
// accepts them again the same token rotates.
func TestRotationUnavailable(t *testing.T) {
	ctx := context.Background()
	db, dsn := openWithToken(t, "rt")
	pgtest.Refuse(t, dsn)
	if _, err := db.RotateRefresh(ctx, "rt", store.Rotation{Next: "rt2", TTL: time.Hour}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("rotation while down: %v, want store.ErrUnavailable", err)
	}
	pgtest.Allow(t, dsn)
	if _, err := db.RotateRefresh(ctx, "rt", store.Rotation{Next: "rt2", TTL: time.Hour}); err != nil {
		t.Fatalf("rotation after recovery: %v", err)
	}
	if _, err := db.GetRefresh(ctx, "rt2"); err != nil {
		t.Fatalf("the successor: %v", err)
	}
}

// openWithToken opens a store on a fresh database (closed at cleanup) and
// saves the refresh token tok of client app, issued a minute ago; it
// returns the store and the database's DSN.
func openWithToken(t *testing.T, tok string) (*DB, string) {
	t.Helper()
	dsn := pgtest.DSN(t)
	db, err := Open(context.Background(), dsn, Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rec := &store.RefreshToken{ClientID: "app", FamilyID: "f1", Subject: "alice", IssuedAt: time.Now().Add(-time.Minute)}
	if err := db.SaveRefresh(context.Background(), tok, rec, time.Hour); err != nil {
		t.Fatal(err)
	}
	return db, dsn
}
