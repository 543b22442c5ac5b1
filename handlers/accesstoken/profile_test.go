package accesstoken_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/smartcaddy/smartauth/handlers/accesstoken"
	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/store"
)

// The store the server runs on satisfies the profile's view of it.
var _ accesstoken.RevocationStore = (*store.DB)(nil)

const (
	testIssuer = "https://auth.example.org/smart"
	testFHIR   = "https://fhir.example.org/r4"
)

// newProfile opens a real Badger store and key ring in a temporary
// directory and builds a profile over them.
func newProfile(t testing.TB, alg string) (*accesstoken.Profile, *store.DB, *keys.Ring) {
	t.Helper()
	db, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ring, err := keys.New(context.Background(), keys.Options{Store: db, Retain: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	p, err := accesstoken.New(accesstoken.Options{
		Issuer: testIssuer, Audience: testFHIR, Keys: ring, Alg: alg, Lifetime: time.Hour, Store: db,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, db, ring
}

// payload decodes a JWT's claims without checking it.
func payload(t *testing.T, raw string) map[string]any {
	t.Helper()
	msg, err := jws.Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(msg.Payload(), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMintClaimsAndHeader(t *testing.T) {
	p, _, _ := newProfile(t, "")
	banner := true
	raw, expiresIn, err := p.Mint(accesstoken.Grant{
		ClientID: "app", Subject: "alice", Scope: "openid patient/*.rs",
		Context: store.LaunchContext{
			Patient: "p1", Encounter: "e1", NeedPatientBanner: &banner, SmartStyleURL: "https://s/style",
			Intent: "review", Tenant: "t1",
			FHIRContext: []json.RawMessage{json.RawMessage(`{"reference":"Observation/o1"}`)},
		},
		FHIRUser: testFHIR + "/Practitioner/pr1",
		FamilyID: "fam",
	})
	if err != nil {
		t.Fatal(err)
	}
	if expiresIn != 3600 {
		t.Errorf("expires_in %d, want 3600", expiresIn)
	}
	msg, err := jws.Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	typ, _ := h.Type()
	alg, _ := h.Algorithm()
	kid, _ := h.KeyID()
	if typ != "at+jwt" || alg.String() != keys.ES256 || kid == "" {
		t.Errorf("header typ %q alg %q kid %q, want at+jwt ES256 and a kid", typ, alg, kid)
	}
	m := payload(t, raw)
	want := map[string]any{
		"iss": testIssuer, "sub": "alice", "client_id": "app", "scope": "openid patient/*.rs",
		"patient": "p1", "encounter": "e1", "need_patient_banner": true, "smart_style_url": "https://s/style",
		"intent": "review", "tenant": "t1", "fhirUser": testFHIR + "/Practitioner/pr1", "family_id": "fam",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("claim %s = %#v, want %#v", k, m[k], v)
		}
	}
	if aud, _ := m["aud"].([]any); len(aud) != 1 || aud[0] != testFHIR {
		t.Errorf("aud %#v, want [%q]", m["aud"], testFHIR)
	}
	for _, k := range []string{"iat", "nbf", "exp", "jti", "fhirContext"} {
		if _, ok := m[k]; !ok {
			t.Errorf("claim %s missing", k)
		}
	}
	if len(m) != len(want)+6 {
		t.Errorf("claims %v: %d, want %d", m, len(m), len(want)+6)
	}
	c, err := p.Verify(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	lc := c.LaunchContext()
	if lc.Patient != "p1" || lc.Encounter != "e1" || lc.NeedPatientBanner == nil || !*lc.NeedPatientBanner ||
		lc.Intent != "review" || lc.Tenant != "t1" || len(lc.FHIRContext) != 1 ||
		string(lc.FHIRContext[0]) != `{"reference":"Observation/o1"}` {
		t.Errorf("launch context read back %+v", lc)
	}
	if c.Subject() != "alice" || c.ClientID() != "app" || c.Family() != "fam" || c.Issuer() != testIssuer ||
		c.Audience() != testFHIR || c.ID() == "" || c.FHIRUser() != testFHIR+"/Practitioner/pr1" {
		t.Errorf("claims read back: sub %q client %q family %q iss %q aud %q jti %q fhirUser %q",
			c.Subject(), c.ClientID(), c.Family(), c.Issuer(), c.Audience(), c.ID(), c.FHIRUser())
	}
}

func TestMintClientOnBehalfOfItself(t *testing.T) {
	p, _, _ := newProfile(t, keys.RS256)
	raw, expiresIn, err := p.Mint(accesstoken.Grant{ClientID: "backend", Scope: "system/*.rs",
		FHIRUser: testFHIR + "/Practitioner/ignored", TTL: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if expiresIn != 300 {
		t.Errorf("expires_in %d, want 300", expiresIn)
	}
	m := payload(t, raw)
	if m["sub"] != "backend" {
		t.Errorf("sub %v, want the client id", m["sub"])
	}
	for _, k := range []string{"patient", "encounter", "fhirUser", "family_id", "fhirContext", "need_patient_banner"} {
		if _, ok := m[k]; ok {
			t.Errorf("claim %s set for a client acting on its own behalf", k)
		}
	}
	msg, _ := jws.Parse([]byte(raw))
	if alg, _ := msg.Signatures()[0].ProtectedHeaders().Algorithm(); alg.String() != keys.RS256 {
		t.Errorf("alg %s, want RS256", alg)
	}
}

func TestVerifyRefuses(t *testing.T) {
	ctx := context.Background()
	p, db, ring := newProfile(t, "")
	mint := func(g accesstoken.Grant) string {
		t.Helper()
		raw, _, err := p.Mint(g)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	// sign signs claims with the ring under a typ.
	sign := func(typ string, build func(*jwt.Builder) *jwt.Builder) string {
		t.Helper()
		now := time.Now()
		b := jwt.NewBuilder().Issuer(testIssuer).Subject("alice").Audience([]string{testFHIR}).
			IssuedAt(now).Expiration(now.Add(time.Hour)).JwtID(store.NewSecret()).Claim("client_id", "app")
		tok, err := build(b).Build()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := ring.Sign(tok, keys.ES256, typ)
		if err != nil {
			t.Fatal(err)
		}
		return string(raw)
	}
	same := func(b *jwt.Builder) *jwt.Builder { return b }
	if _, err := p.Verify(ctx, sign(accesstoken.Type, same)); err != nil {
		t.Fatalf("a well-formed token was refused: %v", err)
	}
	expired := sign(accesstoken.Type, func(b *jwt.Builder) *jwt.Builder {
		return b.Expiration(time.Now().Add(-accesstoken.Skew - time.Minute))
	})
	if _, err := p.Verify(ctx, expired); !errors.Is(err, jwt.TokenExpiredError()) {
		t.Errorf("expired token: %v, want a TokenExpiredError", err)
	}
	for name, raw := range map[string]string{
		"typ JWT":       sign("JWT", same),
		"foreign iss":   sign(accesstoken.Type, func(b *jwt.Builder) *jwt.Builder { return b.Issuer("https://other") }),
		"foreign aud":   sign(accesstoken.Type, func(b *jwt.Builder) *jwt.Builder { return b.Audience([]string{"https://other"}) }),
		"not yet valid": sign(accesstoken.Type, func(b *jwt.Builder) *jwt.Builder { return b.NotBefore(time.Now().Add(time.Hour)) }),
		"no jti": sign(accesstoken.Type, func(*jwt.Builder) *jwt.Builder {
			return jwt.NewBuilder().Issuer(testIssuer).Subject("alice").Audience([]string{testFHIR}).
				Expiration(time.Now().Add(time.Hour)).Claim("client_id", "app")
		}),
		"garbage": "a.b.c",
	} {
		if _, err := p.Verify(ctx, raw); err == nil {
			t.Errorf("%s: verified", name)
		}
	}

	byJTI := mint(accesstoken.Grant{ClientID: "app", Subject: "alice", Scope: "openid"})
	c, err := p.Verify(ctx, byJTI)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Revoke(ctx, store.RevokedToken, c.ID(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Verify(ctx, byJTI); !errors.Is(err, accesstoken.ErrRevoked) {
		t.Errorf("token revoked by jti: %v, want ErrRevoked", err)
	}

	byFamily := mint(accesstoken.Grant{ClientID: "app", Subject: "alice", Scope: "openid", FamilyID: "fam1"})
	if err := db.Revoke(ctx, store.RevokedFamily, "fam1", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Verify(ctx, byFamily); !errors.Is(err, accesstoken.ErrRevoked) {
		t.Errorf("token of a revoked family: %v, want ErrRevoked", err)
	}

	other := mint(accesstoken.Grant{ClientID: "other", Scope: "system/*.rs"})
	byClient := mint(accesstoken.Grant{ClientID: "app2", Scope: "system/*.rs"})
	if err := db.Revoke(ctx, store.RevokedClient, "app2", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Verify(ctx, byClient); !errors.Is(err, accesstoken.ErrRevoked) {
		t.Errorf("token of a client whose tokens were revoked: %v, want ErrRevoked", err)
	}
	if _, err := p.Verify(ctx, other); err != nil {
		t.Errorf("another client's token: %v", err)
	}
}

func TestNewNeedsEverything(t *testing.T) {
	_, db, ring := newProfile(t, "")
	full := accesstoken.Options{Issuer: testIssuer, Audience: testFHIR, Keys: ring, Store: db}
	for name, o := range map[string]accesstoken.Options{
		"issuer": {Audience: full.Audience, Keys: full.Keys, Store: full.Store},
		"aud":    {Issuer: full.Issuer, Keys: full.Keys, Store: full.Store},
		"keys":   {Issuer: full.Issuer, Audience: full.Audience, Store: full.Store},
		"store":  {Issuer: full.Issuer, Audience: full.Audience, Keys: full.Keys},
	} {
		if _, err := accesstoken.New(o); err == nil {
			t.Errorf("New without %s succeeded", name)
		}
	}
}
