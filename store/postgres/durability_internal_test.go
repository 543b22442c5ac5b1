package postgres

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestSynchronousCommitForcedOn opens a database whose default is
// synchronous_commit = off and checks that the store's sessions commit
// synchronously anyway. It needs SMARTAUTH_TEST_DSN_FOR_INTERNAL, which
// the external tests' TestMain sets to a fresh database.
func TestSynchronousCommitForcedOn(t *testing.T) {
	dsn := os.Getenv(internalDSNVar)
	if dsn == "" {
		t.Fatalf("%s is not set: run the package's tests, whose TestMain sets it", internalDSNVar)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	var name string
	if err := conn.QueryRow(ctx, `SELECT current_database()`).Scan(&name); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `ALTER DATABASE `+pgx.Identifier{name}.Sanitize()+` SET synchronous_commit = off`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	db, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got string
	if err := db.pool.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "on" {
		t.Fatalf("synchronous_commit = %s in the store's sessions, want on", got)
	}
}

// internalDSNVar names the environment variable through which the
// external tests' TestMain hands this test a fresh database.
const internalDSNVar = "SMARTAUTH_TEST_PG_INTERNAL_DSN"
