package postgres

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/smartcaddy/smartauth/internal/pgtest"
)

// TestSynchronousCommitForcedOn opens a database whose default is
// synchronous_commit = off and checks that the store's sessions commit
// synchronously anyway.
func TestSynchronousCommitForcedOn(t *testing.T) {
	dsn := pgtest.DSN(t)
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
