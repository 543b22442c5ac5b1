package store

import (
	"slices"
	"testing"
	"time"
)

// TestUserGrants checks what the management page lists: per client, the
// live families of one user (not used members, not revoked or expired
// families, not families of a client whose tokens were revoked, not other
// users'), and remembered consents; DeleteConsent
// forgets one.
func TestUserGrants(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	db := openTest(t, t.TempDir(), c)
	save := func(token string, rec RefreshToken, ttl time.Duration) {
		t.Helper()
		rec.IssuedAt = c.Now()
		if err := db.SaveRefresh(ctx, token, &rec, ttl); err != nil {
			t.Fatal(err)
		}
	}
	save("a1", RefreshToken{FamilyID: "fa", ClientID: "app", Subject: "alice", Scope: "openid patient/*.rs"}, time.Hour)
	c.Add(time.Second)
	// Rotation: a1 becomes used, a2 is the live member of family fa.
	if _, err := db.RotateRefresh(ctx, "a1", Rotation{Next: "a2", TTL: time.Hour, Check: func(old *RefreshToken) (*RefreshToken, error) {
		next := *old
		next.IssuedAt = c.Now()
		next.Scope = "patient/*.rs"
		return &next, nil
	}}); err != nil {
		t.Fatal(err)
	}
	save("b1", RefreshToken{FamilyID: "fb", ClientID: "app", Subject: "alice"}, time.Hour)
	save("r1", RefreshToken{FamilyID: "fr", ClientID: "app", Subject: "alice"}, time.Hour)
	if err := db.Revoke(ctx, RevokedFamily, "fr", c.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	save("e1", RefreshToken{FamilyID: "fe", ClientID: "old", Subject: "alice"}, time.Minute)
	save("x1", RefreshToken{FamilyID: "fx", ClientID: "app", Subject: "bob"}, time.Hour)
	if err := db.PutConsent(ctx, &Consent{User: "alice", ClientID: "remembered", Scopes: []string{"openid"}, GrantedAt: c.Now()}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := db.PutConsent(ctx, &Consent{User: "bob", ClientID: "app", Scopes: []string{"openid"}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	save("k1", RefreshToken{FamilyID: "fk", ClientID: "killed", Subject: "alice"}, time.Hour)
	if err := db.Revoke(ctx, RevokedClient, "killed", c.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	c.Add(2 * time.Minute) // family fe expires

	grants, err := db.UserGrants(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(grants) != 2 || grants[0].ClientID != "app" || grants[1].ClientID != "remembered" {
		t.Fatalf("grants: %+v", grants)
	}
	app := grants[0]
	slices.Sort(app.Families)
	if !slices.Equal(app.Families, []string{"fa", "fb"}) || app.Remembered != nil {
		t.Errorf("app grant: %+v", app)
	}
	if grants[1].Families != nil || !slices.Equal(grants[1].Remembered, []string{"openid"}) {
		t.Errorf("remembered grant: %+v", grants[1])
	}

	if err := db.DeleteConsent(ctx, "alice", "remembered"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteConsent(ctx, "alice", "never"); err != nil {
		t.Fatalf("deleting an absent consent: %v", err)
	}
	if grants, _ = db.UserGrants(ctx, "alice"); len(grants) != 1 {
		t.Fatalf("after DeleteConsent: %+v", grants)
	}
	if bob, _ := db.UserGrants(ctx, "bob"); len(bob) != 1 || len(bob[0].Families) != 1 || bob[0].Remembered == nil {
		t.Fatalf("bob: %+v", bob)
	}
}
