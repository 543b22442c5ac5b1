package integration

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/jackc/pgx/v5"

	"github.com/smartcaddy/smartauth/internal/pgtest"
)

// dsnEnv is the environment variable the PostgreSQL sites name their DSN
// by, as a deployment would ({env.SMART_AUTH_DSN}).
const dsnEnv = "SMARTAUTH_TEST_PG_DSN"

// newPostgresFlowSite is the flow site (flow_integration_test.go) on a
// fresh PostgreSQL database instead of a Badger directory; storage is the
// argument of `storage postgres`, given the DSN.
func newPostgresFlowSite(t *testing.T, storage func(dsn string) string) (flowSite, string) {
	t.Helper()
	dsn := pgtest.DSN(t)
	s := newFlowSite(t, "")
	s.storage = "postgres " + storage(dsn)
	return s, dsn
}

// queryDB runs one query on the test database and scans its rows' first
// column.
func queryDB[T any](t *testing.T, dsn, sql string) []T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	rows, err := c.Query(ctx, sql)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[T])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// guardedRead reads the patient's record through the guard.
func guardedRead(t *testing.T, s flowSite, access string) (*http.Response, string) {
	t.Helper()
	return fetch(t, "GET", s.fhirBase()+"/Patient/p1", http.Header{"Authorization": {"Bearer " + access}})
}

func TestPostgresStandaloneLaunchRefreshGuardRevocation(t *testing.T) {
	s, dsn := newPostgresFlowSite(t, func(dsn string) string {
		t.Setenv(dsnEnv, dsn)
		return "{env." + dsnEnv + "}"
	})
	js := adapt(t, s.caddyfile())
	if bytes.Contains(js, []byte(dsn)) || !bytes.Contains(js, []byte(`"storage_postgres":"{env.`+dsnEnv+`}"`)) {
		t.Fatalf("the adapted JSON must hold the placeholder, not the DSN: %s", js)
	}
	load(t, js)

	// A standalone launch with PKCE, through to a token.
	access, rt := codeFlowTokens(t, s)
	if resp, body := guardedRead(t, s, access); resp.StatusCode != 200 || body != "upstream /fhir/Patient/p1" {
		t.Fatalf("guarded read: %d %s", resp.StatusCode, body)
	}
	// The state is in PostgreSQL: the generated keys and the refresh
	// token (as its hash) are rows there.
	if n := queryDB[int64](t, dsn, "SELECT count(*) FROM signing_keys"); n[0] < 2 {
		t.Errorf("signing keys in PostgreSQL: %d", n[0])
	}
	if n := queryDB[int64](t, dsn, "SELECT count(*) FROM refresh_tokens"); n[0] != 1 {
		t.Errorf("refresh tokens in PostgreSQL: %d", n[0])
	}

	// A refresh rotates; the rotated token is refused.
	next := refresh(t, s, rt, "public-app")
	rt2, _ := next["refresh_token"].(string)
	access2, _ := next["access_token"].(string)
	if rt2 == "" || rt2 == rt || access2 == "" {
		t.Fatalf("refresh: %v", next)
	}
	if resp, body := guardedRead(t, s, access2); resp.StatusCode != 200 {
		t.Fatalf("guarded read with the refreshed token: %d %s", resp.StatusCode, body)
	}

	// A revocation of the new access token is enforced by the guard.
	if r := postForm(t, s.issuer()+"/revoke", url.Values{"token": {access2}, "client_id": {"public-app"}}, nil); r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.raw)
	}
	time.Sleep(revocationBound)
	resp, _ := guardedRead(t, s, access2)
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "revoked") {
		t.Fatalf("revoked token at the guard: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	// The refresh token of the family still works: only the access token
	// was revoked.
	if again := refresh(t, s, rt2, "public-app"); again["access_token"] == nil {
		t.Errorf("refresh after revoking an access token: %v", again)
	}
}

// backendPIDs lists the server processes serving connections to the
// test database, other than the query's own: the connections of the
// running store's pool.
func backendPIDs(t *testing.T, dsn string) []int32 {
	t.Helper()
	pids := queryDB[int32](t, dsn, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() ORDER BY pid")
	return pids
}

func TestPostgresReloadThroughAdminKeepsServingAndThePool(t *testing.T) {
	s, dsn := newPostgresFlowSite(t, func(dsn string) string { return fmt.Sprintf("%q", dsn) })
	adminAddr := fmt.Sprintf("localhost:%d", freePort(t))
	withAdmin := func(caddyfile string) string {
		return strings.Replace(caddyfile, "admin off", "admin "+adminAddr, 1)
	}
	startCaddyfile(t, withAdmin(s.caddyfile()))
	// Close the admin endpoint before the next test: Stop leaves it.
	t.Cleanup(func() { _ = caddy.Load([]byte(`{"admin":{"disabled":true,"config":{"persist":false}}}`), true) })

	access, rt := codeFlowTokens(t, s)
	kids := jwksKIDs(t, s.issuer()+"/jwks")
	before := backendPIDs(t, dsn)
	if len(before) == 0 {
		t.Fatal("no connection of the store to the database")
	}

	for i, lifetime := range []string{"20m", "30m"} {
		changed := s
		changed.extra += "\naccess_token_lifetime " + lifetime
		js := adapt(t, withAdmin(changed.caddyfile()))
		req, _ := http.NewRequest(http.MethodPost, "http://"+adminAddr+"/load", bytes.NewReader(js))
		req.Header.Set("Content-Type", "application/json")
		a := send(client, req)
		if a.err != nil || a.status != 200 {
			t.Fatalf("reload %d through the admin API: %d %v %s", i, a.status, a.err, a.body)
		}
		if resp, body := guardedRead(t, s, access); resp.StatusCode != 200 {
			t.Fatalf("after reload %d, the guard refuses a token from before: %d %s", i, resp.StatusCode, body)
		}
		if got := jwksKIDs(t, s.issuer()+"/jwks"); !slices.Equal(got, kids) {
			t.Fatalf("after reload %d, keys changed: %v -> %v", i, kids, got)
		}
		// The same pool: every connection open before the reloads is
		// still open (a new pool would have closed the old one).
		after := backendPIDs(t, dsn)
		for _, pid := range before {
			if !slices.Contains(after, pid) {
				t.Fatalf("after reload %d, connection %d is gone (%v -> %v): the store was reopened", i, pid, before, after)
			}
		}
	}
	if next := refresh(t, s, rt, "public-app"); next["refresh_token"] == nil {
		t.Errorf("refresh after the reloads: %v", next)
	}
}

func TestCommandRefusesPostgresStorage(t *testing.T) {
	for _, v := range []string{"postgres://app:s3cret-pw@db/x", "host=db password=s3cret-pw", "postgres {env.SMART_AUTH_DSN}"} {
		_, err := runCLI(t, "", "clients", "--storage", v)
		if err == nil || !strings.Contains(err.Error(), "--storage names a PostgreSQL database") || strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("--storage %q: %v", v, err)
		}
	}
}
