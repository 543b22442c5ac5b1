package authz

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/handlers/accesstoken"
	"github.com/smartcaddy/smartauth/handlers/clients"
	"github.com/smartcaddy/smartauth/handlers/users"
	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/store"
)

// The store views of the authorization server, each satisfied by the
// Badger store.
var (
	_ Store        = (*store.DB)(nil)
	_ SessionStore = (*store.DB)(nil)
	_ LaunchStore  = (*store.DB)(nil)
	_ GrantStore   = (*store.DB)(nil)
	_ ConsentStore = (*store.DB)(nil)
	_ ClientLister = (*store.DB)(nil)
)

// testDeployment is what several authorization Servers of one issuer
// share: the store, keys, client registry, access-token profile and rule.
type testDeployment struct {
	db       *store.DB
	ring     *keys.Ring
	registry *clients.Registry
	tokens   *accesstoken.Profile
}

// newTestDeployment opens a store in t's temporary directory and builds
// the shared parts of an issuer with one public client, "app".
func newTestDeployment(t *testing.T) *testDeployment {
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
	registry, err := clients.New(clients.Options{
		Issuer: fzIssuer, TokenEndpoint: fzIssuer + PathToken, Store: db,
		Configured: map[string]*store.Client{
			fzApp: {ID: fzApp, Name: "Pending App", Type: store.ClientPublic, RedirectURIs: []string{fzRedirect},
				GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid", "patient/*.rs"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = registry.Close() })
	tokens, err := accesstoken.New(accesstoken.Options{Issuer: fzIssuer, Audience: fzFHIRBase, Keys: ring, Lifetime: time.Hour, Store: db})
	if err != nil {
		t.Fatal(err)
	}
	return &testDeployment{db: db, ring: ring, registry: registry, tokens: tokens}
}

// server builds an authorization Server of the deployment with password
// sign-in.
func (d *testDeployment) server(t *testing.T) *Server {
	t.Helper()
	iss, _ := url.Parse(fzIssuer)
	fhir, _ := url.Parse(fzFHIRBase)
	s, err := New(Options{
		Issuer: iss, FHIRBase: fhir, Store: d.db, Keys: d.ring, Clients: d.registry, Tokens: d.tokens,
		Users: map[string]*users.User{"alice": {Name: "alice", Patients: []string{"p1"}}},
		Rule:  users.New(users.Options{}), Settings: Settings{PasswordLogin: true},
		Logins: NewLoginLimiter(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// get runs a GET of target through the Server's route for its path.
func (s *Server) get(t *testing.T, target string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	h, ok := s.routes[r.URL.Path]
	if !ok {
		t.Fatalf("no route for %s", r.URL.Path)
	}
	w := httptest.NewRecorder()
	h(w, r)
	return w
}

// TestPendingAcrossServers plays a config reload, a restart and a second
// instance: a request left pending by one Server (sent to sign in)
// continues on another Server over the same store (the same site secret),
// and does not open on a Server over another store.
func TestPendingAcrossServers(t *testing.T) {
	d := newTestDeployment(t)
	old, reloaded, fresh := d.server(t), d.server(t), newTestDeployment(t).server(t)

	verifier := make([]byte, 32)
	_, _ = rand.Read(verifier)
	sum := sha256.Sum256([]byte(base64.RawURLEncoding.EncodeToString(verifier)))
	q := url.Values{
		"response_type": {"code"}, "client_id": {fzApp}, "redirect_uri": {fzRedirect}, "scope": {"openid patient/*.rs"},
		"state": {"s1"}, "aud": {fzFHIRBase}, "code_challenge_method": {"S256"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])},
	}
	w := old.get(t, "/auth/authorize?"+q.Encode())
	loc, err := url.Parse(w.Header().Get("Location"))
	if w.Code != http.StatusSeeOther || err != nil || loc.Path != "/auth/login" || loc.Query().Get(pendingFieldName) == "" {
		t.Fatalf("authorize: %d to %q, want 303 to the sign-in page", w.Code, w.Header().Get("Location"))
	}
	login := "/auth/login?" + loc.RawQuery
	for _, tc := range []struct {
		name  string
		s     *Server
		known bool
	}{{"the same server", old, true}, {"another server over the same store", reloaded, true}, {"a server over another store", fresh, false}} {
		w := tc.s.get(t, login)
		if !tc.known {
			// Another store's secret does not open the request: the page
			// says it is gone.
			if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "Request expired") {
				t.Fatalf("%s: sign-in page %d, want 400 Request expired", tc.name, w.Code)
			}
			continue
		}
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "Pending App") {
			t.Fatalf("%s: sign-in page %d, want 200 naming the pending request's app", tc.name, w.Code)
		}
	}
}

// TestRoutes checks the paths the Server answers: the discovery documents
// at the FHIR base, the issuer and the site root, the JWKS, and every
// endpoint and page under the issuer.
func TestRoutes(t *testing.T) {
	s := newTestDeployment(t).server(t)
	routes := s.Routes()
	want := []string{
		"/fhir/.well-known/smart-configuration", "/.well-known/smart-configuration",
		"/auth/.well-known/openid-configuration", "/.well-known/oauth-authorization-server/auth", "/auth/jwks",
		"/auth/authorize", "/auth/login", "/auth/logout", "/auth/consent", "/auth/select-patient", "/auth/launch",
		"/auth/launcher", "/auth/token", "/auth/userinfo", "/auth/manage", "/auth/introspect", "/auth/revoke",
	}
	for _, p := range want {
		if routes[p] == nil {
			t.Errorf("no route for %s", p)
		}
	}
	if len(routes) != len(want) {
		t.Errorf("%d routes, want %d: %v", len(routes), len(want), routes)
	}
	delete(routes, "/auth/token")
	if s.Routes()["/auth/token"] == nil {
		t.Fatal("Routes hands out the Server's own map")
	}
}
