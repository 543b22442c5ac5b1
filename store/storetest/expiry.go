package storetest

import (
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/store"
)

// expiryCases check that every short-lived record lives exactly its
// time: live one second before its expiry, gone at it.
var expiryCases = []testCase{
	{"Code", func(t *testing.T, e *env) {
		e.must(e.s.SaveCode(ctx, "code-early", &store.AuthCode{ClientID: "app", FamilyID: "f1"}, time.Minute), "SaveCode")
		e.must(e.s.SaveCode(ctx, "code-late", &store.AuthCode{ClientID: "app", FamilyID: "f2"}, time.Minute), "SaveCode")
		e.c.Add(time.Minute - time.Second)
		if _, err := e.s.RedeemCode(ctx, "code-early"); err != nil {
			t.Fatalf("a code one second before its expiry: %v", err)
		}
		e.c.Add(time.Second) // exactly at expiry: expired
		_, err := e.s.RedeemCode(ctx, "code-late")
		e.wantErr(err, store.ErrNotFound, "a code at its expiry")
		// A used code is remembered (a replay is told apart) until it
		// expires, then it is gone.
		_, err = e.s.RedeemCode(ctx, "code-early")
		e.wantErr(err, store.ErrNotFound, "a used code after its expiry")
	}},
	{"Launch", func(t *testing.T, e *env) {
		e.must(e.s.SaveLaunch(ctx, "launch-1", &store.Launch{ClientID: "app"}, time.Minute), "SaveLaunch")
		e.c.Add(time.Minute - time.Second)
		if _, err := e.s.GetLaunch(ctx, "launch-1"); err != nil {
			t.Fatalf("a launch one second before its expiry: %v", err)
		}
		e.c.Add(time.Second)
		_, err := e.s.GetLaunch(ctx, "launch-1")
		e.wantErr(err, store.ErrNotFound, "GetLaunch at expiry")
		_, err = e.s.ConsumeLaunch(ctx, "launch-1")
		e.wantErr(err, store.ErrNotFound, "ConsumeLaunch at expiry")
	}},
	{"Session", func(t *testing.T, e *env) {
		e.must(e.s.SaveSession(ctx, "sess-1", &store.Session{User: "alice"}, time.Hour), "SaveSession")
		e.c.Add(time.Hour - time.Second)
		if _, err := e.s.GetSession(ctx, "sess-1"); err != nil {
			t.Fatalf("a session one second before its expiry: %v", err)
		}
		if _, err := e.s.GetSessionByHash(ctx, store.HashID("sess-1")); err != nil {
			t.Fatalf("a session by hash one second before its expiry: %v", err)
		}
		e.c.Add(time.Second)
		_, err := e.s.GetSession(ctx, "sess-1")
		e.wantErr(err, store.ErrNotFound, "GetSession at expiry")
		_, err = e.s.GetSessionByHash(ctx, store.HashID("sess-1"))
		e.wantErr(err, store.ErrNotFound, "GetSessionByHash at expiry")
	}},
	{"Refresh", func(t *testing.T, e *env) {
		e.must(e.s.SaveRefresh(ctx, "rt-1", &store.RefreshToken{FamilyID: "f1", ClientID: "app", Subject: "alice"}, time.Hour), "SaveRefresh")
		e.must(e.s.SaveRefresh(ctx, "rt-2", &store.RefreshToken{FamilyID: "f2", ClientID: "app", Subject: "alice"}, time.Hour), "SaveRefresh")
		e.c.Add(time.Hour - time.Second)
		if _, err := e.s.GetRefresh(ctx, "rt-1"); err != nil {
			t.Fatalf("a refresh token one second before its expiry: %v", err)
		}
		if grants, err := e.s.UserGrants(ctx, "alice"); err != nil || len(grants) != 1 || len(grants[0].Families) != 2 {
			t.Fatalf("UserGrants before expiry: %+v %v", grants, err)
		}
		e.c.Add(time.Second)
		_, err := e.s.GetRefresh(ctx, "rt-1")
		e.wantErr(err, store.ErrNotFound, "GetRefresh at expiry")
		_, err = e.s.RotateRefresh(ctx, "rt-2", store.Rotation{Next: "rt-3", TTL: time.Hour})
		e.wantErr(err, store.ErrNotFound, "RotateRefresh at expiry")
		if _, err := e.s.GetRefresh(ctx, "rt-3"); err == nil {
			t.Error("rotating an expired token issued a successor")
		}
		if grants, err := e.s.UserGrants(ctx, "alice"); err != nil || len(grants) != 0 {
			t.Errorf("UserGrants lists expired families: %+v %v", grants, err)
		}
	}},
	{"RotatedSuccessorLivesItsTTL", func(t *testing.T, e *env) {
		e.must(e.s.SaveRefresh(ctx, "a", &store.RefreshToken{FamilyID: "f", ClientID: "app"}, time.Hour), "SaveRefresh")
		e.c.Add(50 * time.Minute)
		if _, err := e.s.RotateRefresh(ctx, "a", store.Rotation{Next: "b", TTL: 30 * time.Minute}); err != nil {
			t.Fatal(err)
		}
		e.c.Add(30*time.Minute - time.Second)
		if _, err := e.s.GetRefresh(ctx, "b"); err != nil {
			t.Fatalf("the successor one second before its TTL ends: %v", err)
		}
		e.c.Add(time.Second)
		_, err := e.s.GetRefresh(ctx, "b")
		e.wantErr(err, store.ErrNotFound, "the successor at the end of its TTL")
	}},
	{"Consent", func(t *testing.T, e *env) {
		e.must(e.s.PutConsent(ctx, &store.Consent{User: "alice", ClientID: "app", Scopes: []string{"openid"}}, time.Minute), "PutConsent")
		e.c.Add(time.Minute - time.Second)
		if _, err := e.s.GetConsent(ctx, "alice", "app"); err != nil {
			t.Fatalf("a consent one second before its expiry: %v", err)
		}
		e.c.Add(time.Second)
		_, err := e.s.GetConsent(ctx, "alice", "app")
		e.wantErr(err, store.ErrNotFound, "GetConsent at expiry")
		if grants, err := e.s.UserGrants(ctx, "alice"); err != nil || len(grants) != 0 {
			t.Errorf("UserGrants lists an expired consent: %+v %v", grants, err)
		}
	}},
	{"JTI", func(t *testing.T, e *env) {
		exp := e.c.Now().Add(time.Minute)
		e.must(e.s.UseJTI(ctx, "client", "j1", exp), "UseJTI")
		e.c.Add(time.Minute - time.Second)
		e.wantErr(e.s.UseJTI(ctx, "client", "j1", exp), store.ErrReplayed, "a jti one second before its expiry")
		e.c.Add(time.Second)
		// The record is gone at exp: the assertion carrying it has
		// expired too, and the verifier refuses it on its own.
		if err := e.s.UseJTI(ctx, "client", "j1", exp.Add(time.Minute)); err != nil {
			t.Errorf("a jti after its expiry: %v, want it recorded anew", err)
		}
		// A jti whose exp has already passed is still recorded for a
		// moment: a replay at the same instant is refused.
		past := e.c.Now().Add(-time.Minute)
		e.must(e.s.UseJTI(ctx, "client", "j2", past), "UseJTI with a past exp")
		e.wantErr(e.s.UseJTI(ctx, "client", "j2", past), store.ErrReplayed, "replay of a jti with a past exp")
	}},
	{"Revocation", func(t *testing.T, e *env) {
		until := e.c.Now().Add(time.Hour)
		e.must(e.s.Revoke(ctx, store.RevokedToken, "jti-1", until), "Revoke")
		e.c.Add(time.Hour - time.Second)
		if rev, err := e.s.IsRevoked(ctx, store.RevokedToken, "jti-1"); err != nil || !rev {
			t.Fatalf("a revocation one second before its end: %t %v", rev, err)
		}
		e.c.Add(time.Second)
		if rev, err := e.s.IsRevoked(ctx, store.RevokedToken, "jti-1"); err != nil || rev {
			t.Errorf("a revocation after its end: %t %v", rev, err)
		}
		_, err := e.s.Revocation(ctx, store.RevokedToken, "jti-1")
		e.wantErr(err, store.ErrNotFound, "Revocation after its end")
		if revs, err := e.s.RevokedSince(ctx, start); err != nil || len(revs) != 0 {
			t.Errorf("RevokedSince lists an ended revocation: %+v %v", revs, err)
		}
	}},
	{"RevocationOfThePast", func(t *testing.T, e *env) {
		// A revocation whose until has passed names nothing still valid,
		// but a cache polling RevokedSince must still see it.
		now := e.c.Now()
		e.must(e.s.Revoke(ctx, store.RevokedToken, "old", now.Add(-time.Minute)), "Revoke")
		revs, err := e.s.RevokedSince(ctx, now)
		if err != nil || len(revs) != 1 || revs[0].ID != "old" {
			t.Fatalf("RevokedSince after a revocation of the past: %+v %v", revs, err)
		}
		if revoked, err := e.s.IsRevoked(ctx, store.RevokedToken, "old"); err != nil || !revoked {
			t.Errorf("IsRevoked right after: %t %v", revoked, err)
		}
	}},
}
