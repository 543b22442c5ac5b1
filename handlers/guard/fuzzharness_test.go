package guard

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/smartcaddy/smartauth/handlers/accesstoken"
	"github.com/smartcaddy/smartauth/handlers/clients"
	"github.com/smartcaddy/smartauth/handlers/internal/fuzzhttp"
	"github.com/smartcaddy/smartauth/handlers/users"
	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/store"
)

// The deployment the HTTP-level fuzz targets run against: fixed URLs, so
// that committed corpus entries (absolute Bundle URLs) stay meaningful;
// requests go to Guard.ServeHTTP in process.
const (
	fzIssuer   = "https://auth.example.org/auth"
	fzFHIRBase = "https://fhir.example.org/fhir"
	// fzPatient is the context patient of fzToken; fzUser is a Patient
	// user whose record it is, so that the token stays within the
	// user's reach whatever the reach rules say.
	fzPatient  = "p1"
	fzUser     = "pat"
	fzApp      = "app"
	fzRedirect = "https://app.example.org/cb"
)

// fuzzEnv is a Guard over a real Badger store and key ring, with the
// access-token profile and client registry the router would give it, set
// up once per fuzzing process.
type fuzzEnv struct {
	g      *Guard
	db     *store.DB
	ring   *keys.Ring
	tokens *accesstoken.Profile
	// token is an access token of fzUser through fzApp with
	// patient/*.cruds and patient fzPatient.
	token string
}

// newFuzzEnv builds the fuzz deployment. Its store lives in tb's
// temporary directory.
func newFuzzEnv(tb testing.TB) *fuzzEnv {
	tb.Helper()
	return newGuardEnv(tb, nil)
}

// newGuardEnv builds the fuzz deployment with stop as the guard's
// Deps.Context (nil: none).
func newGuardEnv(tb testing.TB, stop context.Context) *fuzzEnv {
	tb.Helper()
	ctx := context.Background()
	db, err := store.Open(tb.TempDir(), store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	ring, err := keys.New(ctx, keys.Options{Store: db, Retain: time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	e := &fuzzEnv{db: db, ring: ring}
	if e.tokens, err = accesstoken.New(accesstoken.Options{
		Issuer: fzIssuer, Audience: fzFHIRBase, Keys: ring, Lifetime: time.Hour, Store: db,
	}); err != nil {
		tb.Fatal(err)
	}
	configured := map[string]*store.Client{
		fzApp: {ID: fzApp, Name: "App", Type: store.ClientPublic, RedirectURIs: []string{fzRedirect},
			LaunchURI: "https://app.example.org/launch", GrantTypes: []string{"authorization_code", "refresh_token"}},
	}
	registry, err := clients.New(clients.Options{
		Issuer: fzIssuer, TokenEndpoint: fzIssuer + "/token", Configured: configured, Store: db,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = registry.Close() })
	fhir, _ := url.Parse(fzFHIRBase)
	e.g, err = New(Options{}, Deps{
		FHIRBase: fhir, Tokens: e.tokens, Clients: registry, ConfiguredClients: configured,
		Users: map[string]*users.User{
			fzUser:  {Name: fzUser, FHIRUser: "Patient/" + fzPatient},
			"alice": {Name: "alice", FHIRUser: "Practitioner/pr1", Patients: []string{fzPatient, "p2"}},
		},
		Reach:   users.New(users.Options{}),
		Store:   db,
		Context: stop,
		Endpoints: Endpoints{
			Authorize: fzIssuer + "/authorize", Token: fzIssuer + "/token", Register: fzIssuer + "/register",
			Manage: fzIssuer + "/manage", Introspect: fzIssuer + "/introspect", Revoke: fzIssuer + "/revoke",
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = e.g.Close() })
	e.token = e.accessToken(tb, fzUser, fzApp, "launch/patient patient/*.cruds", fzPatient)
	return e
}

// accessToken mints an access token as the token endpoint does, valid
// for a day (long fuzzing runs reuse it).
func (e *fuzzEnv) accessToken(tb testing.TB, sub, client, scope, patient string) string {
	tb.Helper()
	g := accesstoken.Grant{ClientID: client, Subject: sub, Scope: scope, TTL: 24 * time.Hour}
	g.Context.Patient = patient
	if sub == fzUser {
		g.FHIRUser = fzFHIRBase + "/Patient/" + fzPatient
	}
	tok, _, err := e.tokens.Mint(g)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// upstreamCall is one request that reached the next handler (the FHIR
// server behind the guard), as it arrived there.
type upstreamCall struct {
	method, path, rawPath, rawQuery string
	header                          http.Header
	body                            []byte
}

// upstream is the FHIR server behind the guard: it records what reaches
// it and answers every request with answer (a default 200 "{}" when nil).
type upstream struct {
	calls  []upstreamCall
	answer func(w http.ResponseWriter, r *http.Request)
}

// ServeHTTP implements caddyhttp.Handler.
func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
	}
	u.calls = append(u.calls, upstreamCall{method: r.Method, path: r.URL.Path, rawPath: r.URL.RawPath,
		rawQuery: r.URL.RawQuery, header: r.Header.Clone(), body: body})
	if u.answer != nil {
		u.answer(w, r)
		return nil
	}
	w.Header().Set("Content-Type", "application/fhir+json")
	_, _ = w.Write([]byte("{}"))
	return nil
}

// serve runs one request through the Guard with a Caddy replacer, as
// Caddy would, and returns the response. The router sends a request to
// the guard when Guard.Guards its path; so does serve.
func (e *fuzzEnv) serve(r *http.Request, next caddyhttp.Handler) *httptest.ResponseRecorder {
	if next == nil {
		next = &upstream{}
	}
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	w := httptest.NewRecorder()
	if !e.g.Guards(r.URL.Path) {
		_ = next.ServeHTTP(w, r)
		return w
	}
	_ = e.g.ServeHTTP(w, r, next)
	return w
}

// decodeJSONObject decodes a JSON object as the guard reads one (numbers
// kept as they are), or nil.
func decodeJSONObject(b []byte) map[string]any {
	m, ok := parseJSONObject(b)
	if !ok {
		return nil
	}
	return m
}

// decodeCheckedJSON decodes a body the guard must check (resources sent,
// upstream answers, stored resources) as the guard does: strictly
// (guard_json.go: no duplicate or case-variant keys, nothing after the
// object). What the guard refuses there is refused safely, and
// FuzzParseCheckedJSON checks that reader against encoding/json.
func decodeCheckedJSON(b []byte) map[string]any {
	m, _, err := parseCheckedJSON(b)
	if err != nil {
		return nil
	}
	return m
}

// checkOutcome fails unless w is a guard refusal: a 4xx or 5xx
// OperationOutcome, never cached.
func checkOutcome(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	if w.Code < 400 {
		t.Fatalf("refusal with status %d", w.Code)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/fhir+json" {
		t.Fatalf("refusal %d with Content-Type %q: %s", w.Code, ct, w.Body)
	}
	m := decodeJSONObject(w.Body.Bytes())
	if m == nil || m["resourceType"] != "OperationOutcome" {
		t.Fatalf("refusal %d is not an OperationOutcome: %s", w.Code, w.Body)
	}
}

// newFuzzRequest builds a request for the guard from fuzzed request-line
// parts (fuzzhttp.NewRequest); ok is false when net/http would refuse it.
func newFuzzRequest(method, target string, body []byte) (*http.Request, bool) {
	return fuzzhttp.NewRequest(method, target, "fhir.example.org", body)
}

// validHeader tells whether v may be sent as a header field value.
func validHeader(v string) bool { return fuzzhttp.ValidHeader(v) }
