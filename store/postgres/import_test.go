package postgres_test

// Moving a Badger store to PostgreSQL (store.DB.Export, postgres.ImportAll):
// every kind of record survives, by its hashed key, so that what Badger
// issued works on PostgreSQL.

import (
	"encoding/json"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smartcaddy/smartauth/store"
	"github.com/smartcaddy/smartauth/store/postgres"
)

// fillBadger writes every kind of record through the normal store API.
func fillBadger(t *testing.T, b *store.DB, c *clock) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"app", "other", "gone"} {
		must(b.PutClient(ctx, &store.Client{ID: id, Type: store.ClientPublic, Name: "App " + id,
			RedirectURIs: []string{"https://" + id + ".example/cb"}, IssuedAt: c.Now(), Dynamic: true}))
	}
	must(b.RemoveClient(ctx, "gone", nil, c.Now().Add(24*time.Hour)))

	must(b.SaveCode(ctx, "code-live", &store.AuthCode{ClientID: "app", Subject: "alice", FamilyID: "fam-code"}, 10*time.Minute))
	must(b.SaveCode(ctx, "code-used", &store.AuthCode{ClientID: "app", Subject: "alice", FamilyID: "fam-used"}, 10*time.Minute))
	if _, err := b.RedeemCode(ctx, "code-used"); err != nil {
		t.Fatal(err)
	}
	must(b.SaveLaunch(ctx, "launch-1", &store.Launch{ClientID: "app", CreatedAt: c.Now(),
		LaunchContext: store.LaunchContext{Patient: "p1"}}, 10*time.Minute))
	must(b.SaveSession(ctx, "sess-1", &store.Session{User: "alice", AuthTime: c.Now(), CSRF: "csrf"}, time.Hour))
	must(b.SaveSession(ctx, "sess-old", &store.Session{User: "bob", AuthTime: c.Now()}, time.Minute))

	rt := func(family, client string) *store.RefreshToken {
		return &store.RefreshToken{FamilyID: family, ClientID: client, Subject: "alice", Scope: "openid offline_access"}
	}
	rot := func(next string) store.Rotation { return store.Rotation{Next: next, TTL: time.Hour} }
	// A rotated family: rt-1 used, rt-2 live.
	must(b.SaveRefresh(ctx, "rt-1", rt("fam-live", "app"), time.Hour))
	c.Advance(time.Second)
	if _, err := b.RotateRefresh(ctx, "rt-1", rot("rt-2")); err != nil {
		t.Fatal(err)
	}
	// A family revoked by reuse on Badger.
	must(b.SaveRefresh(ctx, "rv-1", rt("fam-revoked", "app"), time.Hour))
	if _, err := b.RotateRefresh(ctx, "rv-1", rot("rv-2")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.RotateRefresh(ctx, "rv-1", rot("rv-3")); !errors.Is(err, store.ErrReplayed) {
		t.Fatalf("reuse on Badger: %v", err)
	}
	// A token of a client whose tokens were revoked afterwards.
	must(b.SaveRefresh(ctx, "rc-1", rt("fam-client", "other"), time.Hour))
	c.Advance(time.Second)
	must(b.Revoke(ctx, store.RevokedClient, "other", c.Now().Add(24*time.Hour)))
	must(b.Revoke(ctx, store.RevokedToken, "access-jti", c.Now().Add(time.Hour)))

	must(b.UseJTI(ctx, "app", "assertion-1", c.Now().Add(5*time.Minute)))
	must(b.PutConsent(ctx, &store.Consent{User: "alice", ClientID: "app", Scopes: []string{"openid", "patient/*.rs"},
		GrantedAt: c.Now()}, 24*time.Hour))
	must(b.UpdateKeys(ctx, func([]*store.KeyRecord) ([]*store.KeyRecord, error) {
		return []*store.KeyRecord{
			{KID: "kid-rs", Alg: "RS256", PrivateKey: []byte{1, 2, 3}, PublicJWK: json.RawMessage(`{"kty":"RSA","kid":"kid-rs"}`),
				CreatedAt: c.Now(), ActiveFrom: c.Now()},
			{KID: "kid-old", Alg: "ES256", External: true, PublicJWK: json.RawMessage(`{"kty":"EC","kid":"kid-old"}`),
				CreatedAt: c.Now(), ActiveFrom: c.Now(), RetiredAt: c.Now(), PublishUntil: c.Now().Add(time.Hour)},
		}, nil
	}))
	if _, err := b.SiteSecret(ctx); err != nil {
		t.Fatal(err)
	}
	// sess-old expires before the move and is not copied.
	c.Advance(2 * time.Minute)
}

