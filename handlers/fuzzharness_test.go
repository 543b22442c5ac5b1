package handlers

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"golang.org/x/net/http/httpguts"

	"github.com/smartcaddy/smartauth/handlers/accesstoken"
	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/store"
)

// The deployment the HTTP-level fuzz targets run against: fixed URLs, so
// that committed corpus entries (absolute Bundle URLs, assertion
// audiences) stay meaningful; requests go to Server.ServeHTTP in process.
const (
	fzIssuer   = "https://auth.example.org/auth"
	fzFHIRBase = "https://fhir.example.org/fhir"
	// fzPatient is the context patient of fzToken; fzUser is a Patient
	// user whose record it is, so that the token stays within the
	// user's reach whatever the reach rules say.
	fzPatient  = "p1"
	fzUser     = "pat"
	fzApp      = "app"
	fzEHR      = "ehr"
	fzConf     = "conf"
	fzBackend  = "backend"
	fzSecret   = "fuzz-secret-0123456789"
	fzIAT      = "fuzz-initial-access-token"
	fzRedirect = "https://app.example.org/cb"
)

// fuzzEnv is a Server over a real Badger store and key ring, set up once
// per fuzzing process.
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
	e.s, err = New(Config{
		Issuer: iss, FHIRBase: fhir, Store: db, Keys: ring,
		Clients: map[string]*store.Client{
			fzApp: {ID: fzApp, Name: "App", Type: store.ClientPublic, RedirectURIs: []string{fzRedirect},
				LaunchURI: "https://app.example.org/launch", GrantTypes: code},
			fzEHR: {ID: fzEHR, Type: store.ClientConfidentialSymmetric, SecretHash: secret, CanCreateLaunch: true,
				GrantTypes: []string{"client_credentials"}, AllowSecretForClientCredentials: true, Scopes: []string{"system/*.rs"}},
			fzConf: {ID: fzConf, Type: store.ClientConfidentialSymmetric, SecretHash: secret,
				RedirectURIs: []string{fzRedirect}, GrantTypes: code},
			fzBackend: {ID: fzBackend, Type: store.ClientConfidentialAsymmetric, JWKS: jwks,
				GrantTypes: []string{"client_credentials"}, Scopes: []string{"system/*.rs"}},
		},
		Users: map[string]*User{
			fzUser:  {Name: fzUser, FHIRUser: "Patient/" + fzPatient},
			"alice": {Name: "alice", FHIRUser: "Practitioner/pr1", Patients: []string{fzPatient, "p2"}},
		},
		Lifetimes:    Lifetimes{AccessToken: time.Hour, Launch: time.Hour},
		Registration: RegistrationOptions{Enabled: true, InitialAccessTokenHash: store.HashSecret(fzIAT)},
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = e.s.Close() })
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

// serve runs one request through the Server with a Caddy replacer, as
// Caddy would, and returns the response.
func (e *fuzzEnv) serve(r *http.Request, next caddyhttp.Handler) *httptest.ResponseRecorder {
	if next == nil {
		next = &upstream{}
	}
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	w := httptest.NewRecorder()
	_ = e.s.ServeHTTP(w, r, next)
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
		r.Host = "fhir.example.org"
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

// fhirIDOracle is a FHIR id (R4 datatypes: [A-Za-z0-9\-\.]{1,64}); the
// guard's fuzz targets have their own copy.
var fhirIDOracle = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

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
