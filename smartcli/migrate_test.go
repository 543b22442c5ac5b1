package smartcli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/smartcaddy/smartauth/internal/pgtest"
	"github.com/smartcaddy/smartauth/store"
	"github.com/smartcaddy/smartauth/store/postgres"
)

// TestMain runs the tests on a throwaway PostgreSQL cluster (or
// SMARTAUTH_TEST_PG), stopped when they end (internal/pgtest).
func TestMain(m *testing.M) { pgtest.Main(m) }

// runCLI runs `caddy smart-auth <args>` in this process, through the
// command Caddy registered.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	c, ok := caddycmd.Commands()["smart-auth"]
	if !ok {
		t.Fatal("the smart-auth command is not registered")
	}
	root := &cobra.Command{Use: c.Name, Short: c.Short, SilenceUsage: true, SilenceErrors: true}
	c.CobraFunc(root)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// fillStorage writes a small storage directory through the store API and
// returns it, open.
func fillStorage(t *testing.T, dir string) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(db.PutClient(ctx, &store.Client{ID: "app", Type: store.ClientPublic, RedirectURIs: []string{"https://app.example/cb"}}))
	must(db.SaveSession(ctx, "sess-1", &store.Session{User: "alice", AuthTime: time.Now()}, time.Hour))
	must(db.SaveCode(ctx, "code-1", &store.AuthCode{ClientID: "app", Subject: "alice", FamilyID: "f0"}, time.Minute))
	must(db.SaveRefresh(ctx, "rt-1", &store.RefreshToken{FamilyID: "f1", ClientID: "app", Subject: "alice"}, time.Hour))
	if _, err := db.RotateRefresh(ctx, "rt-1", store.Rotation{Next: "rt-2", TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	must(db.Revoke(ctx, store.RevokedToken, "jti-1", time.Now().Add(time.Hour)))
	must(db.UpdateKeys(ctx, func([]*store.KeyRecord) ([]*store.KeyRecord, error) {
		return []*store.KeyRecord{{KID: "kid-1", Alg: "ES256", PrivateKey: []byte{1}, PublicJWK: json.RawMessage(`{}`),
			CreatedAt: time.Now(), ActiveFrom: time.Now()}}, nil
	}))
	if _, err := db.SiteSecret(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestMigrateCommand runs `caddy smart-auth migrate` on a storage
// directory and a fresh database: refused while the directory is open,
// then the counts, the same counts again, and the records usable on
// PostgreSQL.
func TestMigrateCommand(t *testing.T) {
	dir := t.TempDir()
	src := fillStorage(t, dir)
	dsn := pgtest.DSN(t)
	t.Setenv("SMART_AUTH_TEST_DSN", dsn)

	// The directory is held (as by a running Caddy): refused.
	_, err := runCLI(t, "migrate", "--from", dir, "--to", "{env.SMART_AUTH_TEST_DSN}")
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("migrate from a directory in use: %v", err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}

	out, err := runCLI(t, "migrate", "--from", dir, "--to", "{env.SMART_AUTH_TEST_DSN}")
	if err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	for _, line := range []string{"copied " + dir + " to PostgreSQL:", "        1  clients", "        2  refresh tokens",
		"        1  sessions", "        1  authorization codes", "        1  signing keys", "        1  revocations",
		"        1  revocation log entries", "        0  consents", "        1  site secrets", "        9  records in all"} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("output lacks %q:\n%s", line, out)
		}
	}
	if strings.Contains(out, dsn) {
		t.Errorf("the output shows the DSN:\n%s", out)
	}
	again, err := runCLI(t, "migrate", "--from", dir, "--to-env", "SMART_AUTH_TEST_DSN")
	if err != nil || again != out {
		t.Fatalf("second run: %v\n%s\nfirst:\n%s", err, again, out)
	}

	ctx := context.Background()
	pg, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	if _, err := pg.RotateRefresh(ctx, "rt-2", store.Rotation{Next: "rt-3", TTL: time.Hour}); err != nil {
		t.Fatalf("the refresh token issued on Badger, on PostgreSQL: %v", err)
	}
	if _, err := pg.RotateRefresh(ctx, "rt-1", store.Rotation{Next: "rt-4", TTL: time.Hour}); !errors.Is(err, store.ErrReplayed) {
		t.Fatalf("the token rotated on Badger, replayed on PostgreSQL: %v", err)
	}
	if s, err := pg.GetSession(ctx, "sess-1"); err != nil || s.User != "alice" {
		t.Fatalf("session: %+v %v", s, err)
	}
	if keys, err := pg.Keys(ctx); err != nil || len(keys) != 1 || keys[0].KID != "kid-1" {
		t.Fatalf("keys: %v %v", keys, err)
	}
	// The site secret moves: requests in flight and sign-in forms sealed
	// before the move still open.
	want, err := reopenSiteSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := pg.SiteSecret(ctx); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the site secret on PostgreSQL is not Badger's (%v)", err)
	}

	// An instance has now served from the database (pg above): copying
	// again could bring back what it deleted, so it is refused, unless
	// forced.
	if _, err := runCLI(t, "migrate", "--from", dir, "--to-env", "SMART_AUTH_TEST_DSN"); err == nil ||
		!strings.Contains(err.Error(), "has been serving since") || strings.Contains(err.Error(), dsn) {
		t.Fatalf("migrate into a serving database: %v", err)
	}
	if _, err := pg.RedeemCode(ctx, "code-1"); err != nil {
		t.Fatalf("the code issued on Badger, redeemed on PostgreSQL: %v", err)
	}
	if out, err := runCLI(t, "migrate", "--from", dir, "--to-env", "SMART_AUTH_TEST_DSN", "--force"); err != nil {
		t.Fatalf("migrate --force: %v\n%s", err, out)
	}
	if _, err := pg.RedeemCode(ctx, "code-1"); !errors.Is(err, store.ErrReplayed) {
		t.Fatalf("a forced copy made a code redeemed on PostgreSQL usable again: %v", err)
	}
}

