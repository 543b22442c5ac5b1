package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smartcaddy/smartauth/store"
	"github.com/smartcaddy/smartauth/store/postgres"
)

var ctx = context.Background()

// race runs fn n times at once and returns the errors.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range n {
		wg.Go(func() {
			start.Wait()
			errs[i] = fn(i)
		})
	}
	start.Done()
	wg.Wait()
	return errs
}

// count tallies errors: nil ones under "ok".
func count(errs []error) map[string]int {
	m := map[string]int{}
	for _, err := range errs {
		if err == nil {
			m["ok"]++
		} else {
			m[err.Error()]++
		}
	}
	return m
}

func TestMigrationsIdempotentAndConcurrent(t *testing.T) {
	dsn := freshDSN(t)
	c := newClock()
	errs := race(5, func(int) error {
		db, err := postgres.Open(ctx, dsn, postgres.Options{Now: c.Now})
		if err == nil {
			db.Close()
		}
		return err
	})
	if m := count(errs); m["ok"] != 5 {
		t.Fatalf("concurrent opens: %v", m)
	}
	db := openDSN(t, dsn, c) // once more: nothing to apply
	if err := db.SaveSession(ctx, "s", &store.Session{User: "u"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows, max int
	if err := conn.QueryRow(ctx, `SELECT count(*), max(version) FROM schema_version`).Scan(&rows, &max); err != nil {
		t.Fatal(err)
	}
	if rows != postgres.SchemaVersion() || max != postgres.SchemaVersion() {
		t.Fatalf("schema_version has %d rows, max %d; want %d", rows, max, postgres.SchemaVersion())
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	dsn := freshDSN(t)
	openDSN(t, dsn, newClock()).Close()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `INSERT INTO schema_version (version) VALUES (9999)`); err != nil {
		t.Fatal(err)
	}
	_, err = postgres.Open(ctx, dsn, postgres.Options{})
	var newer *postgres.NewerSchemaError
	if !errors.As(err, &newer) || newer.Database != 9999 || newer.Binary != postgres.SchemaVersion() {
		t.Fatalf("Open on a newer schema: %v", err)
	}
	want := []string{"version 9999", fmt.Sprintf("(version %d)", postgres.SchemaVersion())}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %q", err, w)
		}
	}
}

func TestOpenBadDSNDoesNotEchoIt(t *testing.T) {
	_, err := postgres.Open(ctx, "postgres://u:sekrit@[bad", postgres.Options{})
	if err == nil || strings.Contains(err.Error(), "sekrit") {
		t.Fatalf("Open with a bad DSN: %v", err)
	}
}

func TestCodes(t *testing.T) {
	c := newClock()
	db := open(t, c)
	rec := &store.AuthCode{ClientID: "app", Subject: "alice", FamilyID: "fam", Scope: "openid"}
	if err := db.SaveCode(ctx, "code-1", rec, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, err := db.RedeemCode(ctx, "code-1")
	if err != nil || got.ClientID != "app" || !got.Used {
		t.Fatalf("first redemption: %+v, %v", got, err)
	}
	got, err = db.RedeemCode(ctx, "code-1")
	if !errors.Is(err, store.ErrReplayed) || got == nil || got.FamilyID != "fam" || !got.Used {
		t.Fatalf("second redemption: %+v, %v", got, err)
	}
	if _, err := db.RedeemCode(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown code: %v", err)
	}
	if err := db.SaveCode(ctx, "code-2", rec, time.Minute); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute - time.Nanosecond)
	if err := db.SaveCode(ctx, "code-3", rec, time.Minute); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Nanosecond) // code-2 expires exactly now
	if _, err := db.RedeemCode(ctx, "code-2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired code: %v", err)
	}
	if _, err := db.RedeemCode(ctx, "code-3"); err != nil {
		t.Fatalf("live code: %v", err)
	}
}

