package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// openTest opens a Badger store in dir, closed when the test ends.
func openTest(t *testing.T, dir string) *DB {
	t.Helper()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

var ctx = context.Background()

func TestSecretsAreStoredOnlyAsHashes(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	secrets := []string{"code-SECRET-1", "sess-SECRET-2", "rt-SECRET-3", "launch-SECRET-4"}
	_ = db.SaveCode(ctx, secrets[0], &AuthCode{ClientID: "a"}, time.Minute)
	_ = db.SaveSession(ctx, secrets[1], &Session{User: "u"}, time.Minute)
	_ = db.SaveRefresh(ctx, secrets[2], &RefreshToken{FamilyID: "f"}, time.Minute)
	_ = db.SaveLaunch(ctx, secrets[3], &Launch{}, time.Minute)
	for _, kind := range []string{"code", "session", "refresh", "launch"} {
		_ = db.scan(kind, "", func(id string, _ []byte) error {
			for _, s := range secrets {
				if id == s {
					t.Errorf("%s stored under its clear value", kind)
				}
			}
			return nil
		})
	}
	n := 0
	_ = db.scan("code", "", func(id string, _ []byte) error {
		if id == HashID(secrets[0]) {
			n++
		}
		return nil
	})
	if n != 1 {
		t.Errorf("code not found under its hash")
	}
}

func TestPersistenceAcrossCloseAndReopen(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.PutClient(ctx, &Client{ID: "dyn", Type: ClientPublic, RedirectURIs: []string{"https://app/cb"}})
	_ = db.SaveSession(ctx, "s", &Session{User: "alice"}, time.Hour)
	_ = db.Revoke(ctx, RevokedToken, "jti-9", time.Now().Add(time.Hour))
	_ = db.UpdateKeys(ctx, func([]*KeyRecord) ([]*KeyRecord, error) {
		return []*KeyRecord{{KID: "k1", Alg: "ES256"}}, nil
	})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}

	db = openTest(t, dir)
	if c, err := db.GetClient(ctx, "dyn"); err != nil || c.RedirectURIs[0] != "https://app/cb" {
		t.Errorf("client: %v %+v", err, c)
	}
	if s, err := db.GetSession(ctx, "s"); err != nil || s.User != "alice" {
		t.Errorf("session: %v", err)
	}
	if rev, _ := db.IsRevoked(ctx, RevokedToken, "jti-9"); !rev {
		t.Error("revocation lost")
	}
	if keys, _ := db.Keys(ctx); len(keys) != 1 || keys[0].KID != "k1" {
		t.Errorf("keys: %+v", keys)
	}
}

func TestSecondOpenOfALockedDirectoryExplains(t *testing.T) {
	dir := t.TempDir()
	openTest(t, dir)
	_, err := Open(dir, Options{})
	if err == nil {
		t.Fatal("second open succeeded")
	}
	if !strings.Contains(err.Error(), "locked by another process") || !strings.Contains(err.Error(), "caddy reload") {
		t.Fatalf("unhelpful error: %v", err)
	}
}

func TestAcquireSharesOneDatabasePerDirectory(t *testing.T) {
	dir := t.TempDir()
	a, err := Acquire(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// A second holder of the same directory, named differently.
	b, err := Acquire(dir+"/./", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatal("two databases for one directory")
	}
	_ = a.PutClient(ctx, &Client{ID: "x", Type: ClientPublic})
	if err := Release(dir); err != nil {
		t.Fatal(err)
	}
	// Still open for the other holder.
	if _, err := b.GetClient(ctx, "x"); err != nil {
		t.Fatalf("after first release: %v", err)
	}
	if err := Release(dir); err != nil {
		t.Fatal(err)
	}
	// The last release closed it: it can be opened directly again.
	db := openTest(t, dir)
	if _, err := db.GetClient(ctx, "x"); err != nil {
		t.Fatalf("after reopen: %v", err)
	}
}

func TestSecretHashes(t *testing.T) {
	s := NewSecret()
	if len(s) < 43 {
		t.Fatalf("short secret %q", s)
	}
	h := HashSecret(s)
	if err := CheckSecretHash(h); err != nil {
		t.Fatal(err)
	}
	if !VerifySecret(h, s) || VerifySecret(h, s+"x") || VerifySecret(h, "") {
		t.Fatal("VerifySecret wrong")
	}
	if CheckSecretHash("plain-text") == nil {
		t.Fatal("accepted a non-hash")
	}
	// bcrypt, as caddy hash-password produces.
	raw, err := bcrypt.GenerateFromPassword([]byte("hiccup"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	bc := string(raw)
	if err := CheckSecretHash(bc); err != nil {
		t.Fatal(err)
	}
	if !VerifySecret(bc, "hiccup") || VerifySecret(bc, "nope") {
		t.Fatal("bcrypt verify wrong")
	}
}
