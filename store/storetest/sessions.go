package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/store"
)

// sessionCases check sign-in sessions, by id and by hash.
var sessionCases = []testCase{
	{"SaveGetDelete", func(t *testing.T, e *env) {
		_, err := e.s.GetSession(ctx, "s1")
		e.wantErr(err, store.ErrNotFound, "GetSession before SaveSession")
		rec := &store.Session{User: "alice", AuthTime: e.c.Now().Add(-time.Minute), CSRF: "csrf-secret"}
		e.must(e.s.SaveSession(ctx, "s1", rec, time.Hour), "SaveSession")
		got, err := e.s.GetSession(ctx, "s1")
		e.must(err, "GetSession")
		same(t, "the session", got, rec)
		got, err = e.s.GetSessionByHash(ctx, store.HashID("s1"))
		e.must(err, "GetSessionByHash")
		same(t, "the session by hash", got, rec)
		// The id is the secret: the hash is not a session id, nor the id
		// a hash.
		_, err = e.s.GetSession(ctx, store.HashID("s1"))
		e.wantErr(err, store.ErrNotFound, "GetSession by the hash")
		_, err = e.s.GetSessionByHash(ctx, "s1")
		e.wantErr(err, store.ErrNotFound, "GetSessionByHash by the id")
		// SaveSession replaces.
		rec2 := &store.Session{User: "alice", AuthTime: e.c.Now(), CSRF: "other"}
		e.must(e.s.SaveSession(ctx, "s1", rec2, time.Hour), "SaveSession again")
		got, err = e.s.GetSession(ctx, "s1")
		e.must(err, "GetSession")
		same(t, "the replaced session", got, rec2)
		e.must(e.s.SaveSession(ctx, "s2", &store.Session{User: "bob"}, time.Hour), "SaveSession s2")
		e.must(e.s.DeleteSession(ctx, "s1"), "DeleteSession")
		_, err = e.s.GetSession(ctx, "s1")
		e.wantErr(err, store.ErrNotFound, "GetSession after DeleteSession")
		_, err = e.s.GetSessionByHash(ctx, store.HashID("s1"))
		e.wantErr(err, store.ErrNotFound, "GetSessionByHash after DeleteSession")
		e.must(e.s.DeleteSession(ctx, "s1"), "DeleteSession of an absent session")
		if s, err := e.s.GetSession(ctx, "s2"); err != nil || s.User != "bob" {
			t.Errorf("another session after a delete: %+v %v", s, err)
		}
	}},
}

// codeCases check what codes and launches keep.
var codeCases = []testCase{
	{"CodeRoundTrip", func(t *testing.T, e *env) {
		banner := true
		rec := &store.AuthCode{
			ClientID: "app", RedirectURI: "https://app.example/cb", CodeChallenge: "challenge", Scope: "openid launch",
			Subject: "alice", Nonce: "n", AuthTime: e.c.Now().Add(-time.Minute), SessionHash: store.HashID("sess"),
			Context: store.LaunchContext{Patient: "p1", Encounter: "e1", FHIRContext: []json.RawMessage{json.RawMessage(`{"reference":"Appointment/1"}`)},
				NeedPatientBanner: &banner, SmartStyleURL: "https://ehr/style", Intent: "reconcile", Tenant: "t1"},
			FamilyID: "fam",
		}
		e.must(e.s.SaveCode(ctx, "code", rec, time.Minute), "SaveCode")
		got, err := e.s.RedeemCode(ctx, "code")
		e.must(err, "RedeemCode")
		got.Used = false // the first redemption may mark it
		same(t, "the redeemed code", got, rec)
		got, err = e.s.RedeemCode(ctx, "code")
		e.wantErr(err, store.ErrReplayed, "a second redemption")
		if got == nil {
			t.Fatal("a replay returned no record")
		}
		got.Used = false
		same(t, "the replayed code's record", got, rec)
		_, err = e.s.RedeemCode(ctx, "unknown")
		e.wantErr(err, store.ErrNotFound, "RedeemCode of an unknown code")
		_, err = e.s.RedeemCode(ctx, store.HashID("code"))
		e.wantErr(err, store.ErrNotFound, "RedeemCode by the stored hash")
	}},
	{"LaunchRoundTrip", func(t *testing.T, e *env) {
		banner := false
		rec := &store.Launch{
			LaunchContext: store.LaunchContext{Patient: "p1", Encounter: "e1", FHIRContext: []json.RawMessage{json.RawMessage(`{"reference":"Location/2","role":"x"}`)},
				NeedPatientBanner: &banner, SmartStyleURL: "https://ehr/style", Intent: "view", Tenant: "t1"},
			ClientID: "app", User: "alice", CreatedBy: "ehr", CreatedAt: e.c.Now(),
		}
		e.must(e.s.SaveLaunch(ctx, "L", rec, time.Minute), "SaveLaunch")
		for range 2 {
			got, err := e.s.GetLaunch(ctx, "L")
			e.must(err, "GetLaunch (it does not use the launch up)")
			same(t, "the launch", got, rec)
		}
		_, err := e.s.GetLaunch(ctx, store.HashID("L"))
		e.wantErr(err, store.ErrNotFound, "GetLaunch by the stored hash")
		got, err := e.s.ConsumeLaunch(ctx, "L")
		e.must(err, "ConsumeLaunch")
		same(t, "the consumed launch", got, rec)
		_, err = e.s.ConsumeLaunch(ctx, "L")
		e.wantErr(err, store.ErrNotFound, "a second ConsumeLaunch")
		_, err = e.s.GetLaunch(ctx, "L")
		e.wantErr(err, store.ErrNotFound, "GetLaunch after ConsumeLaunch")
	}},
}
