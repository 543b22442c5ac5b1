package register

import (
	"testing"

	"github.com/smartcaddy/smartauth/store"
)

// TestNewRequiresWiring checks that New refuses Options without the
// wiring a Registrar cannot work without, and accepts them complete.
func TestNewRequiresWiring(t *testing.T) {
	db, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	full := Options{Issuer: fzIssuer, Endpoint: fzIssuer + "/register", Path: "/auth/register", Store: db, Limiter: NewLimiter()}
	if _, err := New(full); err != nil {
		t.Fatalf("complete options refused: %v", err)
	}
	for name, edit := range map[string]func(o *Options){
		"issuer":   func(o *Options) { o.Issuer = "" },
		"endpoint": func(o *Options) { o.Endpoint = "" },
		"path":     func(o *Options) { o.Path = "" },
		"store":    func(o *Options) { o.Store = nil },
		"limiter":  func(o *Options) { o.Limiter = nil },
	} {
		o := full
		edit(&o)
		if _, err := New(o); err == nil {
			t.Errorf("options without %s accepted", name)
		}
	}
}