// wantCounts is how many records of each kind fillBadger leaves live.
var wantCounts = map[string]int{
	store.KindClient: 2, store.KindCode: 2, store.KindLaunch: 1, store.KindSession: 1,
	// rt-1, rt-2, rv-1, rv-2, rc-1
	store.KindRefresh: 5, store.KindJTI: 1, store.KindConsent: 1,
	// client gone, family fam-revoked, client other, token access-jti
	store.KindRevocation: 4, store.KindRevocationLog: 4, store.KindKey: 2, store.KindSiteSecret: 1,
}

// dump returns every row of every table as text, to compare a database
// before and after a second import.
func dump(t *testing.T, dsn string) map[string]string {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	out := map[string]string{}
	for _, table := range []string{"clients", "auth_codes", "launches", "sessions", "refresh_tokens", "used_jtis",
		"consents", "revocations", "revocation_log", "signing_keys", "store_meta"} {
		var s *string
		if err := conn.QueryRow(ctx, `SELECT string_agg(t::text, E'\n' ORDER BY t::text) FROM `+table+` t`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		if s == nil {
			t.Fatalf("table %s is empty after the import", table)
		}
		out[table] = *s
	}
	return out
}

// asJSON marshals v, for comparing records of both stores.
func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestImportFromBadger moves a Badger store with every kind of record to
// PostgreSQL and uses it there.
func TestImportFromBadger(t *testing.T) {
	c := newClock()
	b, err := store.Open(t.TempDir(), store.Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	fillBadger(t, b, c)
	dsn := freshDSN(t)
	p := openDSN(t, dsn, c)

	counts, err := p.ImportAll(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(counts, wantCounts) {
		t.Fatalf("counts %v, want %v", counts, wantCounts)
	}
	before := dump(t, dsn)
	again, err := p.ImportAll(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(again, counts) {
		t.Fatalf("second run counts %v, first %v", again, counts)
	}
	after := dump(t, dsn)
	for table := range before {
		if after[table] != before[table] {
			t.Errorf("the second run changed table %s:\nbefore %s\nafter  %s", table, before[table], after[table])
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// What both stores answer alike.
	for _, q := range []struct {
		name string
		get  func(s store.Store) (any, error)
	}{
		{"clients", func(s store.Store) (any, error) { return s.ListClients(ctx) }},
		{"keys", func(s store.Store) (any, error) { return s.Keys(ctx) }},
		{"site secret", func(s store.Store) (any, error) { return s.SiteSecret(ctx) }},
		{"consent", func(s store.Store) (any, error) { return s.GetConsent(ctx, "alice", "app") }},
		{"user grants", func(s store.Store) (any, error) { return s.UserGrants(ctx, "alice") }},
		{"launch", func(s store.Store) (any, error) { return s.GetLaunch(ctx, "launch-1") }},
		{"revocations", func(s store.Store) (any, error) {
			revs, err := s.RevokedSince(ctx, time.Time{})
			for i := range revs { // the same instants, whatever their location
				revs[i].At, revs[i].Until = revs[i].At.UTC(), revs[i].Until.UTC()
			}
			return revs, err
		}},
	} {
		bv, berr := q.get(b)
		pv, perr := q.get(p)
		if berr != nil || perr != nil {
			t.Fatalf("%s: Badger %v, PostgreSQL %v", q.name, berr, perr)
		}
		if bj, pj := asJSON(t, bv), asJSON(t, pv); bj != pj {
			t.Errorf("%s differ:\nBadger     %s\nPostgreSQL %s", q.name, bj, pj)
		}
	}
	for _, r := range []struct {
		kind store.RevocationKind
		id   string
		want bool
	}{
		{store.RevokedClient, "gone", true}, {store.RevokedClient, "other", true}, {store.RevokedFamily, "fam-revoked", true},
		{store.RevokedToken, "access-jti", true}, {store.RevokedFamily, "fam-live", false}, {store.RevokedClient, "app", false},
	} {
		if got, err := p.IsRevoked(ctx, r.kind, r.id); err != nil || got != r.want {
			t.Errorf("IsRevoked(%s %s) = %v, %v; want %v", r.kind, r.id, got, err, r.want)
		}
	}

	checkMoved(t, p, b, c)
}

// checkMoved uses the moved records through store.Store on PostgreSQL.
func checkMoved(t *testing.T, p *postgres.DB, b *store.DB, c *clock) {
	t.Helper()
	if s, err := p.GetSession(ctx, "sess-1"); err != nil || s.User != "alice" || s.CSRF != "csrf" {
		t.Fatalf("session by id: %+v, %v", s, err)
	}
	if s, err := p.GetSessionByHash(ctx, store.HashID("sess-1")); err != nil || s.User != "alice" {
		t.Fatalf("session by hash: %+v, %v", s, err)
	}
	if _, err := p.GetSession(ctx, "sess-old"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired session: %v", err)
	}
	if rec, err := p.RedeemCode(ctx, "code-live"); err != nil || rec.FamilyID != "fam-code" {
		t.Fatalf("redeeming the live code: %+v, %v", rec, err)
	}
	for _, code := range []string{"code-live", "code-used"} {
		if _, err := p.RedeemCode(ctx, code); !errors.Is(err, store.ErrReplayed) {
			t.Fatalf("redeeming %s again: %v", code, err)
		}
	}
	if l, err := p.ConsumeLaunch(ctx, "launch-1"); err != nil || l.Patient != "p1" {
		t.Fatalf("launch: %+v, %v", l, err)
	}
	if err := p.UseJTI(ctx, "app", "assertion-1", c.Now().Add(time.Minute)); !errors.Is(err, store.ErrReplayed) {
		t.Fatalf("jti used on Badger, again on PostgreSQL: %v", err)
	}
	for _, tok := range []string{"rv-2", "rc-1", "rt-1"} {
		if _, err := p.GetRefresh(ctx, tok); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("refresh %s (revoked or used) on PostgreSQL: %v", tok, err)
		}
	}
	rot := func(next string) store.Rotation { return store.Rotation{Next: next, TTL: time.Hour} }
	if old, err := p.RotateRefresh(ctx, "rt-2", rot("rt-3")); err != nil || old.FamilyID != "fam-live" {
		t.Fatalf("rotating the live token: %+v, %v", old, err)
	}
	// Importing again never makes a record less used: rt-2 stays rotated.
	if _, err := p.ImportAll(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := p.GetRefresh(ctx, "rt-2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rt-2, rotated on PostgreSQL, after a second import: %v", err)
	}
	if _, err := p.GetRefresh(ctx, "rt-3"); err != nil {
		t.Fatalf("rt-3: %v", err)
	}
	if _, err := p.RotateRefresh(ctx, "rt-1", rot("rt-4")); !errors.Is(err, store.ErrReplayed) {
		t.Fatalf("replaying rt-1 (rotated on Badger): %v", err)
	}
	if revoked, err := p.IsRevoked(ctx, store.RevokedFamily, "fam-live"); err != nil || !revoked {
		t.Fatalf("family after the replay: %v, %v", revoked, err)
	}
	if _, err := p.GetRefresh(ctx, "rt-3"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rt-3 after the family was revoked: %v", err)
	}
}
