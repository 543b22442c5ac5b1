package pgtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a PostgreSQL cluster dedicated to one test, which the test may
// stop and start again (an outage) without disturbing the databases other
// tests have on the shared cluster. It is made like the shared throwaway
// cluster (initdb into a temporary directory, a unix socket there, run as
// the current user or, under root, as SMARTAUTH_TEST_PG_USER through
// runuser), whether or not SMARTAUTH_TEST_PG names a shared one.
type Cluster struct {
	t testing.TB
	c *cluster
}

// clusterDatabase is the database NewCluster creates for the test.
const clusterDatabase = "smartauth"

// NewCluster starts a dedicated cluster with an empty database for the
// test and returns it; the server is stopped and its directory removed
// when the test ends. Without PostgreSQL's binaries it fails the test with
// a message saying what to install; it never skips.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	c, err := startCluster()
	if err != nil {
		t.Fatalf("pgtest: starting a dedicated cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := c.stop(); err != nil {
			t.Errorf("pgtest: removing the dedicated cluster: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.dsn())
	if err != nil {
		t.Fatalf("pgtest: connecting to the dedicated cluster: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+clusterDatabase); err != nil {
		t.Fatalf("pgtest: creating the database of the dedicated cluster: %v", err)
	}
	return &Cluster{t: t, c: c}
}

// DSN is the DSN of the cluster's test database. It stays the same across
// Stop and Start: the server listens on the same socket.
func (c *Cluster) DSN() string { return WithDatabase(c.c.dsn(), clusterDatabase) }

// Stop shuts the server down (fast mode: open connections are closed,
// committed data is kept) and waits until it is gone. It fails the test on
// error, so call it from the test's goroutine.
func (c *Cluster) Stop() {
	c.t.Helper()
	if err := c.c.shutdown(); err != nil {
		c.t.Fatalf("pgtest: %v", err)
	}
}

// Start starts the stopped server again, on the same data directory and
// socket, and waits until it accepts connections. It fails the test on
// error, so call it from the test's goroutine.
func (c *Cluster) Start() {
	c.t.Helper()
	if err := c.c.start(); err != nil {
		c.t.Fatalf("pgtest: %v", err)
	}
}
