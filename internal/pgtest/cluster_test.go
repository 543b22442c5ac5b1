package pgtest_test

import (
	"context"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smartcaddy/smartauth/internal/pgtest"
)

// TestClusterStopStart checks a dedicated cluster: its database is
// usable, a stopped server refuses connections, and after Start the same
// DSN reaches the same data.
func TestClusterStopStart(t *testing.T) {
	cl := pgtest.NewCluster(t)
	dsn := cl.DSN()
	ctx := context.Background()
	c := connect(t, dsn)
	if _, err := c.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	var db string
	if err := c.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil || db == "postgres" {
		t.Fatalf("database %q %v: want a database of its own", db, err)
	}

	cl.Stop()
	if err := c.Ping(ctx); err == nil {
		t.Fatal("a connection opened before Stop still works")
	}
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if c2, err := pgx.Connect(short, dsn); err == nil {
		_ = c2.Close(ctx)
		t.Fatal("connected to a stopped cluster")
	}

	cl.Start()
	if cl.DSN() != dsn {
		t.Fatalf("the DSN changed across Stop and Start: %q -> %q", dsn, cl.DSN())
	}
	var id int
	if err := connect(t, dsn).QueryRow(ctx, "SELECT id FROM t").Scan(&id); err != nil || id != 7 {
		t.Fatalf("the row written before Stop, after Start: %d %v", id, err)
	}
}

// TestClusterAsUnprivilegedUser runs TestClusterStopStart again in a copy
// of this test binary as an unprivileged user (SMARTAUTH_TEST_PG_USER,
// default postgres) when the tests run as root, so that both the root path
// (runuser) and the plain path of NewCluster are exercised; run by another
// user, the copy runs as that user.
func TestClusterAsUnprivilegedUser(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "pgtest-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	bin := filepath.Join(dir, "pgtest.test")
	copyFile(t, self, bin)
	args := []string{"-test.run", "^TestClusterStopStart$", "-test.count", "1", "-test.v"}
	cmd := exec.Command(bin, args...)
	if os.Geteuid() == 0 {
		name := os.Getenv(pgtest.EnvUser)
		if name == "" {
			name = "postgres"
		}
		u, err := user.Lookup(name)
		if err != nil {
			t.Fatalf("running as root, the test needs an unprivileged user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, p := range []string{dir, bin} {
			if err := os.Chown(p, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
		cmd = exec.Command("runuser", append([]string{"-u", name, "--", bin}, args...)...)
	}
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "TMPDIR=/tmp")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestClusterStopStart") {
		t.Fatalf("TestClusterStopStart as an unprivileged user: %v\n%s", err, out)
	}
}

// copyFile copies an executable file.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
