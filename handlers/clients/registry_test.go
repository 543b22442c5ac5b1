package clients

import (
	"context"
	"errors"
	"testing"

	"github.com/smartcaddy/smartauth/store"
)

// *store.DB is the store every consumer's narrow view is cut from.
var _ Store = (*store.DB)(nil)

// openStore opens a real Badger store in a temporary directory.
func openStore(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// TestRegistrySharesStateByIssuer checks the reload idiom: a Registry
// built for an issuer while another holds it shares its JWKS caches; once
// every holder is closed, the next one starts afresh; another issuer
// never shares.
func TestRegistrySharesStateByIssuer(t *testing.T) {
	db := openStore(t)
	opts := func(issuer string) Options {
		return Options{Issuer: issuer, TokenEndpoint: issuer + "/token", Store: db}
	}
	old, err := New(opts("https://reg-share.example"))
	if err != nil {
		t.Fatal(err)
	}
	reloaded, err := New(opts("https://reg-share.example"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := New(opts("https://reg-other.example"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if old.shared != reloaded.shared {
		t.Fatal("a reload's registry does not share the JWKS caches")
	}
	if other.shared == old.shared {
		t.Fatal("two issuers share JWKS caches")
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil { // idempotent: must not release twice
		t.Fatal(err)
	}
	again, err := New(opts("https://reg-share.example"))
	if err != nil {
		t.Fatal(err)
	}
	if again.shared != reloaded.shared {
		t.Fatal("the state was dropped while a registry still held it")
	}
	_ = reloaded.Close()
	_ = again.Close()
	fresh, err := New(opts("https://reg-share.example"))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if fresh.shared == again.shared {
		t.Fatal("the state outlived its last holder")
	}
}

// TestRegistryLookup checks that configured clients come first and the
// store answers for the rest.
func TestRegistryLookup(t *testing.T) {
	db := openStore(t)
	ctx := context.Background()
	dyn := &store.Client{ID: "dyn", Type: store.ClientPublic, Dynamic: true, RedirectURIs: []string{"https://app.example/cb"}}
	if err := db.PutClient(ctx, dyn); err != nil {
		t.Fatal(err)
	}
	conf := &store.Client{ID: "conf", Type: store.ClientPublic}
	r, err := New(Options{Issuer: "https://reg-lookup.example", TokenEndpoint: "https://reg-lookup.example/token",
		Store: db, Configured: map[string]*store.Client{"conf": conf}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if c, err := r.Lookup(ctx, "conf"); err != nil || c != conf {
		t.Fatalf("configured client: %v %v", c, err)
	}
	if c, err := r.Lookup(ctx, "dyn"); err != nil || c.ID != "dyn" {
		t.Fatalf("registered client: %v %v", c, err)
	}
	if _, err := r.Lookup(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown client: %v", err)
	}
	if _, f := r.Resolve(ctx, "nobody"); f == nil || f.Code != "invalid_client" || f.Status != 401 {
		t.Fatalf("unknown client at an OAuth endpoint: %+v", f)
	}
}
