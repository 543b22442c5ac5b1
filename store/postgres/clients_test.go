package postgres_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smartcaddy/smartauth/store"
)

func TestRevocations(t *testing.T) {
	c := newClock()
	db := open(t, c)
	t0 := c.Now()
	if err := db.Revoke(ctx, store.RevokedToken, "j1", t0.Add(90*time.Minute+time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	rev, err := db.Revocation(ctx, store.RevokedToken, "j1")
	if err != nil || !rev.At.Equal(t0) || !rev.Until.Equal(t0.Truncate(time.Second).Add(90*time.Minute+time.Second)) {
		t.Fatalf("Revocation: %+v, %v (Until rounded up to a second)", rev, err)
	}
	if ok, err := db.IsRevoked(ctx, store.RevokedToken, "j2"); ok || err != nil {
		t.Fatalf("IsRevoked of another id: %t, %v", ok, err)
	}
	if ok, err := db.IsRevoked(ctx, store.RevokedFamily, "j1"); ok || err != nil {
		t.Fatalf("IsRevoked of another kind: %t, %v", ok, err)
	}
	if _, err := db.Revocation(ctx, store.RevokedToken, ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("empty id: %v", err)
	}
	c.Advance(time.Second)
	// A shorter second revocation changes nothing and logs nothing.
	if err := db.Revoke(ctx, store.RevokedToken, "j1", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// An Until in the past is kept a minute.
	if err := db.Revoke(ctx, store.RevokedFamily, "f1", t0); err != nil {
		t.Fatal(err)
	}
	if rev, err := db.Revocation(ctx, store.RevokedFamily, "f1"); err != nil || rev.Until.Before(c.Now().Add(time.Minute)) {
		t.Fatalf("past Until: %+v, %v", rev, err)
	}
	c.Advance(time.Second)
	// A later client revocation moves At on, never back.
	for range 2 {
		if err := db.Revoke(ctx, store.RevokedClient, "app", t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if rev, err := db.Revocation(ctx, store.RevokedClient, "app"); err != nil || !rev.At.Equal(c.Now()) {
		t.Fatalf("client revocation: %+v, %v", rev, err)
	}
	all, err := db.RevokedSince(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range all {
		got = append(got, fmt.Sprintf("%s:%s@%s", r.Kind, r.ID, r.At.Sub(t0)))
	}
	want := "[jti:j1@0s family:f1@1s client:app@2s]"
	if fmt.Sprint(got) != want {
		t.Fatalf("RevokedSince(t0) = %v, want %s", got, want)
	}
	if later, err := db.RevokedSince(ctx, t0.Add(time.Second)); err != nil || len(later) != 2 || later[0].ID != "f1" {
		t.Fatalf("RevokedSince(t0+1s) = %+v, %v", later, err)
	}
	c.Advance(time.Minute)
	if ok, _ := db.IsRevoked(ctx, store.RevokedFamily, "f1"); ok {
		t.Fatal("expired revocation still reported")
	}
	if later, err := db.RevokedSince(ctx, t0); err != nil || len(later) != 2 {
		t.Fatalf("RevokedSince after f1 expired = %+v, %v", later, err)
	}
	errs := race(50, func(int) error { return db.Revoke(ctx, store.RevokedFamily, "hot", c.Now().Add(time.Hour)) })
	if m := count(errs); m["ok"] != 50 {
		t.Fatalf("50 concurrent revocations: %v", m)
	}
}

func TestClients(t *testing.T) {
	c := newClock()
	db := open(t, c)
	if err := db.PutClient(ctx, &store.Client{}); err == nil {
		t.Fatal("a client without id was stored")
	}
	for _, id := range []string{"b", "a", "c\x00odd"} {
		if err := db.PutClient(ctx, &store.Client{ID: id, Type: store.ClientPublic, RedirectURIs: []string{"https://x/cb"}}); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := db.GetClient(ctx, "c\x00odd"); err != nil || got.ID != "c\x00odd" {
		t.Fatalf("GetClient of an id with NUL: %+v, %v", got, err)
	}
	if _, err := db.GetClient(ctx, "\xff"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetClient of invalid UTF-8: %v", err)
	}
	list, err := db.ListClients(ctx)
	if err != nil || len(list) != 3 || list[0].ID != "a" || list[1].ID != "b" {
		t.Fatalf("ListClients: %+v, %v", list, err)
	}
	if err := db.DeleteClient(ctx, "c\x00odd"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteClient(ctx, "absent"); err != nil {
		t.Fatalf("deleting an absent client: %v", err)
	}
	// Concurrent updates all apply, one after the other.
	errs := race(20, func(i int) error {
		return db.UpdateClient(ctx, "a", func(cl *store.Client) (*store.Client, error) {
			cl.Scopes = append(cl.Scopes, fmt.Sprint(i))
			return cl, nil
		})
	})
	if m := count(errs); m["ok"] != 20 {
		t.Fatalf("20 updates: %v", m)
	}
	if got, _ := db.GetClient(ctx, "a"); len(got.Scopes) != 20 {
		t.Fatalf("after 20 updates: %d scopes", len(got.Scopes))
	}
	boom := errors.New("boom")
	if err := db.UpdateClient(ctx, "a", func(*store.Client) (*store.Client, error) { return nil, boom }); err != boom {
		t.Fatalf("fn error: %v", err)
	}
	if err := db.UpdateClient(ctx, "a", func(cl *store.Client) (*store.Client, error) { cl.ID = "z"; return cl, nil }); err == nil {
		t.Fatal("UpdateClient changed an id")
	}
	if err := db.UpdateClient(ctx, "nope", func(cl *store.Client) (*store.Client, error) { return cl, nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateClient of an absent client: %v", err)
	}
	if err := db.UpdateClient(ctx, "b", func(*store.Client) (*store.Client, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetClient(ctx, "b"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("client deleted by UpdateClient: %v", err)
	}
	// RemoveClient: check refuses; then of 20 removals one wins.
	if err := db.RemoveClient(ctx, "a", func(*store.Client) error { return boom }, c.Now().Add(time.Hour)); err != boom {
		t.Fatalf("refused removal: %v", err)
	}
	if ok, _ := db.IsRevoked(ctx, store.RevokedClient, "a"); ok {
		t.Fatal("a refused removal revoked the client")
	}
	errs = race(20, func(int) error { return db.RemoveClient(ctx, "a", nil, c.Now().Add(time.Hour)) })
	if m := count(errs); m["ok"] != 1 || m[store.ErrNotFound.Error()] != 19 {
		t.Fatalf("20 removals: %v", m)
	}
	if rev, err := db.Revocation(ctx, store.RevokedClient, "a"); err != nil || !rev.At.Equal(c.Now()) {
		t.Fatalf("removal's revocation: %+v, %v", rev, err)
	}
}

func TestKeys(t *testing.T) {
	db := open(t, newClock())
	// Two instances generating the first key at once: the second sees
	// the first's key.
	errs := race(10, func(i int) error {
		return db.UpdateKeys(ctx, func(cur []*store.KeyRecord) ([]*store.KeyRecord, error) {
			if len(cur) > 0 {
				return cur, nil
			}
			return []*store.KeyRecord{{KID: fmt.Sprint("k", i), Alg: "ES384", PublicJWK: []byte(`{"kty": "EC"}`)}}, nil
		})
	})
	if m := count(errs); m["ok"] != 10 {
		t.Fatalf("10 updates: %v", m)
	}
	keys, err := db.Keys(ctx)
	if err != nil || len(keys) != 1 || string(keys[0].PublicJWK) != `{"kty":"EC"}` {
		t.Fatalf("Keys: %+v, %v (the JWK as encoding/json wrote it)", keys, err)
	}
	first := keys[0].KID
	err = db.UpdateKeys(ctx, func(cur []*store.KeyRecord) ([]*store.KeyRecord, error) {
		return []*store.KeyRecord{{KID: "new", Alg: "RS384"}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if keys, _ := db.Keys(ctx); len(keys) != 1 || keys[0].KID != "new" {
		t.Fatalf("keys left out were not deleted (%s): %+v", first, keys)
	}
	boom := errors.New("boom")
	if err := db.UpdateKeys(ctx, func([]*store.KeyRecord) ([]*store.KeyRecord, error) { return nil, boom }); err != boom {
		t.Fatalf("fn error: %v", err)
	}
	if keys, _ := db.Keys(ctx); len(keys) != 1 {
		t.Fatal("a failed update changed the keys")
	}
}

func TestSweep(t *testing.T) {
	c := newClock()
	dsn := freshDSN(t)
	db := openDSN(t, dsn, c)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(db.SaveCode(ctx, "c", &store.AuthCode{}, time.Minute))
	must(db.SaveLaunch(ctx, "l", &store.Launch{}, time.Minute))
	must(db.SaveSession(ctx, "s", &store.Session{}, time.Minute))
	must(db.SaveRefresh(ctx, "r", &store.RefreshToken{FamilyID: "f"}, time.Minute))
	must(db.UseJTI(ctx, "i", "j", c.Now().Add(time.Minute)))
	must(db.PutConsent(ctx, &store.Consent{User: "u", ClientID: "c"}, time.Minute))
	must(db.Revoke(ctx, store.RevokedToken, "t", c.Now().Add(time.Minute)))
	must(db.SaveSession(ctx, "keep", &store.Session{}, time.Hour))
	if n, err := db.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("Sweep with nothing expired: %d, %v", n, err)
	}
	c.Advance(2 * time.Minute)
	// Another instance sweeping: this one skips.
	conn, err := pgx.Connect(ctx, dsn)
	must(err)
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	must(err)
	_, err = tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('smartauth/sweep', 0))`)
	must(err)
	if n, err := db.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("Sweep while another instance sweeps: %d, %v", n, err)
	}
	must(tx.Rollback(ctx))
	if n, err := db.Sweep(ctx); err != nil || n != 8 {
		t.Fatalf("Sweep: %d, %v; want 8 (7 records and a log entry)", n, err)
	}
	if _, err := db.GetSession(ctx, "keep"); err != nil {
		t.Fatalf("live session swept: %v", err)
	}
}
