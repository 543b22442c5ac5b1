package token

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/handlers/accesstoken"
	"github.com/smartcaddy/smartauth/handlers/clients"
	"github.com/smartcaddy/smartauth/handlers/users"
	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/store"
)

// The store the router passes satisfies the back channel's view of it.
var _ Store = (*store.DB)(nil)

// newTestOptions builds complete Options over a real Badger store and key
// ring, with one public client.
func newTestOptions(t testing.TB) Options {
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
	const issuer = "https://as.example.org/auth"
	registry, err := clients.New(clients.Options{Issuer: issuer, TokenEndpoint: issuer + PathToken, Store: db,
		Configured: map[string]*store.Client{"app": {ID: "app", Type: store.ClientPublic,
			RedirectURIs: []string{"https://app.example.org/cb"}, GrantTypes: []string{"authorization_code", "refresh_token"}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = registry.Close() })
	tokens, err := accesstoken.New(accesstoken.Options{Issuer: issuer, Audience: "https://fhir.example.org/r4",
		Keys: ring, Lifetime: time.Hour, Store: db})
	if err != nil {
		t.Fatal(err)
	}
	iss, _ := url.Parse(issuer)
	fhir, _ := url.Parse("https://fhir.example.org/r4")
	return Options{Issuer: iss, FHIRBase: fhir, IntrospectEndpoint: issuer + PathIntrospect, RevokeEndpoint: issuer + PathRevoke,
		Store: db, Keys: ring, Clients: registry, Tokens: tokens, Users: map[string]*users.User{},
		Rule: users.New(users.Options{}), Lifetimes: Lifetimes{AccessToken: time.Hour, RefreshToken: 24 * time.Hour, Backend: 5 * time.Minute}}
}

// TestNewRequiresWiring checks that New refuses Options missing a part it
// needs, or with a lifetime that is not positive, and accepts complete
// ones.
func TestNewRequiresWiring(t *testing.T) {
	full := newTestOptions(t)
	if _, err := New(full); err != nil {
		t.Fatalf("complete options refused: %v", err)
	}
	for name, edit := range map[string]func(*Options){
		"issuer":     func(o *Options) { o.Issuer = nil },
		"FHIR base":  func(o *Options) { o.FHIRBase = nil },
		"introspect": func(o *Options) { o.IntrospectEndpoint = "" },
		"revoke":     func(o *Options) { o.RevokeEndpoint = "" },
		"store":      func(o *Options) { o.Store = nil },
		"keys":       func(o *Options) { o.Keys = nil },
		"clients":    func(o *Options) { o.Clients = nil },
		"tokens":     func(o *Options) { o.Tokens = nil },
		"rule":       func(o *Options) { o.Rule = nil },
		"lifetime":   func(o *Options) { o.Lifetimes.Backend = 0 },
	} {
		o := full
		edit(&o)
		if _, err := New(o); err == nil {
			t.Errorf("options without %s accepted", name)
		}
	}
}

// TestRoutes checks the four endpoints under the issuer's path and one
// answer through them: a token request with an unknown grant type is an
// OAuth error, never cached.
func TestRoutes(t *testing.T) {
	s, err := New(newTestOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	routes := s.Routes()
	var paths []string
	for p := range routes {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	want := []string{"/auth/introspect", "/auth/revoke", "/auth/token", "/auth/userinfo"}
	if !slices.Equal(paths, want) {
		t.Fatalf("routes %v, want %v", paths, want)
	}
	r := httptest.NewRequest(http.MethodPost, "https://as.example.org/auth/token", strings.NewReader("grant_type=password&client_id=app"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	routes["/auth/token"](w, r)
	var body struct{ Error string }
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != http.StatusBadRequest ||
		body.Error != "unsupported_grant_type" || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("unknown grant: %d %v %s %v", w.Code, err, w.Body, w.Header())
	}
}

// TestFamilyRevocation checks that a family's revocation outlives every
// token of it.
func TestFamilyRevocation(t *testing.T) {
	if got := (Lifetimes{AccessToken: time.Hour, RefreshToken: 2 * time.Hour}).FamilyRevocation(); got != 2*time.Hour {
		t.Errorf("FamilyRevocation = %v", got)
	}
	if got := (Lifetimes{AccessToken: 3 * time.Hour, RefreshToken: time.Hour}).FamilyRevocation(); got != 3*time.Hour {
		t.Errorf("FamilyRevocation = %v", got)
	}
}
