package handlers_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/smartcaddy/smartauth/handlers"
	"github.com/smartcaddy/smartauth/handlers/register"
	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/store"
)

// regIAT is the initial access token of the registration tests.
const regIAT = "initial-access-token-for-the-tests-0123456789"

// newRegEnv is a token test server with registration enabled.
func newRegEnv(t *testing.T, open bool) *tokenEnv {
	t.Helper()
	e := newTokenEnv(t)
	e.cfg.Registration = register.Settings{Enabled: true, Open: open}
	if !open {
		e.cfg.Registration.InitialAccessTokenHash = store.HashSecret(regIAT)
	}
	s, err := handlers.New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	_ = e.handler.s.Swap(s).Close()
	return e
}

// sendJSON sends body (a string is sent as is) with a Bearer token.
func (e *tokenEnv) sendJSON(method, u, bearer string, body any) tokenReply {
	e.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			e.t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(raw))
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return e.do(req)
}

func (e *tokenEnv) register(body any) tokenReply {
	e.t.Helper()
	return e.sendJSON(http.MethodPost, e.issuer+"/register", regIAT, body)
}

// publicJWKS is a JWK Set of the test client's P-384 (kid ec1) and RSA
// (kid rs1) public keys.
func (e *tokenEnv) publicJWKS() json.RawMessage {
	e.t.Helper()
	set := jwk.NewSet()
	for kid, k := range map[string]any{"ec1": &e.ecKey.PublicKey, "rs1": &e.rsaKey.PublicKey} {
		jk, err := jwk.Import(k)
		if err != nil {
			e.t.Fatal(err)
		}
		_ = jk.Set(jwk.KeyIDKey, kid)
		_ = set.AddKey(jk)
	}
	b, err := json.Marshal(set)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// jwksOf builds a JWK Set of one key under kid ("" for none).
func jwksOf(t *testing.T, key any, kid string) json.RawMessage {
	t.Helper()
	jk, err := jwk.Import(key)
	if err != nil {
		t.Fatal(err)
	}
	if kid != "" {
		_ = jk.Set(jwk.KeyIDKey, kid)
	}
	set := jwk.NewSet()
	_ = set.AddKey(jk)
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRegisterValidationErrors(t *testing.T) {
	e := newRegEnv(t, false)
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks := e.publicJWKS()
	type m = map[string]any
	web := func(extra m) m {
		out := m{"redirect_uris": []string{tkRedirect}, "token_endpoint_auth_method": "none"}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	backend := func(extra m) m {
		out := m{"grant_types": []string{"client_credentials"}, "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks, "scope": "system/Observation.rs"}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		body   any
		status int
		code   string
		desc   string // a part of error_description
	}{
		{"unknown auth method", web(m{"token_endpoint_auth_method": "tls_client_auth"}), 400, "invalid_client_metadata", "token_endpoint_auth_method"},
		{"unknown grant type", web(m{"grant_types": []string{"password"}}), 400, "invalid_client_metadata", "grant_types"},
		{"implicit response type", web(m{"response_types": []string{"token"}}), 400, "invalid_client_metadata", "response_types"},
		{"code without authorization_code", backend(m{"response_types": []string{"code"}}), 400, "invalid_client_metadata", "response_types"},
		{"refresh without code", backend(m{"grant_types": []string{"client_credentials", "refresh_token"}}), 400, "invalid_client_metadata", "refresh_token needs authorization_code"},
		{"no redirect uri", m{"token_endpoint_auth_method": "none"}, 400, "invalid_redirect_uri", "redirect_uris"},
		{"http redirect off loopback", web(m{"redirect_uris": []string{"http://app.example.org/cb"}}), 400, "invalid_redirect_uri", "https"},
		{"redirect with fragment", web(m{"redirect_uris": []string{"https://app.example.org/cb#x"}}), 400, "invalid_redirect_uri", "fragment"},
		{"relative redirect", web(m{"redirect_uris": []string{"/cb"}}), 400, "invalid_redirect_uri", "absolute"},
		{"redirect with user info", web(m{"redirect_uris": []string{"https://u:p@app.example.org/cb"}}), 400, "invalid_redirect_uri", "user info"},
		{"redirect for a backend client", backend(m{"redirect_uris": []string{tkRedirect}}), 400, "invalid_redirect_uri", "redirect_uris"},
		{"launch_uri over http", web(m{"launch_uri": "http://app.example.org/launch"}), 400, "invalid_client_metadata", "launch_uri"},
		{"private_key_jwt without keys", backend(m{"jwks": nil}), 400, "invalid_client_metadata", "jwks_uri"},
		{"jwks and jwks_uri", backend(m{"jwks_uri": "https://app.example.org/jwks"}), 400, "invalid_client_metadata", "not both"},
		{"keys for a public client", web(m{"jwks_uri": "https://app.example.org/jwks"}), 400, "invalid_client_metadata", "private_key_jwt only"},
		{"jwks_uri over http", backend(m{"jwks": nil, "jwks_uri": "http://app.example.org/jwks"}), 400, "invalid_client_metadata", "jwks_uri"},
		{"jwks not a set", backend(m{"jwks": m{"kty": "EC"}}), 400, "invalid_client_metadata", "JWK Set"},
		{"jwks key without kid", backend(m{"jwks": jwksOf(t, &e.ecKey.PublicKey, "")}), 400, "invalid_client_metadata", "no kid"},
		{"jwks private key", backend(m{"jwks": jwksOf(t, e.ecKey, "k1")}), 400, "invalid_client_metadata", "private"},
		{"jwks weak rsa key", backend(m{"jwks": m{"keys": []m{{"kty": "RSA", "kid": "k1", "e": "AQAB", "n": base64.RawURLEncoding.EncodeToString(weak.N.Bytes())}}}}), 400, "invalid_client_metadata", "2048"},
		{"jwks P-521 key", backend(m{"jwks": jwksOf(t, &p521.PublicKey, "k1")}), 400, "invalid_client_metadata", "P-384"},
		{"jwks symmetric key", backend(m{"jwks": m{"keys": []m{{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}}}}), 400, "invalid_client_metadata", "symmetric"},
		{"client_credentials with a secret", backend(m{"token_endpoint_auth_method": "client_secret_basic", "jwks": nil}), 400, "invalid_client_metadata", "private_key_jwt"},
		{"client_credentials without system scope", backend(m{"scope": ""}), 400, "invalid_client_metadata", "system/"},
		{"user scope for a backend client", backend(m{"scope": "system/*.rs user/*.rs"}), 400, "invalid_client_metadata", "system/ scopes only"},
		{"system scope for a web app", web(m{"scope": "openid system/*.rs"}), 400, "invalid_client_metadata", "client_credentials"},
		{"unknown scope", web(m{"scope": "openid admin"}), 400, "invalid_client_metadata", "admin"},
		{"software statement", web(m{"software_statement": "eyJhbGciOiJub25lIn0.e30."}), 400, "invalid_software_statement", "not supported"},
		{"wrong JSON type", `{"redirect_uris": "https://app.example.org/cb"}`, 400, "invalid_client_metadata", "redirect_uris"},
		{"not an object", `[1]`, 400, "invalid_client_metadata", "JSON object"},
		{"two values", `{} {}`, 400, "invalid_client_metadata", "more than one"},
		{"control character in name", web(m{"client_name": "a\u0007b"}), 400, "invalid_client_metadata", "client_name"},
		{"body too large", `{"client_name":"` + strings.Repeat("a", 70<<10) + `"}`, 413, "invalid_client_metadata", "exceeds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.register(tc.body)
			if r.status != tc.status || r.str("error") != tc.code || !strings.Contains(r.str("error_description"), tc.desc) {
				t.Fatalf("got %d %v, want %d %s (%q)", r.status, r.body, tc.status, tc.code, tc.desc)
			}
			if r.header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q", r.header.Get("Cache-Control"))
			}
		})
	}
	// Not JSON at all.
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/register", strings.NewReader("redirect_uris=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+regIAT)
	if r := e.do(req); r.status != 400 || r.str("error") != "invalid_client_metadata" {
		t.Errorf("form body: %d %v", r.status, r.body)
	}
	// Nothing was stored by any of them.
	if list, err := e.db.ListClients(context.Background()); err != nil || len(list) != 1 {
		t.Errorf("stored clients after refused registrations: %d %v", len(list), err)
	}
}

func TestRegisterInitialAccessToken(t *testing.T) {
	e := newRegEnv(t, false)
	body := map[string]any{"redirect_uris": []string{tkRedirect}, "token_endpoint_auth_method": "none"}
	r := e.sendJSON(http.MethodPost, e.issuer+"/register", "", body)
	if r.status != 401 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("without a token: %d %v %q", r.status, r.body, r.header.Get("WWW-Authenticate"))
	}
	r = e.sendJSON(http.MethodPost, e.issuer+"/register", regIAT+"x", body)
	if r.status != 401 || r.str("error") != "invalid_token" || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("with a wrong token: %d %v %q", r.status, r.body, r.header.Get("WWW-Authenticate"))
	}
	if r := e.sendJSON(http.MethodGet, e.issuer+"/register", regIAT, nil); r.status != 405 {
		t.Errorf("GET /register: %d", r.status)
	}
	if r := e.register(body); r.status != 201 {
		t.Fatalf("with the token: %d %v", r.status, r.body)
	}
}

