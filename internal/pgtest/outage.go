package pgtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Refuse makes the database dsn names refuse connections, as a database
// that went down would: it stops accepting new connections (ALTER DATABASE
// … ALLOW_CONNECTIONS false) and every open connection to it is
// terminated. The change is undone when the test ends, before DSN drops
// the database; Allow undoes it earlier.
func Refuse(t testing.TB, dsn string) {
	t.Helper()
	name := databaseName(t, dsn)
	t.Cleanup(func() { Allow(t, dsn) })
	adminOn(t, dsn, func(ctx context.Context, c *pgx.Conn) error {
		if _, err := c.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{name}.Sanitize()+" ALLOW_CONNECTIONS false"); err != nil {
			return err
		}
		_, err := c.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = $1 AND pid <> pg_backend_pid()`, name)
		return err
	})
}

// Allow makes the database dsn names accept connections again.
func Allow(t testing.TB, dsn string) {
	t.Helper()
	name := databaseName(t, dsn)
	adminOn(t, dsn, func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{name}.Sanitize()+" ALLOW_CONNECTIONS true")
		return err
	})
}

// databaseName is the database dsn names.
func databaseName(t testing.TB, dsn string) string {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("pgtest: parsing the DSN: %v", err)
	}
	return cfg.Database
}

// adminOn runs fn on a connection to the maintenance database (postgres)
// of the cluster dsn points at; an error fails the test.
func adminOn(t testing.TB, dsn string, fn func(ctx context.Context, c *pgx.Conn) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, WithDatabase(dsn, "postgres"))
	if err != nil {
		t.Fatalf("pgtest: connecting to the maintenance database: %v", err)
	}
	defer c.Close(context.Background())
	if err := fn(ctx, c); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}
