// Package pgtest gives tests a fresh, empty PostgreSQL database each.
//
// The databases live on the cluster the environment variable
// SMARTAUTH_TEST_PG names (a base DSN whose user may create databases).
// Without it, pgtest starts a throwaway cluster once per test process:
// initdb into a temporary directory, the server listening only on a unix
// socket in that directory, run as the current user or, when that is root,
// as an unprivileged user (SMARTAUTH_TEST_PG_USER, default postgres) through
// runuser. A package using pgtest calls Main (or Run) from its TestMain, which stops
// that cluster and removes its directory when the tests end. Without
// PostgreSQL's binaries and without SMARTAUTH_TEST_PG, DSN fails the test
// with a message saying what to install: it never skips.
package pgtest

import (
	"context"
	"errors"
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
)

// Environment variables pgtest reads.
const (
	// EnvDSN names an existing cluster to create the test databases on.
	EnvDSN = "SMARTAUTH_TEST_PG"
	// EnvUser names the unprivileged user a throwaway cluster runs as
	// when the tests run as root.
	EnvUser = "SMARTAUTH_TEST_PG_USER"
)

var (
	// inMain is set while Main (or Run) runs the tests: only then may DSN
	// start a cluster, since only they stop it.
	inMain atomic.Bool

	setupOnce sync.Once
	// base is the DSN of the maintenance database of the cluster, and
	// setupErr why there is none.
	base     string
	setupErr error
	// running is the cluster this process started, if any.
	running *cluster

	// seq numbers the databases of this process.
	seq atomic.Int64
)

// Main runs the tests of a package and, when pgtest started a cluster for
// them, stops it and removes its directory. Call it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main for a TestMain with its own setup and teardown: it runs the
// tests, stops the cluster pgtest started for them, if any, and returns the
// exit code instead of exiting.
//
//	func TestMain(m *testing.M) {
//		setup()
//		code := pgtest.Run(m)
//		teardown()
//		os.Exit(code)
//	}
func Run(m *testing.M) int {
	inMain.Store(true)
	code := m.Run()
	if running != nil {
		if err := running.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: stopping the test cluster: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// DSN creates a fresh, empty database (smartauth_test_<pid>_<n>) and
// returns its DSN; the database is dropped when the test ends, after the
// test's own cleanups (register the store's Close after calling DSN).
func DSN(t testing.TB) string {
	t.Helper()
	setupOnce.Do(setup)
	if setupErr != nil {
		t.Fatalf("pgtest: %v", setupErr)
	}
	name := fmt.Sprintf("smartauth_test_%d_%d", os.Getpid(), seq.Add(1))
	if err := admin(func(c *pgx.Conn) error {
		_, err := c.Exec(context.Background(), "CREATE DATABASE "+name)
		return err
	}); err != nil {
		t.Fatalf("pgtest: creating database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := admin(func(c *pgx.Conn) error {
			_, err := c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			return err
		}); err != nil {
			t.Errorf("pgtest: dropping database %s: %v", name, err)
		}
	})
	return WithDatabase(base, name)
}

// admin runs fn on a connection to the cluster's maintenance database.
func admin(fn func(c *pgx.Conn) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, base)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	return fn(c)
}

// WithDatabase returns dsn (a URL or keyword/value DSN) naming the
// database name instead of its own.
func WithDatabase(dsn, name string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
			u.Path = "/" + name
			return u.String()
		}
	}
	// In keyword/value form a later keyword overrides an earlier one.
	return strings.TrimSpace(dsn) + " dbname=" + name
}

// setup finds the cluster: SMARTAUTH_TEST_PG, or one started here.
func setup() {
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		base = dsn
		if err := admin(func(*pgx.Conn) error { return nil }); err != nil {
			setupErr = fmt.Errorf("connecting to %s: %v", EnvDSN, err)
		}
		return
	}
	if !inMain.Load() {
		setupErr = errors.New("no " + EnvDSN + " and no TestMain calling pgtest.Main: " +
			"a cluster started here would outlive the tests; add func TestMain(m *testing.M) { pgtest.Main(m) }")
		return
	}
	c, err := startCluster()
	if err != nil {
		setupErr = err
		return
	}
	running, base = c, c.dsn()
}

