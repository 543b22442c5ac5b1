package authz

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/smartcaddy/smartauth/handlers/accesstoken"
	"github.com/smartcaddy/smartauth/handlers/clients"
	"github.com/smartcaddy/smartauth/handlers/internal/fuzzhttp"
	"github.com/smartcaddy/smartauth/handlers/users"
	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/store"
)

// The fuzz deployment: an issuer and a FHIR base on distinct hosts, so
// that audiences stay meaningful; requests go to the Server's routes in
// process, as the router (package handlers) sends them.
const (
	fzIssuer   = "https://auth.example.org/auth"
	fzFHIRBase = "https://fhir.example.org/fhir"
	// fzPatient is the context patient of fzToken; fzUser is a Patient
	// user whose record it is.
	fzPatient  = "p1"
	fzUser     = "pat"
	fzApp      = "app"
	fzEHR      = "ehr"
	fzConf     = "conf"
	fzBackend  = "backend"
	fzSecret   = "fuzz-secret-0123456789"
	fzRedirect = "https://app.example.org/cb"
)

// fhirIDOracle is a FHIR id (R4 datatypes: [A-Za-z0-9\-\.]{1,64}).
var fhirIDOracle = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// fuzzEnv is an authorization Server over a real Badger store and key
// ring, with its shared parts (client registry, access-token profile,
// reach rule) built as the router builds them, set up once per fuzzing
// process.
type fuzzEnv struct {
	s    *Server
	db   *store.DB
	ring *keys.Ring
	// token is an access token of fzUser through fzApp with
	// patient/*.cruds and patient fzPatient.
	token string
	// Private keys of the fzBackend client: P-384 "ec1", P-256 "ec256",
	// RSA 2048 "rs1"; other is a P-384 key the client never registered.
	ec384, ec256, other *ecdsa.PrivateKey
	rsa                 *rsa.PrivateKey
}

// newFuzzEnv builds the fuzz deployment. Its store lives in tb's
// temporary directory.
func newFuzzEnv(tb testing.TB) *fuzzEnv {
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
	if e.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		tb.Fatal(err)
	}
	if e.ec256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		tb.Fatal(err)
	}
	if e.other, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		tb.Fatal(err)
	}
	if e.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		tb.Fatal(err)
	}
	set := jwk.NewSet()
	for kid, k := range map[string]any{"ec1": &e.ec384.PublicKey, "ec256": &e.ec256.PublicKey, "rs1": &e.rsa.PublicKey} {
		jk, err := jwk.Import(k)
		if err != nil {
			tb.Fatal(err)
		}
		if err := jk.Set(jwk.KeyIDKey, kid); err != nil {
			tb.Fatal(err)
		}
		if err := set.AddKey(jk); err != nil {
			tb.Fatal(err)
		}
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		tb.Fatal(err)
	}
	iss, _ := url.Parse(fzIssuer)
	fhir, _ := url.Parse(fzFHIRBase)
	secret := store.HashSecret(fzSecret)
	code := []string{"authorization_code", "refresh_token"}
	registry, err := clients.New(clients.Options{
		Issuer: fzIssuer, TokenEndpoint: fzIssuer + PathToken, Store: db,
		Configured: map[string]*store.Client{
			fzApp: {ID: fzApp, Name: "App", Type: store.ClientPublic, RedirectURIs: []string{fzRedirect},
				LaunchURI: "https://app.example.org/launch", GrantTypes: code},
			fzEHR: {ID: fzEHR, Type: store.ClientConfidentialSymmetric, SecretHash: secret, CanCreateLaunch: true,
				GrantTypes: []string{"client_credentials"}, AllowSecretForClientCredentials: true, Scopes: []string{"system/*.rs"}},
			fzConf: {ID: fzConf, Type: store.ClientConfidentialSymmetric, SecretHash: secret,
				RedirectURIs: []string{fzRedirect}, GrantTypes: code},
			fzBackend: {ID: fzBackend, Type: store.ClientConfidentialAsymmetric, JWKS: jwks,
				GrantTypes: []string{"client_credentials"}, Scopes: []string{"system/*.rs"}},
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = registry.Close() })
	lifetimes := Lifetimes{AccessToken: time.Hour, Launch: time.Hour}.WithDefaults()
	tokens, err := accesstoken.New(accesstoken.Options{
		Issuer: fzIssuer, Audience: fzFHIRBase, Keys: ring, Lifetime: lifetimes.AccessToken, Store: db,
	})
	if err != nil {
		tb.Fatal(err)
	}
	e.s, err = New(Options{
		Issuer: iss, FHIRBase: fhir, Store: db, Keys: ring, Clients: registry, Tokens: tokens,
		Users: map[string]*users.User{
			fzUser:  {Name: fzUser, FHIRUser: "Patient/" + fzPatient},
			"alice": {Name: "alice", FHIRUser: "Practitioner/pr1", Patients: []string{fzPatient, "p2"}},
		},
		Rule:                 users.New(users.Options{}),
		Lifetimes:            lifetimes,
		RegistrationEndpoint: fzIssuer + "/register",
		Logins:               NewLoginLimiter(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	e.token = e.accessToken(tb, fzUser, fzApp, "launch/patient patient/*.cruds", fzPatient)
	return e
}

// accessToken signs an access token as the token endpoint does, valid
// for a day (long fuzzing runs reuse it).
func (e *fuzzEnv) accessToken(tb testing.TB, sub, client, scope, patient string) string {
	tb.Helper()
	now := time.Now()
	b := jwt.NewBuilder().Issuer(fzIssuer).Subject(sub).Audience([]string{fzFHIRBase}).
		IssuedAt(now).NotBefore(now).Expiration(now.Add(24*time.Hour)).JwtID(store.NewSecret()).
		Claim(accesstoken.ClaimClientID, client).Claim(accesstoken.ClaimScope, scope)
	if patient != "" {
		b = b.Claim(accesstoken.ClaimPatient, patient)
	}
	if sub == fzUser {
		b = b.Claim(accesstoken.ClaimFHIRUser, fzFHIRBase+"/Patient/"+fzPatient)
	}
	tok, err := b.Build()
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := e.ring.Sign(tok, keys.ES256, accesstoken.Type)
	if err != nil {
		tb.Fatal(err)
	}
	return string(raw)
}

// serve runs one request through the Server's route for its path, with a
// Caddy replacer, as the router would, and returns the response; a path
// the Server does not route gets 404.
func (e *fuzzEnv) serve(r *http.Request) *httptest.ResponseRecorder {
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	w := httptest.NewRecorder()
	h, ok := e.s.routes[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return w
	}
	h(w, r)
	return w
}

// newFuzzRequest builds a request for the authorization server from
// fuzzed request-line parts (fuzzhttp.NewRequest); ok is false when
// net/http would refuse it.
func newFuzzRequest(method, target string, body []byte) (*http.Request, bool) {
	return fuzzhttp.NewRequest(method, target, "fhir.example.org", body)
}

// checkOAuthError fails unless w is an OAuth error response and returns
// its code (fuzzhttp.CheckOAuthError).
func checkOAuthError(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	return fuzzhttp.CheckOAuthError(t, w)
}
