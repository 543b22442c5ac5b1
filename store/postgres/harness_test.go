package postgres_test

// A minimal throwaway PostgreSQL for this package's tests, until the shared
// harness internal/pgtest replaces it: TestMain starts one cluster per test
// process (or uses SMARTAUTH_TEST_PG, a base DSN), and freshDSN hands out an
// empty database per test.

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smartcaddy/smartauth/store"
	"github.com/smartcaddy/smartauth/store/postgres"
)

// pgBase is the DSN of the cluster's maintenance database.
var pgBase string

// TestMain starts the cluster, runs the tests and stops it.
func TestMain(m *testing.M) {
	os.Exit(runWithCluster(m))
}

func runWithCluster(m *testing.M) int {
	if dsn := os.Getenv("SMARTAUTH_TEST_PG"); dsn != "" {
		pgBase = dsn
		return runTests(m)
	}
	dsn, stop, err := startCluster()
	if err != nil {
		fmt.Fprintln(os.Stderr, "store/postgres tests need PostgreSQL: set SMARTAUTH_TEST_PG to a base DSN, "+
			"or install Debian's postgresql (binaries under /usr/lib/postgresql/*/bin):", err)
		return 1
	}
	defer stop()
	pgBase = dsn
	return runTests(m)
}

// runTests hands the package's internal tests a database of their own
// (they cannot reach this harness) and runs the tests.
func runTests(m *testing.M) int {
	dsn, err := createDB()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	os.Setenv("SMARTAUTH_TEST_PG_INTERNAL_DSN", dsn)
	return m.Run()
}

// startCluster runs initdb and pg_ctl in a temporary directory, as the
// postgres user when running as root, listening on a free port and a unix
// socket in that directory.
func startCluster() (dsn string, stop func(), err error) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		return "", nil, fmt.Errorf("no initdb under /usr/lib/postgresql/*/bin")
	}
	sort.Strings(bins)
	bin := filepath.Dir(bins[len(bins)-1])
	dir, err := os.MkdirTemp("", "smartauth-pg-")
	if err != nil {
		return "", nil, err
	}
	var prefix []string
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return "", nil, fmt.Errorf("running as root and no postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return "", nil, err
		}
		prefix = []string{"runuser", "-u", "postgres", "--"}
	}
	run := func(args ...string) error {
		args = append(prefix, args...)
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	data := filepath.Join(dir, "data")
	if err := run(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	port := freePort()
	fsync := "off"
	if os.Getenv("SMARTAUTH_TEST_PG_FSYNC") == "on" {
		fsync = "on"
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=%s -c max_connections=200", port, dir, fsync)
	if err := run(filepath.Join(bin, "pg_ctl"), "-D", data, "-l", filepath.Join(dir, "log"), "-w", "-o", opts, "start"); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	stop = func() {
		_ = run(filepath.Join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop")
		os.RemoveAll(dir)
	}
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", dir, port), stop, nil
}

// freePort returns a TCP port nothing listens on now.
func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

var dbSeq atomic.Int64

// freshDSN creates an empty database and returns its DSN.
func freshDSN(t testing.TB) string {
	t.Helper()
	dsn, err := createDB()
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

// createDB creates an empty database on the cluster and returns its DSN.
func createDB() (string, error) {
	name := fmt.Sprintf("smartauth_test_%d_%d", os.Getpid(), dbSeq.Add(1))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgBase)
	if err != nil {
		return "", fmt.Errorf("connecting to the test cluster: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("creating %s: %w", name, err)
	}
	if strings.HasPrefix(pgBase, "postgres://") || strings.HasPrefix(pgBase, "postgresql://") {
		u, err := url.Parse(pgBase)
		if err != nil {
			return "", err
		}
		u.Path = "/" + name
		return u.String(), nil
	}
	return pgBase + " dbname=" + name, nil
}

// clock is a settable clock for expiry tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)} }

// Now returns the clock's time.
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock on by d.
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// open opens a store on a fresh database with clock c, closed at cleanup.
func open(t *testing.T, c *clock) *postgres.DB {
	t.Helper()
	return openDSN(t, freshDSN(t), c)
}

// openDSN opens a store on dsn with clock c, closed at cleanup.
func openDSN(t *testing.T, dsn string, c *clock) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), dsn, postgres.Options{Now: c.Now, MaxConns: 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Interface guards
var _ store.Store = (*postgres.DB)(nil)
