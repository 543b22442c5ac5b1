package handlers_test

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
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"golang.org/x/oauth2"

	"github.com/smartcaddy/smartauth/handlers"
	"github.com/smartcaddy/smartauth/handlers/authz"
	"github.com/smartcaddy/smartauth/handlers/users"
	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/store"
)

// Test clients and users of the token endpoint tests.
const (
	tkPublic       = "public-app"
	tkConfidential = "conf-app"
	tkCodeOnly     = "code-only-app"
	tkAsym         = "asym-app"
	tkBackend      = "backend-app"
	tkDynamic      = "dyn-app"
	tkRedirect     = "https://app.example.org/callback"
	tkUser         = "alice"
	tkUserName     = "Alice Example"
	tkUserFHIR     = "Practitioner/alice-1"
	// tkSecret needs RFC 6749 §2.3.1 encoding in HTTP Basic.
	tkSecret = "s3cr:et/with+plus&amp=%"
)

// tokenClock is a settable clock for the store.
type tokenClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *tokenClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *tokenClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// tokenEnv is a running server for the token endpoint tests: a real Badger
// store, a real key ring and the handlers behind httptest.
type tokenEnv struct {
	t        *testing.T
	srv      *httptest.Server
	db       *store.DB
	ring     *keys.Ring
	clock    *tokenClock
	dir      string
	cfg      handlers.Config
	handler  *tokenHandler
	issuer   string
	fhirBase string
	tokenURL string
	// ecKey (P-384, kid "ec1") and rsaKey (2048, kid "rs1") are the
	// asymmetric client's private keys; the client's JWKS holds their
	// public halves.
	ecKey  *ecdsa.PrivateKey
	rsaKey *rsa.PrivateKey
	// ec256Key (P-256, kid "ec256") is a second EC key of the client.
	ec256Key *ecdsa.PrivateKey
}

// tokenHandler adapts the Caddy handler to net/http.
type tokenHandler struct {
	s atomic.Pointer[handlers.Server]
	// upstream counts the requests that reached the next handler (the
	// FHIR server behind the guard), which answers 404.
	upstream atomic.Int64
}

func (h *tokenHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = h.s.Load().ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		h.upstream.Add(1)
		http.NotFound(w, r)
		return nil
	}))
}