// TestMigrateCommandErrors checks the refusals, and that a DSN never
// appears in an error.
func TestMigrateCommandErrors(t *testing.T) {
	dir := t.TempDir()
	if err := fillStorage(t, dir).Close(); err != nil {
		t.Fatal(err)
	}
	const password = "hunter2-not-shown"
	t.Setenv("SMART_AUTH_BAD_DSN", "postgres://u:"+password+"@127.0.0.1:1/db?connect_timeout=5")
	t.Setenv("SMART_AUTH_EMPTY", "")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--to", "{env.SMART_AUTH_BAD_DSN}"}, "--from is required"},
		{[]string{"--from", dir}, "--to or --to-env is required"},
		{[]string{"--from", dir, "--to", "x", "--to-env", "SMART_AUTH_BAD_DSN"}, "not both"},
		{[]string{"--from", dir, "--to-env", "SMART_AUTH_EMPTY"}, "unset or empty"},
		{[]string{"--from", dir, "--to", "{env.SMART_AUTH_EMPTY}"}, "unknown or empty"},
		{[]string{"--from", dir + "/absent", "--to-env", "SMART_AUTH_BAD_DSN"}, "does not exist"},
		{[]string{"--from", dir, "--to-env", "SMART_AUTH_BAD_DSN"}, "127.0.0.1"},
		{[]string{"--from", dir, "--to", "postgres://u:" + password + "@127.0.0.1:1/db{x}"}, "unknown or empty"},
	} {
		out, err := runCLI(t, append([]string{"migrate"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("migrate %v: %v, want an error with %q", c.args, err, c.want)
			continue
		}
		if strings.Contains(err.Error()+out, password) {
			t.Errorf("migrate %v shows the password: %v\n%s", c.args, err, out)
		}
	}
}

// reopenSiteSecret reads the site secret of a closed storage directory.
func reopenSiteSecret(dir string) ([]byte, error) {
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return db.SiteSecret(context.Background())
}