func TestRegisterOpen(t *testing.T) {
	e := newRegEnv(t, true)
	before, err := e.db.ListClients(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r := e.sendJSON(http.MethodPost, e.issuer+"/register", "", map[string]any{"redirect_uris": []string{tkRedirect}, "token_endpoint_auth_method": "none"})
	if r.status != 201 || r.str("client_id") == "" {
		t.Fatalf("open registration: %d %v", r.status, r.body)
	}
	// Open registration never creates a backend client.
	r = e.sendJSON(http.MethodPost, e.issuer+"/register", "", map[string]any{
		"grant_types": []string{"client_credentials"}, "token_endpoint_auth_method": "private_key_jwt",
		"jwks": e.publicJWKS(), "scope": "system/*.rs",
	})
	if r.status != 400 || r.str("error") != "invalid_client_metadata" || !strings.Contains(r.str("error_description"), "initial access token") {
		t.Fatalf("open client_credentials registration: %d %v", r.status, r.body)
	}
	// One address may register 20 clients per 15 minutes; refused
	// requests do not count.
	for i := 2; i <= 20; i++ {
		if r := e.sendJSON(http.MethodPost, e.issuer+"/register", "", map[string]any{"redirect_uris": []string{tkRedirect}, "token_endpoint_auth_method": "none"}); r.status != 201 {
			t.Fatalf("open registration %d: %d %v", i, r.status, r.body)
		}
	}
	r = e.sendJSON(http.MethodPost, e.issuer+"/register", "", map[string]any{"redirect_uris": []string{tkRedirect}, "token_endpoint_auth_method": "none"})
	if r.status != http.StatusTooManyRequests || r.str("error") != "invalid_request" {
		t.Fatalf("21st open registration: %d %v", r.status, r.body)
	}
	clients, err := e.db.ListClients(context.Background())
	if err != nil || len(clients)-len(before) != 20 {
		t.Fatalf("%d clients registered, want 20 (%v)", len(clients)-len(before), err)
	}
}

// TestRegisterWithTokenIsNotRateLimited checks that registrations with the
// initial access token are not counted: the operator trusts its holder.
func TestRegisterWithTokenIsNotRateLimited(t *testing.T) {
	e := newRegEnv(t, false)
	for i := range 25 {
		if r := e.register(map[string]any{"redirect_uris": []string{tkRedirect}, "token_endpoint_auth_method": "none"}); r.status != 201 {
			t.Fatalf("registration %d: %d %v", i, r.status, r.body)
		}
	}
}

func TestRegisterDisabled(t *testing.T) {
	e := newTokenEnv(t)
	r := e.sendJSON(http.MethodPost, e.issuer+"/register", "", map[string]any{"redirect_uris": []string{tkRedirect}})
	if r.status != 404 {
		t.Fatalf("registration while off: %d %v", r.status, r.body)
	}
}

func TestRegisteredClientsWork(t *testing.T) {
	e := newRegEnv(t, false)

	// A symmetric client: the secret is issued once, and works.
	r := e.register(map[string]any{"redirect_uris": []string{tkRedirect}, "client_name": "Sym App", "scope": "openid fhirUser launch/patient patient/*.rs offline_access", "grant_types": []string{"authorization_code", "refresh_token"}})
	if r.status != 201 {
		t.Fatalf("register: %d %v", r.status, r.body)
	}
	id, secret := r.str("client_id"), r.str("client_secret")
	if id == "" || secret == "" || r.body["client_secret_expires_at"] != float64(0) || r.str("registration_access_token") == "" ||
		r.str("registration_client_uri") != e.issuer+"/register/"+id || r.str("token_endpoint_auth_method") != "client_secret_basic" ||
		r.body["client_id_issued_at"] == nil || r.str("client_name") != "Sym App" {
		t.Fatalf("registration response: %v", r.body)
	}
	stored, err := e.db.GetClient(context.Background(), id)
	if err != nil || !stored.Dynamic || stored.Type != store.ClientConfidentialSymmetric || strings.Contains(stored.SecretHash, secret) ||
		stored.RegistrationTokenHash == r.str("registration_access_token") {
		t.Fatalf("stored client: %+v %v", stored, err)
	}
	c := e.seedCode(codeOptions{client: id})
	form := codeForm(c, id)
	form.Del("client_id")
	if tok := e.post(form, &[2]string{id, secret}); tok.status != 200 || tok.str("refresh_token") == "" {
		t.Fatalf("code exchange by the registered client: %d %v", tok.status, tok.body)
	}

	// A backend client with inline keys gets a client_credentials token.
	r = e.register(map[string]any{"grant_types": []string{"client_credentials"}, "token_endpoint_auth_method": "private_key_jwt", "jwks": e.publicJWKS(), "scope": "system/Observation.rs"})
	if r.status != 201 || r.str("client_secret") != "" || r.body["response_types"] != nil || r.body["jwks"] == nil {
		t.Fatalf("register backend: %d %v", r.status, r.body)
	}
	backendID := r.str("client_id")
	tok := e.post(url.Values{
		"grant_type":            {"client_credentials"},
		"scope":                 {"system/Observation.rs"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {e.assertion("ES384", "", assertionClaims{iss: backendID})},
	}, nil)
	if tok.status != 200 || tok.str("access_token") == "" {
		t.Fatalf("client_credentials of the registered backend client: %d %v", tok.status, tok.body)
	}
}

func TestRegistrationLifecycle(t *testing.T) {
	e := newRegEnv(t, false)
	r := e.register(map[string]any{"redirect_uris": []string{tkRedirect}, "token_endpoint_auth_method": "none", "client_name": "Before",
		"grant_types": []string{"authorization_code", "refresh_token"}, "launch_uri": "https://app.example.org/launch"})
	if r.status != 201 {
		t.Fatalf("register: %d %v", r.status, r.body)
	}
	id, uri, rat := r.str("client_id"), r.str("registration_client_uri"), r.str("registration_access_token")

	// Read: the answer carries a new registration access token; the old
	// one stops working.
	got := e.sendJSON(http.MethodGet, uri, rat, nil)
	if got.status != 200 || got.str("client_id") != id || got.str("client_name") != "Before" || got.str("launch_uri") != "https://app.example.org/launch" {
		t.Fatalf("read: %d %v", got.status, got.body)
	}
	next := got.str("registration_access_token")
	if next == "" || next == rat {
		t.Fatalf("read did not rotate the registration access token")
	}
	if again := e.sendJSON(http.MethodGet, uri, rat, nil); again.status != 401 || again.str("error") != "invalid_token" {
		t.Fatalf("read with the replaced token: %d %v", again.status, again.body)
	}
	rat = next

	// Tokens issued before the deletion.
	code := e.exchange(e.seedCode(codeOptions{client: id}))
	access, refreshTok := code.str("access_token"), code.str("refresh_token")
	if u := e.userinfo(http.MethodGet, access); u.status != 200 {
		t.Fatalf("userinfo before deletion: %d %v", u.status, u.body)
	}

	// Update: client_id must match; a secret that is not the client's is
	// refused; a change to private_key_jwt needs keys.
	update := map[string]any{"client_id": id, "redirect_uris": []string{tkRedirect, "https://app.example.org/other"}, "token_endpoint_auth_method": "none",
		"client_name": "After", "grant_types": []string{"authorization_code", "refresh_token"}}
	for name, tc := range map[string]struct {
		change map[string]any
		code   string
	}{
		"other client_id": {map[string]any{"client_id": "someone-else"}, "invalid_client_metadata"},
		"no client_id":    {map[string]any{"client_id": ""}, "invalid_client_metadata"},
		"wrong secret":    {map[string]any{"client_secret": "guess"}, "invalid_client_metadata"},
		"bad redirect":    {map[string]any{"redirect_uris": []string{"http://evil.example/cb"}}, "invalid_redirect_uri"},
	} {
		body := map[string]any{}
		for k, v := range update {
			body[k] = v
		}
		for k, v := range tc.change {
			body[k] = v
		}
		if r := e.sendJSON(http.MethodPut, uri, rat, body); r.status != 400 || r.str("error") != tc.code {
			t.Errorf("update with %s: %d %v", name, r.status, r.body)
		}
	}
	up := e.sendJSON(http.MethodPut, uri, rat, update)
	if up.status != 200 || up.str("client_name") != "After" || len(up.body["redirect_uris"].([]any)) != 2 || up.body["launch_uri"] != nil {
		t.Fatalf("update: %d %v", up.status, up.body)
	}
	rat = up.str("registration_access_token")
	// Becoming symmetric issues a secret, once.
	update["token_endpoint_auth_method"] = "client_secret_post"
	up = e.sendJSON(http.MethodPut, uri, rat, update)
	if up.status != 200 || up.str("client_secret") == "" || up.str("token_endpoint_auth_method") != "client_secret_post" {
		t.Fatalf("update to a symmetric client: %d %v", up.status, up.body)
	}
	// The registered method is kept: a read reports it (and, like every
	// read, hands out a new registration access token).
	rd := e.sendJSON(http.MethodGet, uri, up.str("registration_access_token"), nil)
	if rd.str("token_endpoint_auth_method") != "client_secret_post" {
		t.Fatalf("read after the update: %d %v", rd.status, rd.body)
	}
	rat = rd.str("registration_access_token")
	update["client_secret"] = up.str("client_secret")
	up = e.sendJSON(http.MethodPut, uri, rat, update)
	if up.status != 200 || up.str("client_secret") != "" {
		t.Fatalf("update keeping the secret: %d %v", up.status, up.body)
	}
	rat = up.str("registration_access_token")

	// Configured clients are not managed here, whatever the token.
	if r := e.sendJSON(http.MethodGet, e.issuer+"/register/"+tkPublic, rat, nil); r.status != 401 {
		t.Errorf("read of a configured client: %d %v", r.status, r.body)
	}
	if r := e.sendJSON(http.MethodDelete, e.issuer+"/register/"+tkDynamic, rat, nil); r.status != 401 {
		t.Errorf("delete of another client: %d %v", r.status, r.body)
	}
	if r := e.sendJSON(http.MethodPatch, uri, rat, nil); r.status != 405 {
		t.Errorf("PATCH: %d", r.status)
	}

	// Delete: 204, then the client is gone and its tokens are revoked.
	del := e.sendJSON(http.MethodDelete, uri, rat, nil)
	if del.status != 204 {
		t.Fatalf("delete: %d %v", del.status, del.body)
	}
	if r := e.sendJSON(http.MethodGet, uri, rat, nil); r.status != 401 {
		t.Errorf("read after delete: %d %v", r.status, r.body)
	}
	if _, err := e.db.GetClient(context.Background(), id); err == nil {
		t.Errorf("the deleted client is still stored")
	}
	if u := e.userinfo(http.MethodGet, access); u.status != 401 {
		t.Errorf("userinfo with a deleted client's access token: %d %v", u.status, u.body)
	}
	if rev, err := e.db.Revocation(context.Background(), store.RevokedClient, id); err != nil || rev.Until.Before(time.Now().Add(24*time.Hour)) {
		t.Errorf("client revocation: %+v %v", rev, err)
	}
	if _, err := e.db.GetRefresh(context.Background(), refreshTok); err == nil {
		t.Errorf("the deleted client's refresh token is still live")
	}
}

func TestRevokedClientTokens(t *testing.T) {
	e := newTokenEnv(t)
	ctx := context.Background()
	before := e.exchange(e.seedCode(codeOptions{}))
	if err := e.db.Revoke(ctx, store.RevokedClient, tkPublic, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Tokens issued at or before the revocation fail.
	if u := e.userinfo(http.MethodGet, before.str("access_token")); u.status != 401 {
		t.Errorf("userinfo with a revoked client's token: %d %v", u.status, u.body)
	}
	expectTokenError(t, e.refresh(before.str("refresh_token"), url.Values{"client_id": {tkPublic}}, nil), 400, "invalid_grant")

	// Another client's tokens are untouched; a revocation recorded
	// before a token was issued does not cover it.
	e.clock.Advance(-time.Hour)
	if err := e.db.Revoke(ctx, store.RevokedClient, tkCodeOnly, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	after := e.exchange(e.seedCode(codeOptions{client: tkCodeOnly, scope: "openid fhirUser"}))
	if u := e.userinfo(http.MethodGet, after.str("access_token")); u.status != 200 {
		t.Errorf("userinfo with a token issued after its client's revocation: %d %v", u.status, u.body)
	}
}

// BenchmarkRegister is one registration of a public client through HTTP:
// validation, the hashes and one synced store write.
func BenchmarkRegister(b *testing.B) {
	db, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ring, err := keys.New(context.Background(), keys.Options{Store: db, Retain: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	h := &tokenHandler{}
	srv := httptest.NewServer(h)
	defer srv.Close()
	iss, _ := url.Parse(srv.URL + "/auth")
	fhir, _ := url.Parse(srv.URL + "/fhir")
	s, err := handlers.New(handlers.Config{Issuer: iss, FHIRBase: fhir, Store: db, Keys: ring,
		Registration: register.Settings{Enabled: true, InitialAccessTokenHash: store.HashSecret(regIAT)}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	h.s.Store(s)
	raw, _ := json.Marshal(map[string]any{"redirect_uris": []string{tkRedirect}, "token_endpoint_auth_method": "none"})
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodPost, iss.String()+"/register", bytes.NewReader(raw))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+regIAT)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 201 {
			b.Fatal(resp.Status)
		}
	}
}

// TestRegisteredJWKSURIMustBePublic registers a backend client whose
// jwks_uri is on loopback: its keys are never fetched (no request reaches
// the server) and its assertions fail, unless the operator allows private
// addresses for registered clients.
func TestRegisteredJWKSURIMustBePublic(t *testing.T) {
	var hits atomic.Int32
	for _, allow := range []bool{false, true} {
		e := newTokenEnv(t)
		keys := e.publicJWKS()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			hits.Add(1)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(keys)
		}))
		defer srv.Close()
		e.cfg.Registration = register.Settings{Enabled: true, InitialAccessTokenHash: store.HashSecret(regIAT), AllowPrivateJWKSURI: allow}
		s, err := handlers.New(e.cfg)
		if err != nil {
			t.Fatal(err)
		}
		_ = e.handler.s.Swap(s).Close()
		r := e.register(map[string]any{"grant_types": []string{"client_credentials"}, "token_endpoint_auth_method": "private_key_jwt",
			"jwks_uri": srv.URL + "/jwks", "scope": "system/Observation.rs"})
		if r.status != 201 {
			t.Fatalf("register: %d %v", r.status, r.body)
		}
		hits.Store(0)
		tok := e.post(url.Values{
			"grant_type":            {"client_credentials"},
			"scope":                 {"system/Observation.rs"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {e.assertion("ES384", "ec1", assertionClaims{iss: r.str("client_id")})},
		}, nil)
		if allow {
			if tok.status != 200 || hits.Load() != 1 {
				t.Fatalf("allowed private jwks_uri: %d %v, %d fetches", tok.status, tok.body, hits.Load())
			}
			continue
		}
		expectTokenError(t, tok, 401, "invalid_client")
		if d := tok.str("error_description"); !strings.Contains(d, "not a public internet address") || hits.Load() != 0 {
			t.Fatalf("loopback jwks_uri: %q, %d fetches", d, hits.Load())
		}
	}
}
