package register

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"

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
// (handlers.Server.ServeHTTP): the registration endpoint's path to
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

// newFuzzRequest builds a request as net/http's server would hand it to
// a handler: target is the request-target of the request line. ok is
// false when net/http would refuse the request line itself.
func newFuzzRequest(method, target string, body []byte) (*http.Request, bool) {
	if !validMethod(method) || !strings.HasPrefix(target, "/") || !validTarget(target) {
		return nil, false
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, false
	}
	r := &http.Request{
		Method: method, URL: u, RequestURI: target, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Host: u.Host, RemoteAddr: "192.0.2.1:1234",
		Body: io.NopCloser(strings.NewReader(string(body))), ContentLength: int64(len(body)),
	}
	if r.Host == "" {
		r.Host = "auth.example.org"
	}
	return r.WithContext(context.Background()), true
}

// validMethod tells whether m is an HTTP method token.
func validMethod(m string) bool {
	if m == "" || len(m) > 20 {
		return false
	}
	for _, c := range []byte(m) {
		if !httpguts.IsTokenRune(rune(c)) {
			return false
		}
	}
	return true
}

// validTarget tells whether a request-target has no bytes a request line
// cannot carry (controls, spaces, non-ASCII).
func validTarget(t string) bool {
	for _, c := range []byte(t) {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// checkOAuthError fails unless w is an OAuth error response (RFC 6749
// §5.2): JSON with an error code, never cached, and returns the code.
func checkOAuthError(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error == "" {
		t.Fatalf("status %d without an OAuth error body: %q", w.Code, w.Body)
	}
	if !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("error %s: Content-Type %q, Cache-Control %q", body.Error, w.Header().Get("Content-Type"), w.Header().Get("Cache-Control"))
	}
	return body.Error
}
