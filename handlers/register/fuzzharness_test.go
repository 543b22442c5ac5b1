package register

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/handlers/internal/fuzzhttp"
	"github.com/smartcaddy/smartauth/store"
)

// *store.DB is the store registration runs on.
var _ Store = (*store.DB)(nil)

// The deployment the registration fuzz targets run against: fixed URLs,
// as the router would wire them for this issuer; requests go to the
// Registrar in process, routed as the router routes them (serve).
const (
	fzIssuer = "https://auth.example.org/auth"
	// fzApp is a client from the configuration: its id is never given to
	// a registered client, and the client configuration endpoint never
	// finds it.
	fzApp = "app"
	fzIAT = "fuzz-initial-access-token"
)

// fuzzEnv is a Registrar over a real Badger store, set up once per
// fuzzing process.
type fuzzEnv struct {
	r  *Registrar
	db *store.DB
}

// newFuzzEnv builds the fuzz deployment: registration with an initial
// access token (fzIAT). Its store lives in tb's temporary directory.
func newFuzzEnv(tb testing.TB) *fuzzEnv {
	tb.Helper()
	db, err := store.Open(tb.TempDir(), store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	e := &fuzzEnv{db: db}
	e.r, err = New(Options{
		Settings: Settings{Enabled: true, InitialAccessTokenHash: store.HashSecret(fzIAT)},
		Issuer:   fzIssuer,
		Endpoint: fzIssuer + "/register",
		Path:     "/auth/register",
		Configured: map[string]*store.Client{
			fzApp: {ID: fzApp, Name: "App", Type: store.ClientPublic, RedirectURIs: []string{"https://app.example.org/cb"},
				GrantTypes: []string{"authorization_code", "refresh_token"}},
		},
		Store:         db,
		Limiter:       NewLimiter(),
		TokenLifetime: 90 * 24 * time.Hour,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// serve runs one request through the Registrar as the router routes it
// (the router in package handlers): the registration endpoint's path to
// ServeRegister, paths under it to ServeClientConfiguration, anything else
// to next (404 when nil).
func (e *fuzzEnv) serve(r *http.Request, next http.Handler) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	switch p := e.r.opts.Path; {
	case r.URL.Path == p:
		e.r.ServeRegister(w, r)
	case e.r.Enabled() && strings.HasPrefix(r.URL.Path, p+"/"):
		e.r.ServeClientConfiguration(w, r)
	case next != nil:
		next.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
	return w
}

// newFuzzRequest builds a request for registration from fuzzed
// request-line parts (fuzzhttp.NewRequest); ok is false when net/http
// would refuse it.
func newFuzzRequest(method, target string, body []byte) (*http.Request, bool) {
	return fuzzhttp.NewRequest(method, target, "auth.example.org", body)
}

// checkOAuthError fails unless w is an OAuth error response and returns
// its code (fuzzhttp.CheckOAuthError).
func checkOAuthError(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	return fuzzhttp.CheckOAuthError(t, w)
}
