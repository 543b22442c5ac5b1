package accesstoken

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/store"
)

// TestVerifyMinted: the first use of a token this profile minted gives
// exactly the claims Verify gives, once; a revoked one is refused as
// Verify refuses it; an expired one, one minted by another profile and
// one already taken are left to Verify.
func TestVerifyMinted(t *testing.T) {
	e := newDiffEnv(t)
	ctx := context.Background()
	banner := true
	grants := []Grant{
		{ClientID: "bench-0", Scope: "system/Patient.rs"},
		{ClientID: "app", Subject: "alice", Scope: "launch/patient openid fhirUser patient/*.rs", FamilyID: "f1",
			FHIRUser: "https://fhir.example.org/r4/Practitioner/p7",
			Context: store.LaunchContext{Patient: "p1", Encounter: "e1", Intent: "reconcile", NeedPatientBanner: &banner,
				SmartStyleURL: "https://app.example.org/style.json", Tenant: "t1",
				FHIRContext: []json.RawMessage{json.RawMessage(`{"reference":"Observation/o1"}`), json.RawMessage(`{"canonical":"http://x.example/Q|1","type":"Questionnaire"}`)}}},
		{ClientID: "a<b>&c", Subject: "ünïcode \"user\"", Scope: "user/*.cruds"},
	}
	for _, g := range grants {
		raw, _, err := e.p.Mint(g)
		if err != nil {
			t.Fatal(err)
		}
		want, err := e.p.Verify(ctx, raw)
		if err != nil {
			t.Fatalf("%s: Verify: %v", g.ClientID, err)
		}
		key := sha256.Sum256([]byte(raw))
		got, found, err := e.p.VerifyMinted(ctx, key)
		if !found || err != nil {
			t.Fatalf("%s: VerifyMinted: found %v, %v", g.ClientID, found, err)
		}
		if g, w := readView(got), readView(want); !reflect.DeepEqual(g, w) {
			t.Errorf("claims differ:\nVerifyMinted %+v\nVerify       %+v", g, w)
		}
		if _, found, _ := e.p.VerifyMinted(ctx, key); found {
			t.Errorf("%s: taken twice", g.ClientID)
		}
	}

	// Revoked between the mint and the first use: refused at once.
	raw, _, err := e.p.Mint(grants[1])
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.p.Verify(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.p.opts.Store.(*store.DB).Revoke(ctx, store.RevokedFamily, c.Family(), time.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, found, err := e.p.VerifyMinted(ctx, sha256.Sum256([]byte(raw))); !found || !errors.Is(err, ErrRevoked) || !Permanent(err) {
		t.Errorf("revoked family: found %v, %v; want ErrRevoked, permanent", found, err)
	}

	// Expired (the ring's clock past exp + Skew): Verify decides.
	raw, _, err = e.p.Mint(Grant{ClientID: "bench-0", Scope: "system/Patient.rs", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	e.now = e.now.Add(time.Minute + Skew + 2*time.Second)
	if _, found, _ := e.p.VerifyMinted(ctx, sha256.Sum256([]byte(raw))); found {
		t.Error("an expired token was taken")
	}

	// Another profile (another instance) minted it: not found.
	other := newDiffEnv(t)
	raw, _, err = other.p.Mint(grants[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, found, _ := e.p.VerifyMinted(ctx, sha256.Sum256([]byte(raw))); found {
		t.Error("a token minted by another profile was found")
	}
}

// TestIssuedSetBound: the set holds two generations; the oldest are
// dropped first.
func TestIssuedSetBound(t *testing.T) {
	var s issuedSet
	key := func(i int) [sha256.Size]byte { return sha256.Sum256([]byte{byte(i), byte(i >> 8), byte(i >> 16)}) }
	n := 2*issuedGeneration + 10
	for i := range n {
		s.add(key(i), &fastClaims{jti: "x"})
		if got := len(s.cur) + len(s.old); got > 2*issuedGeneration {
			t.Fatalf("after %d adds: %d entries, bound %d", i+1, got, 2*issuedGeneration)
		}
	}
	if s.take(key(0)) != nil || s.take(key(issuedGeneration-1)) != nil {
		t.Error("the oldest generation was kept")
	}
	if s.take(key(issuedGeneration)) == nil || s.take(key(n-1)) == nil {
		t.Error("a recent token was dropped")
	}
}
