package store

import (
	"errors"
	"testing"
	"time"
)

func TestRevokedClientRefreshTokens(t *testing.T) {
	c := &clock{t: time.Now()}
	db := openTest(t, t.TempDir(), c)
	// IssuedAt is filled in by SaveRefresh when the caller leaves it zero.
	if err := db.SaveRefresh(ctx, "old", &RefreshToken{FamilyID: "f1", ClientID: "app"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveRefresh(ctx, "other", &RefreshToken{FamilyID: "f2", ClientID: "other-app"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Revocation(ctx, RevokedClient, "app"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revocation before any: %v", err)
	}
	c.Add(time.Second)
	if err := db.Revoke(ctx, RevokedClient, "app", c.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	rev, err := db.Revocation(ctx, RevokedClient, "app")
	if err != nil || !rev.At.Equal(c.Now()) {
		t.Fatalf("revocation: %+v %v", rev, err)
	}
	if _, err := db.GetRefresh(ctx, "old"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetRefresh of a revoked client's token: %v", err)
	}
	if _, err := db.RotateRefresh(ctx, "old", Rotation{Next: "next", TTL: time.Hour}); !errors.Is(err, ErrNotFound) {
		t.Errorf("RotateRefresh of a revoked client's token: %v", err)
	}
	if _, err := db.GetRefresh(ctx, "other"); err != nil {
		t.Errorf("another client's token: %v", err)
	}

	// Tokens issued after the revocation live; rotation stamps the
	// successor's issue time.
	c.Add(time.Second)
	if err := db.SaveRefresh(ctx, "new", &RefreshToken{FamilyID: "f3", ClientID: "app"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RotateRefresh(ctx, "new", Rotation{Next: "newer", TTL: time.Hour}); err != nil {
		t.Fatalf("rotating a token issued after the revocation: %v", err)
	}
	if _, err := db.GetRefresh(ctx, "newer"); err != nil {
		t.Fatalf("its successor: %v", err)
	}

	// A second revocation covers at least what the first did, even with
	// a clock stepped back: At and Until never move back.
	first, _ := db.Revocation(ctx, RevokedClient, "app")
	c.Add(-time.Hour)
	if err := db.Revoke(ctx, RevokedClient, "app", c.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	second, err := db.Revocation(ctx, RevokedClient, "app")
	if err != nil || second.At.Before(first.At) || second.Until.Before(first.Until) {
		t.Errorf("second revocation %+v narrowed the first %+v (%v)", second, first, err)
	}
}

func TestUpdateClient(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	if err := db.UpdateClient(ctx, "nobody", func(c *Client) (*Client, error) { return c, nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update of an absent client: %v", err)
	}
	if err := db.PutClient(ctx, &Client{ID: "dyn", Name: "A", Dynamic: true}); err != nil {
		t.Fatal(err)
	}
	refuse := errors.New("refused")
	if err := db.UpdateClient(ctx, "dyn", func(*Client) (*Client, error) { return nil, refuse }); !errors.Is(err, refuse) {
		t.Fatalf("fn's error: %v", err)
	}
	if err := db.UpdateClient(ctx, "dyn", func(c *Client) (*Client, error) { n := *c; n.ID = "x"; return &n, nil }); err == nil {
		t.Fatal("an update changed the client's id")
	}
	if err := db.UpdateClient(ctx, "dyn", func(c *Client) (*Client, error) { n := *c; n.Name = "B"; return &n, nil }); err != nil {
		t.Fatal(err)
	}
	if c, err := db.GetClient(ctx, "dyn"); err != nil || c.Name != "B" {
		t.Fatalf("after update: %+v %v", c, err)
	}
	if err := db.UpdateClient(ctx, "dyn", func(*Client) (*Client, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetClient(ctx, "dyn"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

// BenchmarkRevocationMiss is the lookup every access-token verification
// now makes for its client (the common case: no revocation).
func BenchmarkRevocationMiss(b *testing.B) {
	db, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for b.Loop() {
		if _, err := db.Revocation(ctx, RevokedClient, "some-client"); !errors.Is(err, ErrNotFound) {
			b.Fatal(err)
		}
	}
}