func newTokenEnv(t *testing.T) *tokenEnv {
	t.Helper()
	e := &tokenEnv{t: t, clock: &tokenClock{}, dir: t.TempDir()}
	db, err := store.Open(e.dir, store.Options{Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.db.Close() })
	e.db = db
	ctx := context.Background()
	e.ring, err = keys.New(ctx, keys.Options{Store: db, Retain: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	h := &tokenHandler{}
	e.handler = h
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	e.issuer = e.srv.URL + "/auth"
	e.fhirBase = e.srv.URL + "/fhir"
	e.tokenURL = e.issuer + "/token"

	if e.ecKey, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if e.ec256Key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if e.rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	set := jwk.NewSet()
	for kid, k := range map[string]any{"ec1": &e.ecKey.PublicKey, "rs1": &e.rsaKey.PublicKey, "ec256": &e.ec256Key.PublicKey} {
		jk, err := jwk.Import(k)
		if err != nil {
			t.Fatal(err)
		}
		if err := jk.Set(jwk.KeyIDKey, kid); err != nil {
			t.Fatal(err)
		}
		if err := set.AddKey(jk); err != nil {
			t.Fatal(err)
		}
	}
	// The P-384 key again under kid "enc1", marked for encryption only.
	enc, err := jwk.Import(&e.ecKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.Set(jwk.KeyIDKey, "enc1"); err != nil {
		t.Fatal(err)
	}
	if err := enc.Set(jwk.KeyUsageKey, "enc"); err != nil {
		t.Fatal(err)
	}
	if err := set.AddKey(enc); err != nil {
		t.Fatal(err)
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}

	both := []string{"authorization_code", "refresh_token"}
	clients := map[string]*store.Client{
		tkPublic:       {ID: tkPublic, Type: store.ClientPublic, RedirectURIs: []string{tkRedirect}, GrantTypes: both},
		tkConfidential: {ID: tkConfidential, Type: store.ClientConfidentialSymmetric, SecretHash: store.HashSecret(tkSecret), RedirectURIs: []string{tkRedirect}, GrantTypes: both},
		tkCodeOnly:     {ID: tkCodeOnly, Type: store.ClientPublic, RedirectURIs: []string{tkRedirect}, GrantTypes: []string{"authorization_code"}},
		tkAsym:         {ID: tkAsym, Type: store.ClientConfidentialAsymmetric, JWKS: jwks, RedirectURIs: []string{tkRedirect}, GrantTypes: both},
		tkBackend:      {ID: tkBackend, Type: store.ClientConfidentialAsymmetric, JWKS: jwks, GrantTypes: []string{"client_credentials"}},
	}
	if err := db.PutClient(ctx, &store.Client{ID: tkDynamic, Type: store.ClientPublic, RedirectURIs: []string{tkRedirect}, GrantTypes: both, Dynamic: true}); err != nil {
		t.Fatal(err)
	}
	iss, _ := url.Parse(e.issuer)
	fhir, _ := url.Parse(e.fhirBase)
	e.cfg = handlers.Config{
		Issuer:   iss,
		FHIRBase: fhir,
		Store:    db,
		Keys:     e.ring,
		Clients:  clients,
		Users: map[string]*users.User{
			tkUser: {Name: tkUser, FHIRUser: tkUserFHIR, DisplayName: tkUserName, Patients: []string{"pat-1"}},
			"bob":  {Name: "bob"},
		},
		Lifetimes: authz.Lifetimes{
			AccessToken:  10 * time.Minute,
			RefreshToken: 24 * time.Hour,
			Code:         time.Minute,
			Launch:       time.Minute,
			Session:      time.Hour,
		},
	}
	s, err := handlers.New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.s.Store(s)
	// The Server in use at the end (restart replaces it) is closed
	// before the store: cleanups run last-in first-out.
	t.Cleanup(func() { _ = h.s.Load().Close() })
	return e
}

// restart closes the store and serves from a new Server on the reopened
// store and a new key ring, as a Caddy restart would.
func (e *tokenEnv) restart() {
	e.t.Helper()
	_ = e.handler.s.Load().Close()
	if err := e.db.Close(); err != nil {
		e.t.Fatal(err)
	}
	db, err := store.Open(e.dir, store.Options{Now: e.clock.Now})
	if err != nil {
		e.t.Fatal(err)
	}
	e.db = db
	if e.ring, err = keys.New(context.Background(), keys.Options{Store: db, Retain: time.Hour}); err != nil {
		e.t.Fatal(err)
	}
	e.cfg.Store, e.cfg.Keys = db, e.ring
	s, err := handlers.New(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.handler.s.Store(s)
}

// codeOptions describe a code to seed.
type codeOptions struct {
	client    string // default tkPublic
	scope     string // default "openid fhirUser profile launch/patient patient/*.rs offline_access"
	subject   string // default tkUser
	nonce     string
	sessionID string
	context   store.LaunchContext
}

// seededCode is a code the tests play the authorize endpoint for.
type seededCode struct {
	code     string
	verifier string
	rec      *store.AuthCode
}

// seedCode stores an authorization code as the authorize endpoint would.
func (e *tokenEnv) seedCode(o codeOptions) seededCode {
	e.t.Helper()
	if o.client == "" {
		o.client = tkPublic
	}
	if o.scope == "" {
		o.scope = "openid fhirUser profile launch/patient patient/*.rs offline_access"
	}
	if o.subject == "" {
		o.subject = tkUser
	}
	verifier := oauth2.GenerateVerifier()
	rec := &store.AuthCode{
		ClientID:      o.client,
		RedirectURI:   tkRedirect,
		CodeChallenge: oauth2.S256ChallengeFromVerifier(verifier),
		Scope:         o.scope,
		Subject:       o.subject,
		Nonce:         o.nonce,
		AuthTime:      time.Now().Add(-time.Minute).Truncate(time.Second),
		SessionHash:   store.HashID(o.sessionID),
		Context:       o.context,
		FamilyID:      store.NewSecret(),
	}
	code := store.NewSecret()
	if err := e.db.SaveCode(context.Background(), code, rec, time.Minute); err != nil {
		e.t.Fatal(err)
	}
	return seededCode{code: code, verifier: verifier, rec: rec}
}

// tokenReply is a decoded token endpoint response.
type tokenReply struct {
	status int
	header http.Header
	body   map[string]any
}

func (r tokenReply) str(k string) string {
	s, _ := r.body[k].(string)
	return s
}

// post sends a form to the token endpoint; basic, when not nil, holds the
// raw id and secret for HTTP Basic (encoded here per RFC 6749 §2.3.1).
func (e *tokenEnv) post(form url.Values, basic *[2]string) tokenReply {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic != nil {
		req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
	}
	return e.do(req)
}

func (e *tokenEnv) do(req *http.Request) tokenReply {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	out := tokenReply{status: resp.StatusCode, header: resp.Header}
	if len(b) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &out.body); err != nil {
			e.t.Fatalf("decoding %q: %v", b, err)
		}
	}
	return out
}

// expectTokenError checks an error response.
func expectTokenError(t *testing.T, r tokenReply, status int, code string) {
	t.Helper()
	if r.status != status || r.str("error") != code {
		t.Fatalf("got %d %v, want %d %s", r.status, r.body, status, code)
	}
	if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Pragma") != "no-cache" {
		t.Errorf("error response caching headers: %q %q", r.header.Get("Cache-Control"), r.header.Get("Pragma"))
	}
	if r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("error response without CORS header")
	}
}