// cluster is a throwaway PostgreSQL cluster this process started.
type cluster struct {
	bin  string // directory of initdb, pg_ctl, postgres
	dir  string // the temporary directory: data/, the socket, log
	as   string // user the server runs as; empty: the current user
	port int
}

// superuser is the name initdb gives the cluster's superuser.
const superuser = "smartauth"

// dsn is the DSN of the cluster's maintenance database.
func (c *cluster) dsn() string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable", c.dir, c.port, superuser)
}

// startCluster runs initdb into a new temporary directory and starts the
// server on a unix socket in it.
func startCluster() (*cluster, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "smartauth-pg-")
	if err != nil {
		return nil, err
	}
	c := &cluster{bin: bin, dir: dir}
	if os.Geteuid() == 0 {
		if err := c.dropPrivileges(); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
	}
	if c.port, err = freePort(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if out, err := c.run("initdb", "-D", data, "-U", superuser, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	// No TCP at all: the socket lives in the private directory, so the
	// port only names it and cannot collide with another server.
	conf := fmt.Sprintf("\n# pgtest\nport = %d\nlisten_addresses = ''\nunix_socket_directories = '%s'\nmax_connections = 200\n", c.port, dir)
	if err := appendFile(filepath.Join(data, "postgresql.conf"), conf); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := c.start(); err != nil {
		_ = c.stop()
		return nil, err
	}
	return c, nil
}

// start starts the server on the cluster's data directory and waits until
// it accepts connections.
func (c *cluster) start() error {
	data := filepath.Join(c.dir, "data")
	if out, err := c.run("pg_ctl", "-D", data, "-l", filepath.Join(c.dir, "log"), "-w", "-t", "120", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		return fmt.Errorf("pg_ctl start: %v\n%s\nserver log:\n%s", err, out, log)
	}
	return nil
}

// dropPrivileges makes the cluster run as an unprivileged user, who gets
// the temporary directory.
func (c *cluster) dropPrivileges() error {
	name := os.Getenv(EnvUser)
	if name == "" {
		name = "postgres"
	}
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("running as root, PostgreSQL needs an unprivileged user to run as: %v "+
			"(install Debian's postgresql package, which creates the user postgres, or set %s)", err, EnvUser)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(c.dir, uid, gid); err != nil {
		return err
	}
	c.as = name
	return nil
}

// run runs one of the cluster's binaries, as the cluster's user.
func (c *cluster) run(prog string, args ...string) ([]byte, error) {
	path := filepath.Join(c.bin, prog)
	var cmd *exec.Cmd
	if c.as != "" {
		cmd = exec.Command("runuser", append([]string{"-u", c.as, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = c.dir
	return cmd.CombinedOutput()
}

// stop stops the server (if it runs) and removes the directory.
func (c *cluster) stop() error {
	err := c.shutdown()
	if e := os.RemoveAll(c.dir); e != nil && err == nil {
		err = e
	}
	return err
}

// shutdown stops the server, if it runs, in fast mode (open connections
// are closed), keeping the data directory.
func (c *cluster) shutdown() error {
	data := filepath.Join(c.dir, "data")
	if _, statErr := os.Stat(filepath.Join(data, "postmaster.pid")); statErr != nil {
		return nil
	}
	if out, err := c.run("pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "60", "stop"); err != nil {
		return fmt.Errorf("pg_ctl stop: %v\n%s", err, out)
	}
	return nil
}

// findBinaries returns the directory of the newest PostgreSQL's initdb and
// pg_ctl: Debian's /usr/lib/postgresql/<version>/bin, else the PATH.
func findBinaries() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil && isExec(filepath.Join(filepath.Dir(p), "pg_ctl")) {
		return filepath.Dir(p), nil
	}
	return "", errors.New("PostgreSQL is needed for these tests and was not found: install Debian's postgresql " +
		"package (apt-get install postgresql; its binaries are in /usr/lib/postgresql/<version>/bin), " +
		"or set " + EnvDSN + " to the DSN of a cluster where the user may create databases")
}

// version is the major version in /usr/lib/postgresql/<version>/bin.
func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// isExec tells whether path is an executable file.
func isExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// appendFile appends s to the file at path (keeping its owner).
func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// freePort returns a TCP port nobody listens on at the moment.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
