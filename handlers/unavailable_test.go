package handlers_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/smartcaddy/smartauth/handlers"
	"github.com/smartcaddy/smartauth/handlers/authz"
	"github.com/smartcaddy/smartauth/handlers/guard"
	"github.com/smartcaddy/smartauth/handlers/register"
	"github.com/smartcaddy/smartauth/handlers/users"
	"github.com/smartcaddy/smartauth/internal/pgtest"
	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/store"
	"github.com/smartcaddy/smartauth/store/postgres"
)

// pgEnv is a router on a PostgreSQL store (a fresh database) behind an
// httptest server, with a static and a dynamically registered public
// client and one user, for the outage tests.
type pgEnv struct {
	*tokenEnv
	h   *tokenHandler
	db  *postgres.DB
	dsn string
}

// newPGEnv builds a pgEnv whose guard has the given options.
func newPGEnv(t *testing.T, guardOpts guard.Options) *pgEnv {
	t.Helper()
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	db, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ring, err := keys.New(ctx, keys.Options{Store: db, Retain: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	h := &tokenHandler{}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	// Only the request helpers of tokenEnv are used (t, issuer, tokenURL):
	// its Badger-specific fields stay empty.
	e := &tokenEnv{t: t, srv: srv, handler: h, issuer: srv.URL + "/auth", fhirBase: srv.URL + "/fhir"}
	e.tokenURL = e.issuer + "/token"
	iss, _ := url.Parse(e.issuer)
	fhir, _ := url.Parse(e.fhirBase)
	both := []string{"authorization_code", "refresh_token"}
	if err := db.PutClient(ctx, &store.Client{ID: tkDynamic, Type: store.ClientPublic, RedirectURIs: []string{tkRedirect}, GrantTypes: both, Dynamic: true}); err != nil {
		t.Fatal(err)
	}
	s, err := handlers.New(handlers.Config{
		Issuer:   iss,
		FHIRBase: fhir,
		Store:    db,
		Keys:     ring,
		Clients: map[string]*store.Client{
			tkPublic: {ID: tkPublic, Type: store.ClientPublic, RedirectURIs: []string{tkRedirect}, GrantTypes: both},
		},
		Users: map[string]*users.User{tkUser: {Name: tkUser, FHIRUser: tkUserFHIR, Patients: []string{"pat-1"},
			PasswordHash: testPasswordHash(t, alicePassword)}},
		Registration: register.Settings{Enabled: true, Open: true},
		Guard:        guardOpts,
		Authz:        authz.Settings{PasswordLogin: true},
		Lifetimes: authz.Lifetimes{
			AccessToken: 10 * time.Minute, RefreshToken: 24 * time.Hour,
			Code: time.Minute, Launch: time.Minute, Session: time.Hour,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.s.Store(s)
	t.Cleanup(func() { _ = s.Close() })
	return &pgEnv{tokenEnv: e, h: h, db: db, dsn: dsn}
}

// seed stores a code for client as the authorize endpoint would, and
// returns the token request that redeems it.
func (pe *pgEnv) seed(client string) url.Values {
	pe.t.Helper()
	verifier := oauth2.GenerateVerifier()
	code := store.NewSecret()
	rec := &store.AuthCode{
		ClientID: client, RedirectURI: tkRedirect, CodeChallenge: oauth2.S256ChallengeFromVerifier(verifier),
		Scope: "openid fhirUser launch/patient patient/*.rs offline_access", Subject: tkUser,
		AuthTime: time.Now().Add(-time.Minute).Truncate(time.Second), FamilyID: store.NewSecret(),
		Context: store.LaunchContext{Patient: "pat-1"},
	}
	if err := pe.db.SaveCode(context.Background(), code, rec, time.Minute); err != nil {
		pe.t.Fatal(err)
	}
	return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {tkRedirect},
		"client_id": {client}, "code_verifier": {verifier}}
}

// read sends a guarded FHIR read with an access token; it returns the
// answer (body closed).
func (pe *pgEnv) read(access string) *http.Response {
	pe.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, pe.fhirBase+"/Patient/pat-1", nil)
	req.Header.Set("Authorization", "Bearer "+access)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		pe.t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp
}

// TestStoreUnavailable: the handlers on a PostgreSQL store whose database
// refuses connections answer 503 temporarily_unavailable with a
// Retry-After, never 500, at the token endpoint (a static client and a
// dynamically registered one) and at registration, and the sign-in page
// is a 503 page with the same Retry-After; once the database
// accepts connections again the same server redeems a code, the one the
// refused request carried (nothing was used up by the failure). The guard
// answers a token it has not verified yet with 503 and Retry-After while
// it cannot check its revocation, and lets it through afterwards.
func TestStoreUnavailable(t *testing.T) {
	pe := newPGEnv(t, guard.Options{})
	e, h, dsn, seed := pe.tokenEnv, pe.h, pe.dsn, pe.seed
	static, dynamic := seed(tkPublic), seed(tkDynamic)
	// An access token the guard has not seen yet (so not cached).
	first := e.post(seed(tkPublic), nil)
	access := first.str("access_token")
	if first.status != http.StatusOK || access == "" {
		t.Fatalf("a token before the outage: %d %v", first.status, first.body)
	}
	fhirRead := func() *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, e.fhirBase+"/Patient/pat-1", nil)
		req.Header.Set("Authorization", "Bearer "+access)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp
	}

	unavailable := func(what string, r tokenReply) {
		t.Helper()
		if r.status != http.StatusServiceUnavailable || r.str("error") != "temporarily_unavailable" {
			t.Fatalf("%s while the database is down: %d %v, want 503 temporarily_unavailable", what, r.status, r.body)
		}
		if got := r.header.Get("Retry-After"); got != "5" {
			t.Errorf("%s while the database is down: Retry-After %q, want 5", what, got)
		}
	}

	pgtest.Refuse(t, dsn)
	unavailable("token request of a static client", e.post(static, nil))
	unavailable("token request of a registered client", e.post(dynamic, nil))
	unavailable("registration", e.sendJSON(http.MethodPost, e.issuer+"/register", "", map[string]any{
		"redirect_uris": []string{tkRedirect}, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code"}, "response_types": []string{"code"}, "client_name": "Down App",
	}))

	// The sign-in page stores nothing: its form is shown while the
	// database is down. Signing in stores a session: a 503 page.
	b := (&flowEnv{t: t, issuer: e.issuer}).browser()
	lp := b.get(e.issuer + "/login")
	if lp.status != http.StatusOK {
		t.Fatalf("sign-in page while the database is down: %d, want the form", lp.status)
	}
	p := b.login(lp, tkUser, alicePassword)
	if p.status != http.StatusServiceUnavailable || p.header.Get("Retry-After") != "5" ||
		!strings.HasPrefix(p.header.Get("Content-Type"), "text/html") {
		t.Fatalf("sign-in while the database is down: %d, Retry-After %q, %s, want a 503 page with Retry-After 5",
			p.status, p.header.Get("Retry-After"), p.header.Get("Content-Type"))
	}

	// The guard cannot check the new token's revocation: 503 with
	// Retry-After and no Bearer challenge (the app keeps its token),
	// never 401.
	before := h.upstream.Load()
	if resp := fhirRead(); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "5" ||
		resp.Header.Get("WWW-Authenticate") != "" || h.upstream.Load() != before {
		t.Fatalf("guarded read while the database is down: %d, Retry-After %q, WWW-Authenticate %q, upstream calls %d; want 503, 5, none, 0",
			resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("WWW-Authenticate"), h.upstream.Load()-before)
	}

	pgtest.Allow(t, dsn)
	// The same token passes the guard again (next answers 404 here).
	if resp := fhirRead(); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("guarded read after recovery: %d, want the upstream's 404", resp.StatusCode)
	}
	for name, form := range map[string]url.Values{"static": static, "registered": dynamic} {
		r := e.post(form, nil)
		if r.status != http.StatusOK || r.str("access_token") == "" {
			t.Fatalf("token request of the %s client after recovery: %d %v", name, r.status, r.body)
		}
	}
}