func TestRedeemCodeOneWinner(t *testing.T) {
	db := open(t, newClock())
	if err := db.SaveCode(ctx, "contested", &store.AuthCode{ClientID: "app", FamilyID: "f"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	errs := race(50, func(int) error {
		rec, err := db.RedeemCode(ctx, "contested")
		if rec == nil || rec.FamilyID != "f" {
			return errors.New("no record")
		}
		return err
	})
	if m := count(errs); m["ok"] != 1 || m[store.ErrReplayed.Error()] != 49 {
		t.Fatalf("50 redemptions: %v", m)
	}
}

func TestLaunches(t *testing.T) {
	c := newClock()
	db := open(t, c)
	rec := &store.Launch{ClientID: "app", LaunchContext: store.LaunchContext{Patient: "p1"}}
	if err := db.SaveLaunch(ctx, "L", rec, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, err := db.GetLaunch(ctx, "L"); err != nil || got.Patient != "p1" {
		t.Fatalf("GetLaunch: %+v, %v", got, err)
	}
	if got, err := db.GetLaunch(ctx, "L"); err != nil || got.ClientID != "app" {
		t.Fatalf("GetLaunch does not use it up: %+v, %v", got, err)
	}
	errs := race(50, func(int) error { _, err := db.ConsumeLaunch(ctx, "L"); return err })
	if m := count(errs); m["ok"] != 1 || m[store.ErrNotFound.Error()] != 49 {
		t.Fatalf("50 consumptions: %v", m)
	}
	if _, err := db.GetLaunch(ctx, "L"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("consumed launch: %v", err)
	}
	if err := db.SaveLaunch(ctx, "M", rec, time.Minute); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute)
	if _, err := db.ConsumeLaunch(ctx, "M"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired launch: %v", err)
	}
}

func TestSessions(t *testing.T) {
	c := newClock()
	db := open(t, c)
	if err := db.SaveSession(ctx, "sid", &store.Session{User: "alice", CSRF: "x"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if s, err := db.GetSession(ctx, "sid"); err != nil || s.User != "alice" || s.CSRF != "x" {
		t.Fatalf("GetSession: %+v, %v", s, err)
	}
	if s, err := db.GetSessionByHash(ctx, store.HashID("sid")); err != nil || s.User != "alice" {
		t.Fatalf("GetSessionByHash: %+v, %v", s, err)
	}
	for _, h := range []string{"sid", "a\x00b", "\xff"} {
		if _, err := db.GetSessionByHash(ctx, h); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetSessionByHash(%q): %v", h, err)
		}
	}
	if err := db.DeleteSession(ctx, "sid"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetSession(ctx, "sid"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted session: %v", err)
	}
	if err := db.SaveSession(ctx, "s2", &store.Session{User: "bob"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Hour)
	if _, err := db.GetSession(ctx, "s2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired session: %v", err)
	}
}

func TestJTI(t *testing.T) {
	c := newClock()
	db := open(t, c)
	exp := c.Now().Add(time.Minute)
	if err := db.UseJTI(ctx, "app", "j1", exp); err != nil {
		t.Fatal(err)
	}
	if err := db.UseJTI(ctx, "app", "j1", exp); !errors.Is(err, store.ErrReplayed) {
		t.Fatalf("replayed jti: %v", err)
	}
	if err := db.UseJTI(ctx, "other", "j1", exp); err != nil {
		t.Fatalf("same jti, other issuer: %v", err)
	}
	errs := race(50, func(int) error { return db.UseJTI(ctx, "app", "j2", exp) })
	if m := count(errs); m["ok"] != 1 || m[store.ErrReplayed.Error()] != 49 {
		t.Fatalf("50 uses of one jti: %v", m)
	}
	c.Advance(time.Minute)
	if err := db.UseJTI(ctx, "app", "j1", c.Now().Add(time.Minute)); err != nil {
		t.Fatalf("jti after its expiry: %v", err)
	}
	// An exp in the past is kept for a second.
	if err := db.UseJTI(ctx, "app", "old", c.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := db.UseJTI(ctx, "app", "old", c.Now()); !errors.Is(err, store.ErrReplayed) {
		t.Fatalf("jti with a past exp, again: %v", err)
	}
}

func TestConsentsAndUserGrants(t *testing.T) {
	c := newClock()
	db := open(t, c)
	t0 := c.Now()
	if err := db.PutConsent(ctx, &store.Consent{User: "alice", ClientID: "b-app", Scopes: []string{"openid"}, GrantedAt: t0}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if got, err := db.GetConsent(ctx, "alice", "b-app"); err != nil || len(got.Scopes) != 1 {
		t.Fatalf("GetConsent: %+v, %v", got, err)
	}
	if _, err := db.GetConsent(ctx, "alice\x00", "b-app"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("odd user name: %v", err)
	}
	save := func(tok, client, fam string, issued time.Time) {
		t.Helper()
		rec := &store.RefreshToken{FamilyID: fam, ClientID: client, Subject: "alice", Scope: "s-" + fam, IssuedAt: issued, AuthTime: issued}
		if err := db.SaveRefresh(ctx, tok, rec, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	save("t1", "a-app", "f1", t0)
	save("t2", "a-app", "f2", t0.Add(time.Second))
	save("t3", "c-app", "f3", t0)
	if err := db.SaveRefresh(ctx, "t4", &store.RefreshToken{FamilyID: "f4", ClientID: "a-app", Subject: "bob"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := db.Revoke(ctx, store.RevokedFamily, "f3", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	gs, err := db.UserGrants(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 2 || gs[0].ClientID != "a-app" || gs[1].ClientID != "b-app" {
		t.Fatalf("UserGrants: %+v", gs)
	}
	if len(gs[0].Families) != 2 || gs[0].Scope != "s-f2" || !gs[0].IssuedAt.Equal(t0.Add(time.Second)) || gs[0].Remembered != nil {
		t.Fatalf("a-app grant: %+v", gs[0])
	}
	if gs[1].Families != nil || len(gs[1].Remembered) != 1 || !gs[1].AuthTime.Equal(t0) {
		t.Fatalf("b-app grant: %+v", gs[1])
	}
	if err := db.DeleteConsent(ctx, "alice", "b-app"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteConsent(ctx, "alice", "b-app"); err != nil {
		t.Fatalf("deleting an absent consent: %v", err)
	}
	if _, err := db.GetConsent(ctx, "alice", "b-app"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted consent: %v", err)
	}
	if err := db.PutConsent(ctx, &store.Consent{User: "bob", ClientID: "x", GrantedAt: t0}, time.Minute); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Hour)
	if _, err := db.GetConsent(ctx, "bob", "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired consent: %v", err)
	}
	if gs, err := db.UserGrants(ctx, "alice"); err != nil || len(gs) != 0 {
		t.Fatalf("UserGrants after expiry: %+v, %v", gs, err)
	}
}

// TestServingSince: an instance opening the database marks it as serving,
// once (a later Open keeps the first time); the migrate command's Open
// (ForMigration) does not.
func TestServingSince(t *testing.T) {
	ctx := context.Background()
	dsn := freshDSN(t)
	mig, err := postgres.Open(ctx, dsn, postgres.Options{ForMigration: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, serving, err := mig.ServingSince(ctx); err != nil || serving {
		t.Fatalf("after a migration Open: serving %v, %v", serving, err)
	}
	mig.Close()
	c := newClock()
	openDSN(t, dsn, c).Close()
	first := c.Now()
	c.Advance(time.Hour)
	db := openDSN(t, dsn, c)
	since, serving, err := db.ServingSince(ctx)
	if err != nil || !serving || !since.Equal(first) {
		t.Fatalf("ServingSince = %v, %v, %v; want %v, true", since, serving, err, first)
	}
}
