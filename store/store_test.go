package store

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// clock is a settable clock for expiry tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openTest(t *testing.T, dir string, c *clock) *DB {
	t.Helper()
	o := Options{}
	if c != nil {
		o.Now = c.Now
	}
	db, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

var ctx = context.Background()

func TestExpiredRecordsAreNeverReturned(t *testing.T) {
	c := &clock{t: time.Now()}
	db := openTest(t, t.TempDir(), c)

	if err := db.SaveCode(ctx, "code-1", &AuthCode{ClientID: "app"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveSession(ctx, "sess-1", &Session{User: "alice"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveLaunch(ctx, "launch-1", &Launch{ClientID: "app"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveRefresh(ctx, "rt-1", &RefreshToken{FamilyID: "f1"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := db.PutConsent(ctx, &Consent{User: "alice", ClientID: "app", Scopes: []string{"openid"}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetSession(ctx, "sess-1"); err != nil {
		t.Fatalf("live session: %v", err)
	}
	if _, err := db.GetConsent(ctx, "alice", "app"); err != nil {
		t.Fatalf("live consent: %v", err)
	}

	c.Add(time.Minute) // exactly at expiry: expired
	if _, err := db.RedeemCode(ctx, "code-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired code: got %v, want ErrNotFound", err)
	}
	if _, err := db.ConsumeLaunch(ctx, "launch-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired launch: got %v, want ErrNotFound", err)
	}
	if _, err := db.GetConsent(ctx, "alice", "app"); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired consent: got %v, want ErrNotFound", err)
	}
	if _, err := db.GetSession(ctx, "sess-1"); err != nil {
		t.Errorf("session still live: %v", err)
	}
	c.Add(time.Hour)
	if _, err := db.GetSession(ctx, "sess-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired session: got %v", err)
	}
	if _, err := db.GetRefresh(ctx, "rt-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired refresh token: got %v", err)
	}
}

func TestSecretsAreStoredOnlyAsHashes(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir, nil)
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

func TestRedeemCodeExactlyOnceUnderConcurrency(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	if err := db.SaveCode(ctx, "the-code", &AuthCode{ClientID: "app", FamilyID: "fam"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	var ok, replayed, other atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			rec, err := db.RedeemCode(ctx, "the-code")
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrReplayed) && rec != nil && rec.FamilyID == "fam":
				replayed.Add(1)
			default:
				t.Errorf("unexpected: %v", err)
				other.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if ok.Load() != 1 || replayed.Load() != 49 {
		t.Fatalf("successes=%d replays=%d others=%d; want 1, 49, 0", ok.Load(), replayed.Load(), other.Load())
	}
}

func TestConsumeLaunchExactlyOnceUnderConcurrency(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	_ = db.SaveLaunch(ctx, "L", &Launch{LaunchContext: LaunchContext{Patient: "p1"}}, time.Minute)
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := db.ConsumeLaunch(ctx, "L")
			if err == nil && l.Patient == "p1" {
				ok.Add(1)
			} else if !errors.Is(err, ErrNotFound) {
				t.Errorf("unexpected: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("%d successes, want 1", ok.Load())
	}
}

func TestUseJTIOnceUnderConcurrency(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	var ok atomic.Int32
	var wg sync.WaitGroup
	exp := time.Now().Add(time.Minute)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := db.UseJTI(ctx, "client", "jti-1", exp)
			if err == nil {
				ok.Add(1)
			} else if !errors.Is(err, ErrReplayed) {
				t.Errorf("unexpected: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("%d successes, want 1", ok.Load())
	}
	// The same jti from another issuer is a different id.
	if err := db.UseJTI(ctx, "other", "jti-1", exp); err != nil {
		t.Fatal(err)
	}
}

func TestRefreshRotationAndReuseRevokesFamily(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	_ = db.SaveRefresh(ctx, "rt1", &RefreshToken{FamilyID: "fam", ClientID: "app"}, time.Hour)
	rec, err := db.RotateRefresh(ctx, "rt1", Rotation{Next: "rt2", TTL: time.Hour})
	if err != nil || rec.FamilyID != "fam" {
		t.Fatalf("rotate: %v %+v", err, rec)
	}
	if _, err := db.GetRefresh(ctx, "rt2"); err != nil {
		t.Fatalf("successor: %v", err)
	}
	// A refused check leaves the store untouched.
	refuse := errors.New("wrong client")
	if _, err := db.RotateRefresh(ctx, "rt2", Rotation{Next: "rt3", TTL: time.Hour, Check: func(*RefreshToken) (*RefreshToken, error) { return nil, refuse }}); !errors.Is(err, refuse) {
		t.Fatalf("check error: %v", err)
	}
	if _, err := db.GetRefresh(ctx, "rt2"); err != nil {
		t.Fatalf("rt2 after refused check: %v", err)
	}
	// Replaying rt1 revokes the family, rt2 included.
	if _, err := db.RotateRefresh(ctx, "rt1", Rotation{Next: "rt9", TTL: time.Hour}); !errors.Is(err, ErrReplayed) {
		t.Fatalf("replay: %v", err)
	}
	if _, err := db.GetRefresh(ctx, "rt2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rt2 after family revocation: %v", err)
	}
	if rev, _ := db.IsRevoked(ctx, RevokedFamily, "fam"); !rev {
		t.Fatal("family not revoked")
	}
	revs, err := db.RevokedSince(ctx, time.Now().Add(-time.Minute))
	if err != nil || len(revs) != 1 || revs[0].ID != "fam" {
		t.Fatalf("revocation log: %v %+v", err, revs)
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

	db = openTest(t, dir, nil)
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
	openTest(t, dir, nil)
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
	db := openTest(t, dir, nil)
	if _, err := db.GetClient(ctx, "x"); err != nil {
		t.Fatalf("after reopen: %v", err)
	}
}

func TestUpdateKeysDeletesOmitted(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	_ = db.UpdateKeys(ctx, func([]*KeyRecord) ([]*KeyRecord, error) {
		return []*KeyRecord{{KID: "a"}, {KID: "b"}}, nil
	})
	_ = db.UpdateKeys(ctx, func(cur []*KeyRecord) ([]*KeyRecord, error) {
		if len(cur) != 2 {
			t.Errorf("saw %d keys", len(cur))
		}
		return cur[1:], nil
	})
	keys, _ := db.Keys(ctx)
	if len(keys) != 1 || keys[0].KID != "b" {
		t.Fatalf("keys: %+v", keys)
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

func TestRefreshReuseRevokesTheWholeChainUntilItsLastExpiry(t *testing.T) {
	c := &clock{t: time.Now()}
	db := openTest(t, t.TempDir(), c)
	_ = db.SaveRefresh(ctx, "a", &RefreshToken{FamilyID: "fam"}, time.Hour)
	c.Add(50 * time.Minute)
	if _, err := db.RotateRefresh(ctx, "a", Rotation{Next: "b", TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	// "a" expires in 10 minutes, "b" in an hour. Reusing "a" must
	// revoke the family past "a"'s own expiry.
	if _, err := db.RotateRefresh(ctx, "a", Rotation{Next: "x", TTL: time.Hour}); !errors.Is(err, ErrReplayed) {
		t.Fatalf("reuse: %v", err)
	}
	c.Add(30 * time.Minute)
	if rev, _ := db.IsRevoked(ctx, RevokedFamily, "fam"); !rev {
		t.Fatal("the family revocation ended with the reused token, while its successor still lives")
	}
	if _, err := db.GetRefresh(ctx, "b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("successor after reuse: %v", err)
	}
}
