package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/smartcaddy/smartauth/store"
)

func jwksKIDs(t *testing.T, url string) []string {
	t.Helper()
	// Right after a reload, a connection may be reset at the listener
	// swap; plain Caddy does the same (reload_test.go measures both). Such
	// a request never reached a handler, so it is retried, a few times.
	var resp *http.Response
	var err error
	for range 3 {
		if resp, err = client.Get(url); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(b)
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal([]byte(body), &set); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KID)
	}
	return out
}

// withStore runs fn on the shared store of a directory a running config
// holds, the way a second handler would.
func withStore(t *testing.T, dir string, fn func(*store.DB)) {
	t.Helper()
	db, err := store.Acquire(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = store.Release(dir) }()
	fn(db)
}

func TestReloadKeepsServingAndKeepsRecords(t *testing.T) {
	s := site{port: freePort(t), storage: t.TempDir()}
	startCaddyfile(t, s.caddyfile())
	kids := jwksKIDs(t, s.base()+"/auth/jwks")
	ctx := context.Background()
	withStore(t, s.storage, func(db *store.DB) {
		if err := db.SaveCode(ctx, "code-before-reload", &store.AuthCode{ClientID: "app"}, time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := db.PutClient(ctx, &store.Client{ID: "registered", Type: store.ClientPublic}); err != nil {
			t.Fatal(err)
		}
	})

	// Reload with a changed config and the same storage, then with the
	// identical config (a forced reload), as `caddy reload` does.
	changed := s
	changed.extra = "access_token_lifetime 20m"
	load(t, adapt(t, changed.caddyfile()))
	load(t, adapt(t, changed.caddyfile()))

	if got := jwksKIDs(t, s.base()+"/auth/jwks"); strings.Join(got, ",") != strings.Join(kids, ",") {
		t.Fatalf("keys changed across reload: %v -> %v", kids, got)
	}
	withStore(t, s.storage, func(db *store.DB) {
		if _, err := db.RedeemCode(ctx, "code-before-reload"); err != nil {
			t.Errorf("code lost across reload: %v", err)
		}
		if _, err := db.GetClient(ctx, "registered"); err != nil {
			t.Errorf("client lost across reload: %v", err)
		}
	})

	// A full stop and start keeps them too (the database is closed and
	// reopened).
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	load(t, adapt(t, s.caddyfile()))
	if got := jwksKIDs(t, s.base()+"/auth/jwks"); strings.Join(got, ",") != strings.Join(kids, ",") {
		t.Fatalf("keys changed across restart: %v -> %v", kids, got)
	}
	withStore(t, s.storage, func(db *store.DB) {
		if _, err := db.GetClient(ctx, "registered"); err != nil {
			t.Errorf("client lost across restart: %v", err)
		}
	})
}

func TestTwoSitesShareOneStorageDirectory(t *testing.T) {
	dir := t.TempDir()
	a := site{port: freePort(t), storage: dir}
	b := site{port: freePort(t), storage: dir + "/."} // same directory, spelled differently
	cfg := a.caddyfile() + strings.TrimPrefix(b.caddyfile(), globalOptions)
	startCaddyfile(t, cfg)
	ka := jwksKIDs(t, a.base()+"/auth/jwks")
	kb := jwksKIDs(t, b.base()+"/auth/jwks")
	if len(ka) != 2 || strings.Join(ka, ",") != strings.Join(kb, ",") {
		t.Fatalf("two handlers on one directory disagree on keys: %v vs %v", ka, kb)
	}
}

func TestFailedReloadLeavesTheRunningStoreOpen(t *testing.T) {
	s := site{port: freePort(t), storage: t.TempDir()}
	startCaddyfile(t, s.caddyfile())
	kids := jwksKIDs(t, s.base()+"/auth/jwks")

	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := s
	bad.extra = "signing_key ES256 " + garbage
	err := caddy.Load(adapt(t, bad.caddyfile()), true)
	if err == nil {
		t.Fatal("config with a garbage key file loaded")
	}
	if !strings.Contains(err.Error(), "signing_key") || !strings.Contains(err.Error(), garbage) {
		t.Errorf("error does not name the option and file: %v", err)
	}
	// The old config still serves, with its store open.
	if got := jwksKIDs(t, s.base()+"/auth/jwks"); strings.Join(got, ",") != strings.Join(kids, ",") {
		t.Fatalf("after failed reload: %v", got)
	}
	withStore(t, s.storage, func(db *store.DB) {
		if err := db.PutClient(context.Background(), &store.Client{ID: "still-open", Type: store.ClientPublic}); err != nil {
			t.Fatalf("store closed by a failed reload: %v", err)
		}
	})
}

func TestProvisionErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct{ name, extra, want string }{
		{"unreadable key file", "signing_key RS256 " + missing, "signing_key RS256: key file unreadable"},
		{"missing env secret", "client app {\n secret {env.SMARTAUTH_TEST_UNSET_VAR}\n redirect_uri https://app.example/cb\n}", `client "app": secret:`},
		{"unreadable jwks file", "client app {\n jwks_file " + missing + "\n scopes system/*.rs\n}", `client "app": jwks_file:`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := site{port: freePort(t), storage: t.TempDir(), extra: tc.extra}
			err := caddy.Validate(mustConfig(t, adapt(t, s.caddyfile())))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestValidateAgainstAHeldDirectoryExplains(t *testing.T) {
	dir := t.TempDir()
	// Another process holding the directory: Badger's lock is per open
	// file, so a direct Open here stands in for a running server.
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := site{port: freePort(t), storage: dir}
	err = caddy.Validate(mustConfig(t, adapt(t, s.caddyfile())))
	if err == nil || !strings.Contains(err.Error(), "locked by another process") || !strings.Contains(err.Error(), "caddy reload") {
		t.Fatalf("error %v", err)
	}
}

func TestKeysFromPEMFiles(t *testing.T) {
	dir := t.TempDir()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	path := filepath.Join(dir, "es256.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SMARTAUTH_TEST_KEY_FILE", path)
	s := site{port: freePort(t), storage: filepath.Join(dir, "db"), extra: "signing_key ES256 {env.SMARTAUTH_TEST_KEY_FILE}"}
	js := adapt(t, s.caddyfile())
	if strings.Contains(string(js), path) {
		t.Error("the key path placeholder was expanded into the JSON config")
	}
	load(t, js)
	_, body := fetch(t, "GET", s.base()+"/auth/jwks", nil)
	if !strings.Contains(body, fmt.Sprintf(`"x":"%s"`, b64(k.X.FillBytes(make([]byte, 32))))) {
		t.Errorf("the file's key is not published: %s", body)
	}
}

func mustConfig(t *testing.T, js []byte) *caddy.Config {
	t.Helper()
	var cfg caddy.Config
	if err := json.Unmarshal(js, &cfg); err != nil {
		t.Fatal(err)
	}
	return &cfg
}
