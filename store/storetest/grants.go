package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/store"
)

// consentCases check remembered consents and UserGrants.
var consentCases = []testCase{
	{"PutGetDelete", func(t *testing.T, e *env) {
		_, err := e.s.GetConsent(ctx, "alice", "app")
		e.wantErr(err, store.ErrNotFound, "GetConsent before PutConsent")
		rec := &store.Consent{User: "alice", ClientID: "app", Scopes: []string{"openid", "patient/*.rs"}, GrantedAt: e.c.Now()}
		e.must(e.s.PutConsent(ctx, rec, time.Hour), "PutConsent")
		got, err := e.s.GetConsent(ctx, "alice", "app")
		e.must(err, "GetConsent")
		same(t, "the consent", got, rec)
		for _, k := range [][2]string{{"bob", "app"}, {"alice", "other"}, {"aliceapp", ""}, {"", "aliceapp"}} {
			_, err := e.s.GetConsent(ctx, k[0], k[1])
			e.wantErr(err, store.ErrNotFound, "GetConsent of another user or client "+k[0]+"/"+k[1])
		}
		// PutConsent replaces, with its new ttl.
		rec2 := &store.Consent{User: "alice", ClientID: "app", Scopes: []string{"openid"}, GrantedAt: e.c.Now().Add(time.Second)}
		e.must(e.s.PutConsent(ctx, rec2, 2*time.Hour), "PutConsent again")
		e.c.Add(90 * time.Minute)
		got, err = e.s.GetConsent(ctx, "alice", "app")
		e.must(err, "GetConsent of the replaced consent")
		same(t, "the replaced consent", got, rec2)
		e.must(e.s.DeleteConsent(ctx, "alice", "app"), "DeleteConsent")
		_, err = e.s.GetConsent(ctx, "alice", "app")
		e.wantErr(err, store.ErrNotFound, "GetConsent after DeleteConsent")
		e.must(e.s.DeleteConsent(ctx, "alice", "never"), "DeleteConsent of an absent consent")
	}},
	{"UserGrants", userGrantsCase},
}

// userGrantsCase checks what the management page lists: per client, the
// live families of one user (not used members, not revoked or expired
// families, not families of a client whose tokens were revoked, not other
// users'), and remembered consents.
func userGrantsCase(t *testing.T, e *env) {
	if grants, err := e.s.UserGrants(ctx, "alice"); err != nil || len(grants) != 0 {
		t.Fatalf("UserGrants of an empty store: %+v %v", grants, err)
	}
	authA := e.c.Now().Add(-time.Hour)
	save := func(token string, rec store.RefreshToken, ttl time.Duration) {
		t.Helper()
		rec.IssuedAt = e.c.Now()
		e.must(e.s.SaveRefresh(ctx, token, &rec, ttl), "SaveRefresh "+token)
	}
	save("a1", store.RefreshToken{FamilyID: "fa", ClientID: "app", Subject: "alice", Scope: "openid patient/*.rs", AuthTime: authA,
		Context: store.LaunchContext{Patient: "pat-2"}}, time.Hour)
	e.c.Add(time.Second)
	// Rotation: a1 becomes used, a2 is the live member of family fa.
	_, err := e.s.RotateRefresh(ctx, "a1", store.Rotation{Next: "a2", TTL: time.Hour, Check: func(old *store.RefreshToken) (*store.RefreshToken, error) {
		next := *old
		next.Scope = "patient/*.rs"
		return &next, nil
	}})
	e.must(err, "RotateRefresh")
	rotatedAt := e.c.Now()
	authB := e.c.Now().Add(-time.Minute)
	save("b1", store.RefreshToken{FamilyID: "fb", ClientID: "app", Subject: "alice", Scope: "launch", AuthTime: authB,
		Context: store.LaunchContext{Patient: "pat-1"}}, time.Hour)
	save("b2", store.RefreshToken{FamilyID: "fb2", ClientID: "app", Subject: "alice", Scope: "launch", AuthTime: authB,
		Context: store.LaunchContext{Patient: "pat-2"}}, time.Hour)
	save("r1", store.RefreshToken{FamilyID: "fr", ClientID: "app", Subject: "alice", Context: store.LaunchContext{Patient: "pat-revoked"}}, time.Hour)
	e.must(e.s.Revoke(ctx, store.RevokedFamily, "fr", e.c.Now().Add(time.Hour)), "Revoke")
	save("e1", store.RefreshToken{FamilyID: "fe", ClientID: "old", Subject: "alice"}, time.Minute)
	save("x1", store.RefreshToken{FamilyID: "fx", ClientID: "app", Subject: "bob"}, time.Hour)
	granted := e.c.Now()
	e.must(e.s.PutConsent(ctx, &store.Consent{User: "alice", ClientID: "remembered", Scopes: []string{"openid"}, GrantedAt: granted}, time.Hour), "PutConsent")
	e.must(e.s.PutConsent(ctx, &store.Consent{User: "bob", ClientID: "app", Scopes: []string{"openid"}}, time.Hour), "PutConsent")
	save("k1", store.RefreshToken{FamilyID: "fk", ClientID: "killed", Subject: "alice"}, time.Hour)
	e.must(e.s.Revoke(ctx, store.RevokedClient, "killed", e.c.Now().Add(time.Hour)), "Revoke client")
	e.c.Add(2 * time.Minute) // family fe expires

	grants, err := e.s.UserGrants(ctx, "alice")
	e.must(err, "UserGrants")
	if len(grants) != 2 || grants[0].ClientID != "app" || grants[1].ClientID != "remembered" {
		t.Fatalf("grants: %+v, want app and remembered, by client id", grants)
	}
	app := grants[0]
	slices.Sort(app.Families)
	if !slices.Equal(app.Families, []string{"fa", "fb", "fb2"}) || app.Remembered != nil {
		t.Errorf("app grant: %+v", app)
	}
	// The patients of the live families, sorted, each once; not the
	// revoked family's.
	if !slices.Equal(app.Patients, []string{"pat-1", "pat-2"}) {
		t.Errorf("app grant patients: %v, want [pat-1 pat-2]", app.Patients)
	}
	// a2 and b1 were issued at the same instant, so which scope is the
	// newest is not defined; the times are.
	if !app.IssuedAt.Equal(rotatedAt) || !app.AuthTime.Equal(authB) {
		t.Errorf("app grant times: issued %v auth %v, want %v and %v", app.IssuedAt, app.AuthTime, rotatedAt, authB)
	}
	rem := grants[1]
	if rem.Families != nil || !slices.Equal(rem.Remembered, []string{"openid"}) || !rem.AuthTime.Equal(granted) {
		t.Errorf("remembered grant: %+v", rem)
	}
	e.must(e.s.DeleteConsent(ctx, "alice", "remembered"), "DeleteConsent")
	if grants, _ = e.s.UserGrants(ctx, "alice"); len(grants) != 1 {
		t.Fatalf("after DeleteConsent: %+v", grants)
	}
	if bob, _ := e.s.UserGrants(ctx, "bob"); len(bob) != 1 || len(bob[0].Families) != 1 || bob[0].Remembered == nil {
		t.Fatalf("bob: %+v", bob)
	}
}
