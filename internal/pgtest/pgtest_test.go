package pgtest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/smartcaddy/smartauth/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// connect opens a pgx connection to dsn, closed when the test ends.
func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("connecting to %s: %v", dsn, err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// TestTwoFreshDatabases gets two databases, connects to each, and checks
// that they are distinct, empty and durable (fsync and synchronous_commit
// on, as the store's guarantees need).
func TestTwoFreshDatabases(t *testing.T) {
	ctx := context.Background()
	a, b := connect(t, pgtest.DSN(t)), connect(t, pgtest.DSN(t))
	var nameA, nameB string
	if err := a.QueryRow(ctx, "SELECT current_database()").Scan(&nameA); err != nil {
		t.Fatal(err)
	}
	if err := b.QueryRow(ctx, "SELECT current_database()").Scan(&nameB); err != nil {
		t.Fatal(err)
	}
	if nameA == nameB || nameA == "postgres" || nameB == "postgres" {
		t.Fatalf("databases %q and %q: want two fresh ones", nameA, nameB)
	}
	for _, c := range []*pgx.Conn{a, b} {
		var tables int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil {
			t.Fatal(err)
		}
		if tables != 0 {
			t.Errorf("a fresh database has %d tables", tables)
		}
		for _, setting := range []string{"fsync", "synchronous_commit"} {
			var v string
			if err := c.QueryRow(ctx, "SELECT current_setting($1)", setting).Scan(&v); err != nil {
				t.Fatal(err)
			}
			if v != "on" {
				t.Errorf("%s = %s, want on", setting, v)
			}
		}
	}
	// A table made in one is not in the other.
	if _, err := a.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := a.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 1 {
		t.Fatalf("count in a: %d %v", n, err)
	}
	_, err := b.Exec(ctx, "SELECT * FROM t")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42P01" { // undefined_table
		t.Fatalf("the table of database a seen from b: %v, want undefined_table", err)
	}
}

// TestDatabasesAreDropped checks that a test's database is gone once the
// test (here a subtest) has ended.
func TestDatabasesAreDropped(t *testing.T) {
	var name string
	t.Run("uses a database", func(t *testing.T) {
		c := connect(t, pgtest.DSN(t))
		if err := c.QueryRow(context.Background(), "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
	})
	c := connect(t, pgtest.DSN(t))
	var exists bool
	if err := c.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if name == "" || exists {
		t.Fatalf("database %q still exists after its test ended", name)
	}
}

// TestWithDatabase checks the DSN rewriting for both DSN forms.
func TestWithDatabase(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:p@db.example:5433/postgres?sslmode=verify-full": "postgres://u:p@db.example:5433/x?sslmode=verify-full",
		"postgresql://u@h/":                "postgresql://u@h/x",
		"host=/tmp port=5 dbname=postgres": "host=/tmp port=5 dbname=postgres dbname=x",
	} {
		if got := pgtest.WithDatabase(in, "x"); got != want {
			t.Errorf("WithDatabase(%q) = %q, want %q", in, got, want)
		}
		cfg, err := pgx.ParseConfig(pgtest.WithDatabase(in, "x"))
		if err != nil || cfg.Database != "x" {
			t.Errorf("%q: parsed database %v %v", in, cfg, err)
		}
	}
}
