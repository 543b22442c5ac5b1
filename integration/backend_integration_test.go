package integration

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"golang.org/x/oauth2"
)

// backendKeys are a backend client's private keys: RSA 2048 (kid "rs1",
// for RS384) and P-384 (kid "ec1", for ES384).
type backendKeys struct {
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
}

func newBackendKeys(t testing.TB) backendKeys {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return backendKeys{rsa: rk, ec: ek}
}

// jwks is the public JWK Set of the keys.
func (k backendKeys) jwks(t testing.TB) string {
	t.Helper()
	set := jwk.NewSet()
	for kid, pub := range map[string]any{"rs1": &k.rsa.PublicKey, "ec1": &k.ec.PublicKey} {
		jk, err := jwk.Import(pub)
		if err != nil {
			t.Fatal(err)
		}
		_ = jk.Set(jwk.KeyIDKey, kid)
		_ = set.AddKey(jk)
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// assertion signs a client assertion: RS384 with "rs1", ES384 with "ec1".
// claims override the defaults (iss = sub = client, aud = tokenURL, a
// fresh jti, exp in 4 minutes); a nil value removes a claim. hdr adds
// protected headers.
func (k backendKeys) assertion(t testing.TB, alg, client, aud string, claims map[string]any, hdr map[string]string) string {
	t.Helper()
	all := map[string]any{
		"iss": client, "sub": client, "aud": aud, "jti": newJTI(),
		"exp": time.Now().Add(4 * time.Minute).Unix(), "iat": time.Now().Unix(),
	}
	for n, v := range claims {
		if v == nil {
			delete(all, n)
		} else {
			all[n] = v
		}
	}
	payload, err := json.Marshal(all)
	if err != nil {
		t.Fatal(err)
	}
	h := jws.NewHeaders()
	_ = h.Set(jws.TypeKey, "JWT")
	var key any
	var ja jwa.SignatureAlgorithm
	switch alg {
	case "RS384":
		key, ja = k.rsa, jwa.RS384()
		_ = h.Set(jws.KeyIDKey, "rs1")
	case "ES384":
		key, ja = k.ec, jwa.ES384()
		_ = h.Set(jws.KeyIDKey, "ec1")
	default:
		t.Fatalf("alg %s", alg)
	}
	for n, v := range hdr {
		_ = h.Set(n, v)
	}
	b, err := jws.Sign(payload, jws.WithKey(ja, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// newJTI returns a random JWT id.
func newJTI() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// oauthReply is a decoded response of the token, introspection or
// revocation endpoint.
type oauthReply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r oauthReply) str(k string) string { s, _ := r.body[k].(string); return s }

// postForm posts a form with optional headers.
func postForm(t testing.TB, u string, form url.Values, header http.Header) oauthReply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := oauthReply{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	if len(b) > 0 {
		_ = json.Unmarshal(b, &out.body)
	}
	return out
}

// ccForm is a client_credentials request with a client assertion.
func ccForm(assertion, scope string) url.Values {
	return url.Values{
		"grant_type":            {"client_credentials"},
		"scope":                 {scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
	}
}

// assertionAuth is the client-authentication part of a form.
func assertionAuth(assertion string) url.Values {
	return url.Values{
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
	}
}

// backendSite is a running server with backend clients, the flow site's
// apps, and JWKS servers in every state a jwks_uri can be in.
type backendSite struct {
	flowSite
	keys backendKeys
	// signer is the server's ES256 access-token key (a PEM file), so
	// that tests can mint expired tokens the server must refuse.
	signer *ecdsa.PrivateKey
	// jwksHits counts fetches of the good jwks_uri.
	jwksHits *atomic.Int64
}

func (b backendSite) tokenURL() string { return b.issuer() + "/token" }

func startBackendSite(t *testing.T) backendSite {
	t.Helper()
	keys := newBackendKeys(t)
	jwksDoc := keys.jwks(t)
	hits := new(atomic.Int64)
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=300")
		_, _ = io.WriteString(w, jwksDoc)
	}))
	t.Cleanup(good.Close)
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	large := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"keys":[],"pad":"`+strings.Repeat("x", 100<<10)+`"}`)
	}))
	t.Cleanup(large.Close)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// 127.0.0.1 → localhost: the same port, another host.
		u := *r.URL
		u.Scheme, u.Host = "http", strings.Replace(r.Host, "127.0.0.1", "localhost", 1)
		http.Redirect(w, r, u.String(), http.StatusFound)
	}))
	t.Cleanup(redirect.Close)

	server := newTokenSigner(t) // the server's ES256 key as a PEM file
	t.Setenv("SMARTAUTH_TEST_SYM_BACKEND", "sym-backend-secret-for-tests")
	extra := fmt.Sprintf(`signing_key ES256 %s
		client bs-inline {
			jwks `+"`%s`"+`
			scopes system/Patient.rs system/Observation.rs
		}
		client introspector {
			jwks `+"`%s`"+`
			scopes system/*.rs __introspect
		}
		client bs-uri {
			jwks_uri %s/jwks.json
			scopes system/*.rs
		}
		client bs-down {
			jwks_uri %s/jwks.json
			scopes system/*.rs
		}
		client bs-slow {
			jwks_uri %s/jwks.json
			scopes system/*.rs
		}
		client bs-large {
			jwks_uri %s/jwks.json
			scopes system/*.rs
		}
		client bs-redirect {
			jwks_uri %s/jwks.json
			scopes system/*.rs
		}
		client sym-backend {
			secret {env.SMARTAUTH_TEST_SYM_BACKEND}
			grant_types client_credentials
			allow_secret_for_client_credentials
			scopes system/*.rs
		}`, server.pemPath, jwksDoc, jwksDoc, good.URL, down.URL, slow.URL, large.URL, redirect.URL)
	s := startFlowSite(t, extra)
	return backendSite{flowSite: s, keys: keys, signer: server.key, jwksHits: hits}
}

// token runs client_credentials for a client with an assertion and
// expects success.
func (b backendSite) token(t *testing.T, alg, clientID, scope string) map[string]any {
	t.Helper()
	r := postForm(t, b.tokenURL(), ccForm(b.keys.assertion(t, alg, clientID, b.tokenURL(), nil, nil), scope), nil)
	if r.status != http.StatusOK {
		t.Fatalf("client_credentials for %s with %s: %d %s", clientID, alg, r.status, r.raw)
	}
	return r.body
}

func TestBackendServicesTokens(t *testing.T) {
	b := startBackendSite(t)
	for _, alg := range []string{"RS384", "ES384"} {
		for _, clientID := range []string{"bs-inline", "bs-uri"} {
			t.Run(alg+"/"+clientID, func(t *testing.T) {
				r := postForm(t, b.tokenURL(), ccForm(b.keys.assertion(t, alg, clientID, b.tokenURL(), nil, nil), "system/Patient.rs"), nil)
				if r.status != http.StatusOK {
					t.Fatalf("%d %s", r.status, r.raw)
				}
				if r.str("token_type") != "Bearer" || r.str("scope") != "system/Patient.rs" || r.body["expires_in"] != float64(300) {
					t.Errorf("token response %v", r.body)
				}
				if _, ok := r.body["refresh_token"]; ok {
					t.Error("a refresh token for client_credentials")
				}
				if r.header.Get("Cache-Control") != "no-store" {
					t.Errorf("Cache-Control %q", r.header.Get("Cache-Control"))
				}
				// The access token verifies against the server's JWKS.
				set, err := jwk.Fetch(t.Context(), b.issuer()+"/jwks")
				if err != nil {
					t.Fatal(err)
				}
				tok, err := jwt.Parse([]byte(r.str("access_token")), jwt.WithKeySet(set), jwt.WithAudience(b.fhirBase()), jwt.WithIssuer(b.issuer()))
				if err != nil {
					t.Fatalf("access token: %v", err)
				}
				if sub, _ := tok.Subject(); sub != clientID {
					t.Errorf("sub %q", sub)
				}
				exp, _ := tok.Expiration()
				iat, _ := tok.IssuedAt()
				if exp.Sub(iat) != 5*time.Minute {
					t.Errorf("lifetime %s, want 5m", exp.Sub(iat))
				}
			})
		}
	}
	// The jwks_uri was fetched once, then served from the cache.
	if n := b.jwksHits.Load(); n != 1 {
		t.Errorf("jwks_uri fetched %d times, want 1", n)
	}
	t.Run("symmetric client explicitly allowed", func(t *testing.T) {
		f := url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Patient.rs"}}
		h := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("sym-backend:sym-backend-secret-for-tests"))}}
		if r := postForm(t, b.tokenURL(), f, h); r.status != http.StatusOK {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
}

func TestBackendServicesRejections(t *testing.T) {
	b := startBackendSite(t)
	k := b.keys
	tokenURL := b.tokenURL()
	replayed := k.assertion(t, "ES384", "bs-inline", tokenURL, nil, nil)
	if r := postForm(t, tokenURL, ccForm(replayed, "system/Patient.rs"), nil); r.status != http.StatusOK {
		t.Fatalf("first use: %d %s", r.status, r.raw)
	}
	hs := func() string {
		// HS256 "signed" with the client's public key as the secret: the
		// classic algorithm-confusion attack.
		pub, _ := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
		pemPub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
		h := jws.NewHeaders()
		_ = h.Set(jws.KeyIDKey, "rs1")
		_ = h.Set(jws.TypeKey, "JWT")
		payload, _ := json.Marshal(map[string]any{"iss": "bs-inline", "sub": "bs-inline", "aud": tokenURL, "jti": newJTI(), "exp": time.Now().Add(time.Minute).Unix()})
		sig, err := jws.Sign(payload, jws.WithKey(jwa.HS256(), pemPub, jws.WithProtectedHeaders(h)))
		if err != nil {
			t.Fatal(err)
		}
		return string(sig)
	}
	none := func() string {
		enc := base64.RawURLEncoding
		hdr, _ := json.Marshal(map[string]string{"alg": "none", "kid": "ec1", "typ": "JWT"})
		payload, _ := json.Marshal(map[string]any{"iss": "bs-inline", "sub": "bs-inline", "aud": tokenURL, "jti": newJTI(), "exp": time.Now().Add(time.Minute).Unix()})
		return enc.EncodeToString(hdr) + "." + enc.EncodeToString(payload) + "."
	}
	tests := []struct {
		name      string
		assertion string
		scope     string
		status    int
		code      string
		why       string // in error_description
	}{
		{"expired", k.assertion(t, "ES384", "bs-inline", tokenURL, map[string]any{"exp": time.Now().Add(-2 * time.Minute).Unix()}, nil), "", 401, "invalid_client", "expired"},
		{"exp more than 5 minutes ahead", k.assertion(t, "RS384", "bs-inline", tokenURL, map[string]any{"exp": time.Now().Add(10 * time.Minute).Unix()}, nil), "", 401, "invalid_client", "more than 5 minutes"},
		{"wrong aud", k.assertion(t, "RS384", "bs-inline", b.issuer(), nil, nil), "", 401, "invalid_client", "aud must be the token endpoint"},
		{"iss is not sub", k.assertion(t, "RS384", "bs-inline", tokenURL, map[string]any{"sub": "bs-uri"}, nil), "", 401, "invalid_client", "sub"},
		{"unknown client", k.assertion(t, "RS384", "nobody", tokenURL, nil, nil), "", 401, "invalid_client", "unknown client"},
		{"replayed jti", replayed, "", 401, "invalid_client", "jti was already used"},
		{"alg none", none(), "", 401, "invalid_client", "alg"},
		{"HS256 with the public key as secret", hs(), "", 401, "invalid_client", "alg"},
		{"unknown kid", k.assertion(t, "ES384", "bs-inline", tokenURL, nil, map[string]string{"kid": "nope"}), "", 401, "invalid_client", "no registered key"},
		{"unknown kid at jwks_uri", k.assertion(t, "ES384", "bs-uri", tokenURL, nil, map[string]string{"kid": "nope"}), "", 401, "invalid_client", "no registered key"},
		{"jku not the registered jwks_uri", k.assertion(t, "ES384", "bs-uri", tokenURL, nil, map[string]string{"jku": "https://evil.example/jwks"}), "", 401, "invalid_client", "jku"},
		{"jwks_uri down", k.assertion(t, "ES384", "bs-down", tokenURL, nil, nil), "", 401, "invalid_client", "cannot be reached"},
		{"jwks_uri slow", k.assertion(t, "ES384", "bs-slow", tokenURL, nil, nil), "", 401, "invalid_client", "timed out"},
		{"jwks_uri too large", k.assertion(t, "ES384", "bs-large", tokenURL, nil, nil), "", 401, "invalid_client", "larger than"},
		{"jwks_uri redirects to another host", k.assertion(t, "ES384", "bs-redirect", tokenURL, nil, nil), "", 401, "invalid_client", "redirect refused"},
		{"unregistered scope", k.assertion(t, "ES384", "bs-inline", tokenURL, nil, nil), "system/Encounter.rs", 400, "invalid_scope", "not registered"},
		{"broader scope", k.assertion(t, "ES384", "bs-inline", tokenURL, nil, nil), "system/*.rs", 400, "invalid_scope", "not registered"},
		{"patient scope", k.assertion(t, "ES384", "bs-inline", tokenURL, nil, nil), "patient/Patient.rs", 400, "invalid_scope", "only system/"},
		{"no scope", k.assertion(t, "ES384", "bs-inline", tokenURL, nil, nil), "-", 400, "invalid_scope", "scope is required"},
		{"__introspect not registered", k.assertion(t, "ES384", "bs-inline", tokenURL, nil, nil), "__introspect", 400, "invalid_scope", "not registered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scope := tt.scope
			switch scope {
			case "":
				scope = "system/Patient.rs"
			case "-":
				scope = ""
			}
			r := postForm(t, tokenURL, ccForm(tt.assertion, scope), nil)
			if r.status != tt.status || r.str("error") != tt.code || !strings.Contains(r.str("error_description"), tt.why) {
				t.Fatalf("got %d %s, want %d %s (%s)", r.status, r.raw, tt.status, tt.code, tt.why)
			}
			if tt.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic realm=") {
				t.Errorf("401 without WWW-Authenticate: %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}
	t.Run("client secret without the operator's permission", func(t *testing.T) {
		// A symmetric client cannot use client_credentials at all unless
		// allowed; the configuration refuses it, so try a code-flow
		// client's secret instead.
		f := url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Patient.rs"}}
		h := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("confidential-app:"+confSecret))}}
		r := postForm(t, tokenURL, f, h)
		if r.status != 400 || r.str("error") != "unauthorized_client" {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
	t.Run("public client", func(t *testing.T) {
		f := url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Patient.rs"}, "client_id": {"public-app"}}
		if r := postForm(t, tokenURL, f, nil); r.status != 401 || r.str("error") != "invalid_client" {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
	t.Run("no client authentication", func(t *testing.T) {
		f := url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Patient.rs"}}
		if r := postForm(t, tokenURL, f, nil); r.status != 401 || r.str("error") != "invalid_client" || r.header.Get("WWW-Authenticate") == "" {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
	t.Run("unsupported grant type", func(t *testing.T) {
		f := assertionAuth(k.assertion(t, "ES384", "bs-inline", tokenURL, nil, nil))
		f.Set("grant_type", "password")
		if r := postForm(t, tokenURL, f, nil); r.status != 400 || r.str("error") != "unsupported_grant_type" {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
}

// mintWithKey signs an access-token-shaped JWT (typ at+jwt) with an
// ES256 key, with claims over the defaults of a backend token of client.
func (b backendSite) mintWithKey(t *testing.T, key *ecdsa.PrivateKey, clientID string, claims map[string]any) string {
	t.Helper()
	jk, err := jwk.Import(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := jk.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]any{
		"iss": b.issuer(), "aud": b.fhirBase(), "sub": clientID, "client_id": clientID,
		"scope": "system/Patient.rs", "jti": newJTI(),
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix(),
	}
	for n, v := range claims {
		all[n] = v
	}
	payload, _ := json.Marshal(all)
	h := jws.NewHeaders()
	_ = h.Set(jws.TypeKey, "at+jwt")
	_ = h.Set(jws.KeyIDKey, base64.RawURLEncoding.EncodeToString(tp))
	sig, err := jws.Sign(payload, jws.WithKey(jwa.ES256(), key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(sig)
}

func TestIntrospection(t *testing.T) {
	b := startBackendSite(t)
	introspectURL := b.issuer() + "/introspect"
	own := b.token(t, "ES384", "bs-inline", "system/Patient.rs")["access_token"].(string)
	asInline := func(token string) oauthReply {
		f := assertionAuth(b.keys.assertion(t, "RS384", "bs-inline", introspectURL, nil, nil))
		f.Set("token", token)
		return postForm(t, introspectURL, f, nil)
	}
	bearer := b.token(t, "RS384", "introspector", "system/*.rs __introspect")["access_token"].(string)
	asBearer := func(token string) oauthReply {
		return postForm(t, introspectURL, url.Values{"token": {token}}, http.Header{"Authorization": {"Bearer " + bearer}})
	}
	inactive := func(t *testing.T, r oauthReply) {
		t.Helper()
		if r.status != 200 || strings.TrimSpace(r.raw) != `{"active":false}` {
			t.Fatalf("want only {\"active\":false}, got %d %s", r.status, r.raw)
		}
	}

	t.Run("active, own token with private_key_jwt", func(t *testing.T) {
		r := asInline(own)
		if r.status != 200 || r.body["active"] != true {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		for k, want := range map[string]any{"scope": "system/Patient.rs", "client_id": "bs-inline", "sub": "bs-inline", "iss": b.issuer(), "aud": b.fhirBase(), "token_type": "Bearer"} {
			if r.body[k] != want {
				t.Errorf("%s = %v, want %v", k, r.body[k], want)
			}
		}
		exp, _ := r.body["exp"].(float64)
		iat, _ := r.body["iat"].(float64)
		if exp-iat != 300 {
			t.Errorf("exp %v iat %v", exp, iat)
		}
		if r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control %q", r.header.Get("Cache-Control"))
		}
	})
	t.Run("active, any client's token with an __introspect bearer", func(t *testing.T) {
		if r := asBearer(own); r.body["active"] != true || r.body["client_id"] != "bs-inline" {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
	t.Run("another client's token without __introspect", func(t *testing.T) {
		other := b.token(t, "ES384", "bs-uri", "system/Patient.rs")["access_token"].(string)
		inactive(t, asInline(other))
	})
	t.Run("expired", func(t *testing.T) {
		old := b.mintWithKey(t, b.signer, "bs-inline", map[string]any{"iat": time.Now().Add(-time.Hour).Unix(), "exp": time.Now().Add(-10 * time.Minute).Unix()})
		inactive(t, asBearer(old))
		// The same key with a live exp is accepted: the expiry made the
		// difference.
		if r := asBearer(b.mintWithKey(t, b.signer, "bs-inline", nil)); r.body["active"] != true {
			t.Fatalf("control token: %s", r.raw)
		}
	})
	t.Run("foreign", func(t *testing.T) {
		stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		inactive(t, asBearer(b.mintWithKey(t, stranger, "bs-inline", nil)))
	})
	t.Run("malformed", func(t *testing.T) {
		inactive(t, asBearer("not-a-token"))
		inactive(t, asBearer("a.b.c"))
	})
	t.Run("revoked", func(t *testing.T) {
		tok := b.token(t, "ES384", "bs-inline", "system/Patient.rs")["access_token"].(string)
		f := assertionAuth(b.keys.assertion(t, "ES384", "bs-inline", b.issuer()+"/revoke", nil, nil))
		f.Set("token", tok)
		if r := postForm(t, b.issuer()+"/revoke", f, nil); r.status != 200 {
			t.Fatalf("revoke: %d %s", r.status, r.raw)
		}
		inactive(t, asBearer(tok))
	})
	t.Run("caller authentication", func(t *testing.T) {
		// No credentials, a public client, a bearer without the scope.
		if r := postForm(t, introspectURL, url.Values{"token": {own}}, nil); r.status != 401 || r.str("error") != "invalid_client" {
			t.Errorf("anonymous: %d %s", r.status, r.raw)
		}
		if r := postForm(t, introspectURL, url.Values{"token": {own}, "client_id": {"public-app"}}, nil); r.status != 401 {
			t.Errorf("public client: %d %s", r.status, r.raw)
		}
		if r := postForm(t, introspectURL, url.Values{"token": {own}}, http.Header{"Authorization": {"Bearer " + own}}); r.status != 403 || r.str("error") != "insufficient_scope" {
			t.Errorf("bearer without __introspect: %d %s", r.status, r.raw)
		}
		if r := postForm(t, introspectURL, url.Values{"token": {own}}, http.Header{"Authorization": {"Bearer garbage"}}); r.status != 401 || r.str("error") != "invalid_token" {
			t.Errorf("bad bearer: %d %s", r.status, r.raw)
		}
	})
}

// codeFlowTokens runs the standalone launch for public-app with
// offline_access and returns the token response.
func codeFlowTokens(t *testing.T, s flowSite) (access, refreshToken string) {
	t.Helper()
	cfg := s.oauth("public-app", "", "launch/patient", "patient/*.rs", "offline_access")
	verifier := oauth2.GenerateVerifier()
	q := newBrowser(t).run(cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", s.fhirBase())), s.redirect)
	tok, err := cfg.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken, tok.RefreshToken
}

func TestRevocationCascade(t *testing.T) {
	b := startBackendSite(t)
	introspectURL := b.issuer() + "/introspect"
	bearer := b.token(t, "RS384", "introspector", "system/*.rs __introspect")["access_token"].(string)
	active := func(token string) bool {
		r := postForm(t, introspectURL, url.Values{"token": {token}}, http.Header{"Authorization": {"Bearer " + bearer}})
		return r.body["active"] == true
	}
	revoke := func(token, clientID, hint string) oauthReply {
		f := url.Values{"token": {token}, "client_id": {clientID}}
		if hint != "" {
			f.Set("token_type_hint", hint)
		}
		return postForm(t, b.issuer()+"/revoke", f, nil)
	}
	access, rt := codeFlowTokens(t, b.flowSite)
	next := refresh(t, b.flowSite, rt, "public-app")
	access2, rt2 := next["access_token"].(string), next["refresh_token"].(string)
	for _, tok := range []string{access, access2, rt2} {
		if !active(tok) {
			t.Fatal("a token is inactive before revocation")
		}
	}
	// Another client may not revoke them.
	if r := revoke(rt2, "bs-inline-not-public", ""); r.status != 401 {
		t.Errorf("unknown client: %d %s", r.status, r.raw)
	}
	f := assertionAuth(b.keys.assertion(t, "ES384", "bs-inline", b.issuer()+"/revoke", nil, nil))
	f.Set("token", rt2)
	if r := postForm(t, b.issuer()+"/revoke", f, nil); r.status != 400 || r.str("error") != "unauthorized_client" {
		t.Errorf("another client's refresh token: %d %s", r.status, r.raw)
	}
	if !active(rt2) {
		t.Fatal("another client revoked the token")
	}
	// The hint is only a hint: a refresh token sent as access_token.
	if r := revoke(rt2, "public-app", "access_token"); r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.raw)
	}
	for name, tok := range map[string]string{"first access token": access, "second access token": access2, "refresh token": rt2} {
		if active(tok) {
			t.Errorf("%s still active after its family was revoked", name)
		}
	}
	if after := refresh(t, b.flowSite, rt2, "public-app"); after["error"] != "invalid_grant" {
		t.Errorf("refresh after revocation: %v", after)
	}
	// Unknown and already revoked tokens: 200.
	for _, tok := range []string{"unknown-token", rt2, access} {
		if r := revoke(tok, "public-app", ""); r.status != 200 {
			t.Errorf("revoking %q: %d %s", tok[:7], r.status, r.raw)
		}
	}
}
