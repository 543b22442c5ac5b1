package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// The OpenID Provider of the identity-provider tests: the example OP of
// github.com/zitadel/oidc/v3 (its op package, its in-memory storage and
// its login page), run in the test on a real port. What the example's
// storage cannot say is added around it, without touching the protocol:
// extra claims per user (groups, employee_id, fhirUser…), the id_token
// lifetime (negative to make expired id_tokens), and the post-logout
// redirect URIs of RP-initiated logout.

// opClientID and opClientSecret are smart_auth's client at the test OP.
const (
	opClientID     = "smart-auth"
	opClientSecret = "op-client-secret-for-tests"
)

// opUser is a user of the test OP: user name, password (the user name
// with "-pw"), and the claims added to its id_token.
type opUser struct {
	id, username, first, last string
	claims                    map[string]any
}

// opUsers is the test OP's user store (storage.UserStore).
type opUsers struct{ byID map[string]*storage.User }

// GetUserByID implements storage.UserStore.
func (u opUsers) GetUserByID(id string) *storage.User { return u.byID[id] }

// GetUserByUsername implements storage.UserStore.
func (u opUsers) GetUserByUsername(name string) *storage.User {
	for _, x := range u.byID {
		if x.Username == name {
			return x
		}
	}
	return nil
}

// ExampleClientID implements storage.UserStore (the example's service
// user, unused here).
func (opUsers) ExampleClientID() string { return "service" }

// opStorage is the example storage with the test's additions.
type opStorage struct {
	*storage.Storage
	claims map[string]map[string]any
	// idTokenLifetime, when not zero, replaces the example's hour.
	idTokenLifetime atomic.Int64
	postLogout      []string
	// logins counts the users' successful sign-ins at the OP.
	logins atomic.Int64
}

// GetClientByClientID wraps the example's client (opClient).
func (s *opStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return &opClient{Client: c, st: s}, nil
}

// SetUserinfoFromRequest adds the user's extra claims to the id_token.
func (s *opStorage) SetUserinfoFromRequest(ctx context.Context, ui *oidc.UserInfo, token op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, ui, token, scopes); err != nil {
		return err
	}
	for k, v := range s.claims[token.GetSubject()] {
		ui.AppendClaims(k, v)
	}
	return nil
}

// CheckUsernamePassword counts successful sign-ins.
func (s *opStorage) CheckUsernamePassword(username, password, id string) error {
	err := s.Storage.CheckUsernamePassword(username, password, id)
	if err == nil {
		s.logins.Add(1)
	}
	return err
}

// opClient is the example's web client with the test's id_token
// lifetime, the claims in the id_token, and post-logout redirect URIs.
type opClient struct {
	op.Client
	st *opStorage
}

// IDTokenLifetime implements op.Client.
func (c *opClient) IDTokenLifetime() time.Duration {
	if v := c.st.idTokenLifetime.Load(); v != 0 {
		return time.Duration(v)
	}
	return time.Hour
}

// IDTokenUserinfoClaimsAssertion puts the profile claims into the
// id_token, as hospitals configure their providers to.
func (c *opClient) IDTokenUserinfoClaimsAssertion() bool { return true }

// PostLogoutRedirectURIs implements op.Client.
func (c *opClient) PostLogoutRedirectURIs() []string { return c.st.postLogout }

// testOP is a running test OP.
type testOP struct {
	issuer  string
	port    int
	st      *opStorage
	clients map[string]*storage.Client
	// tap, when set before start, wraps the OP's handler (to read its
	// answers).
	tap func(http.Handler) http.Handler
	mu  sync.Mutex
	srv *http.Server
}

// defaultOPUsers are the test OP's users: alice (a configured user of the
// flow site), erin (unlisted, a practitioner by employee id), mallory
// (not in the group smart_auth requires) and frank (no employee id).
var defaultOPUsers = []opUser{
	{id: "u-alice", username: "alice", first: "Alice", last: "Test", claims: map[string]any{"groups": []string{"smart-users"}}},
	{id: "u-erin", username: "erin", first: "Erin", last: "Nurse", claims: map[string]any{"groups": []string{"smart-users", "nurses"}, "employee_id": "E123"}},
	{id: "u-mallory", username: "mallory", first: "Mallory", last: "Visitor", claims: map[string]any{"groups": []string{"visitors"}}},
	{id: "u-frank", username: "frank", first: "Frank", last: "Clerk", claims: map[string]any{"groups": []string{"smart-users"}}},
}

// newTestOP builds (but does not start) the test OP on a free port;
// register adds smart_auth's client before it starts.
func newTestOP(t testing.TB) *testOP {
	t.Helper()
	users := opUsers{byID: map[string]*storage.User{}}
	claims := map[string]map[string]any{}
	for _, u := range defaultOPUsers {
		users.byID[u.id] = &storage.User{ID: u.id, Username: u.username, Password: u.username + "-pw", FirstName: u.first, LastName: u.last,
			Email: u.username + "@hospital.test", EmailVerified: true, PreferredLanguage: language.English}
		claims[u.id] = u.claims
	}
	clients := map[string]*storage.Client{}
	st := &opStorage{Storage: storage.NewStorageWithClients(users, clients), claims: claims}
	o := &testOP{port: freePort(t), st: st, clients: clients}
	o.issuer = fmt.Sprintf("http://127.0.0.1:%d", o.port)
	t.Cleanup(o.stop)
	return o
}

// register adds smart_auth's client: its callback and post-logout
// redirect URIs.
func (o *testOP) register(redirectURI, postLogout string) {
	o.clients[opClientID] = storage.WebClient(opClientID, opClientSecret, redirectURI)
	o.st.postLogout = []string{postLogout}
}

// start serves the OP on its port.
func (o *testOP) start(t testing.TB) {
	t.Helper()
	l, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", o.port))
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = exampleop.SetupServer(o.issuer, o.st, nil, false)
	if o.tap != nil {
		h = o.tap(h)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	o.mu.Lock()
	o.srv = srv
	o.mu.Unlock()
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("test OP: %v", err)
		}
	}()
}

// stop closes the OP: it no longer answers.
func (o *testOP) stop() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.srv != nil {
		_ = o.srv.Close()
		o.srv = nil
	}
}
