package guard

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/smartcaddy/smartauth/handlers/accesstoken"
	"github.com/smartcaddy/smartauth/store"
)

// TestRevocationKindsProperty: over generated combinations of a token
// (client, user or none, family or none) and revocations of every kind
// (jti, family, client, user) whose identifiers collide on purpose (a user
// named like a client, a family named like a user) and whose time lies
// before, at or after the token's issue, both places that decide
// revocation agree with one oracle: the full check of a token seen for the
// first time (accesstoken, reading the store), the first use of a token
// this server minted (VerifyMinted: no signature check, the same store
// reads) and the guard's cache (the revocation log it polled). A client revocation covers the client's
// tokens issued up to it, a user revocation the user's (never a backend
// token whose sub is its client), a jti or family revocation its tokens
// whenever it was made.
func TestRevocationKindsProperty(t *testing.T) {
	e := newFuzzEnv(t)
	if err := e.g.Close(); err != nil { // the test polls by hand
		t.Fatal(err)
	}
	clk := &settableClock{t: time.Now()}
	db, err := store.Open(t.TempDir(), store.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	e.g.store = db
	profile, err := accesstoken.New(accesstoken.Options{
		Issuer: fzIssuer, Audience: fzFHIRBase, Keys: e.ring, Lifetime: time.Hour, Store: db,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	n := 0
	rapid.Check(t, func(rt *rapid.T) {
		n++
		// Identifiers of this case only, so that cases do not see each
		// other's revocations; the names collide across kinds.
		id := func(s string) string { return fmt.Sprintf("c%d-%s", n, s) }
		clientID := id(rapid.SampledFrom([]string{"a", "b"}).Draw(rt, "client"))
		user := rapid.SampledFrom([]string{"", "a", "b", "u"}).Draw(rt, "user")
		if user != "" {
			user = id(user)
		}
		family := rapid.SampledFrom([]string{"", "a", "u", "f"}).Draw(rt, "family")
		if family != "" {
			family = id(family)
		}
		clk.Set(time.Now())
		raw, _, err := profile.Mint(accesstoken.Grant{ClientID: clientID, Subject: user, FamilyID: family, Scope: "system/*.rs"})
		if err != nil {
			rt.Fatal(err)
		}
		claims, err := profile.Verify(ctx, raw)
		if err != nil {
			rt.Fatalf("a fresh token: %v", err)
		}
		iat, _ := claims.IssuedAt()
		p := &principal{clientID: clientID, sub: claims.Subject(), jti: claims.ID(), family: family, iat: iat}

		want := false
		for i := range rapid.IntRange(0, 3).Draw(rt, "revocations") {
			kind := rapid.SampledFrom([]store.RevocationKind{store.RevokedToken, store.RevokedFamily, store.RevokedClient, store.RevokedUser}).Draw(rt, fmt.Sprintf("kind%d", i))
			target := rapid.SampledFrom([]string{"a", "b", "u", "f", "jti"}).Draw(rt, fmt.Sprintf("id%d", i))
			rid := id(target)
			if target == "jti" {
				rid = p.jti
			}
			at := iat.Add(time.Duration(rapid.SampledFrom([]int{-10, 0, 10}).Draw(rt, fmt.Sprintf("at%d", i))) * time.Second)
			clk.Set(at)
			if err := db.Revoke(ctx, kind, rid, at.Add(time.Hour)); err != nil {
				rt.Fatal(err)
			}
			switch kind {
			case store.RevokedToken:
				want = want || rid == p.jti
			case store.RevokedFamily:
				want = want || (family != "" && rid == family)
			case store.RevokedClient:
				want = want || (rid == clientID && !iat.After(at))
			case store.RevokedUser:
				want = want || (rid == p.sub && p.sub != clientID && !iat.After(at))
			}
		}
		clk.Set(time.Now())

		_, err = profile.Verify(ctx, raw)
		if got := errors.Is(err, accesstoken.ErrRevoked); got != want || (err != nil && !got) {
			rt.Fatalf("first use: revoked %v (%v), want %v", got, err, want)
		}
		// The first use of a token this server minted skips the
		// signature, never the revocations (VerifyMinted).
		_, found, err := profile.VerifyMinted(ctx, sha256.Sum256([]byte(raw)))
		if got := errors.Is(err, accesstoken.ErrRevoked); !found || got != want || (err != nil && !got) {
			rt.Fatalf("first use of a token minted here: found %v, revoked %v (%v), want %v", found, got, err, want)
		}
		if err := e.g.pollRevocations(ctx); err != nil {
			rt.Fatal(err)
		}
		e.g.gs.mu.RLock()
		got := e.g.gs.revokedLocked(p)
		e.g.gs.mu.RUnlock()
		if got != want {
			rt.Fatalf("the guard's cache: revoked %v, want %v", got, want)
		}
	})
}