// codeForm is the form of a public client's code exchange.
func codeForm(c seededCode, client string) url.Values {
	return url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {c.code},
		"redirect_uri":  {tkRedirect},
		"code_verifier": {c.verifier},
		"client_id":     {client},
	}
}

// exchange redeems a seeded code for the public client and expects success.
func (e *tokenEnv) exchange(c seededCode) tokenReply {
	e.t.Helper()
	r := e.post(codeForm(c, c.rec.ClientID), nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("code exchange: %d %v", r.status, r.body)
	}
	return r
}

// refresh posts a refresh_token grant with extra parameters.
func (e *tokenEnv) refresh(token string, extra url.Values, basic *[2]string) tokenReply {
	e.t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}}
	for k, v := range extra {
		form[k] = v
	}
	return e.post(form, basic)
}

// verifyAccessToken checks an access token's signature with the ring and
// returns it.
func (e *tokenEnv) verifyAccessToken(raw string) jwt.Token {
	e.t.Helper()
	tok, err := e.ring.Verify(context.Background(), []byte(raw), jwt.WithIssuer(e.issuer), jwt.WithAudience(e.fhirBase))
	if err != nil {
		e.t.Fatalf("access token: %v", err)
	}
	msg, err := jws.Parse([]byte(raw))
	if err != nil {
		e.t.Fatal(err)
	}
	if typ, _ := msg.Signatures()[0].ProtectedHeaders().Type(); typ != "at+jwt" {
		e.t.Errorf("access token typ %q, want at+jwt", typ)
	}
	return tok
}

// claimString reads a string claim.
func claimString(t *testing.T, tok jwt.Token, name string) string {
	t.Helper()
	var v string
	if !tok.Has(name) {
		return ""
	}
	if err := tok.Get(name, &v); err != nil {
		t.Fatalf("claim %s: %v", name, err)
	}
	return v
}

// assertionClaims are the claims of a client assertion; zero fields get
// valid defaults.
type assertionClaims struct {
	iss, sub, aud, jti string
	exp                time.Time
	iat                time.Time // zero: now
	noExp, noJTI       bool
	// cty, when set, is a header member outside the fast reader's
	// domain: the assertion is then read by jwx.
	cty string
}

// assertion signs a client assertion for the asymmetric client with one
// of its keys: alg RS384/RS256 use rsaKey ("rs1"), ES384 ecKey ("ec1"),
// ES256 ec256Key ("ec256"). kid overrides the key id when not empty.
func (e *tokenEnv) assertion(alg, kid string, c assertionClaims) string {
	e.t.Helper()
	if c.iss == "" {
		c.iss = tkAsym
	}
	if c.sub == "" {
		c.sub = c.iss
	}
	if c.aud == "" {
		c.aud = e.tokenURL
	}
	if c.jti == "" {
		c.jti = store.NewSecret()
	}
	if c.exp.IsZero() {
		c.exp = time.Now().Add(4 * time.Minute)
	}
	tok := jwt.New()
	set := func(k string, v any) {
		if err := tok.Set(k, v); err != nil {
			e.t.Fatal(err)
		}
	}
	set(jwt.IssuerKey, c.iss)
	set(jwt.SubjectKey, c.sub)
	set(jwt.AudienceKey, c.aud)
	if c.iat.IsZero() {
		c.iat = time.Now()
	}
	set(jwt.IssuedAtKey, c.iat)
	if !c.noExp {
		set(jwt.ExpirationKey, c.exp)
	}
	if !c.noJTI {
		set(jwt.JwtIDKey, c.jti)
	}
	var key any
	var defKID string
	var ja jwa.SignatureAlgorithm
	switch alg {
	case "RS384":
		key, defKID, ja = e.rsaKey, "rs1", jwa.RS384()
	case "RS256":
		key, defKID, ja = e.rsaKey, "rs1", jwa.RS256()
	case "ES384":
		key, defKID, ja = e.ecKey, "ec1", jwa.ES384()
	case "ES256":
		key, defKID, ja = e.ec256Key, "ec256", jwa.ES256()
	default:
		e.t.Fatalf("assertion: unsupported alg %s", alg)
	}
	if kid == "" {
		kid = defKID
	}
	h := jws.NewHeaders()
	if err := h.Set(jws.KeyIDKey, kid); err != nil {
		e.t.Fatal(err)
	}
	if err := h.Set(jws.TypeKey, "JWT"); err != nil {
		e.t.Fatal(err)
	}
	if c.cty != "" {
		if err := h.Set(jws.ContentTypeKey, c.cty); err != nil {
			e.t.Fatal(err)
		}
	}
	b, err := jwt.Sign(tok, jwt.WithKey(ja, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

// assertionForm is a code exchange authenticated with a client assertion.
func assertionForm(c seededCode, assertion string) url.Values {
	return url.Values{
		"grant_type":            {"authorization_code"},
		"code":                  {c.code},
		"redirect_uri":          {tkRedirect},
		"code_verifier":         {c.verifier},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
	}
}
