package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/smartcaddy/smartauth/store"
)

// verifyIDToken checks an id_token with go-oidc against the server's JWKS.
func (e *tokenEnv) verifyIDToken(raw, clientID string) *oidc.IDToken {
	e.t.Helper()
	ctx := context.Background()
	v := oidc.NewVerifier(e.issuer, oidc.NewRemoteKeySet(ctx, e.issuer+"/jwks"), &oidc.Config{ClientID: clientID})
	idt, err := v.Verify(ctx, raw)
	if err != nil {
		e.t.Fatalf("id_token: %v", err)
	}
	return idt
}

type idClaims struct {
	FHIRUser string `json:"fhirUser"`
	Name     string `json:"name"`
	Nonce    string `json:"nonce"`
	AuthTime int64  `json:"auth_time"`
}

func TestTokenPublicClientCodeExchange(t *testing.T) {
	e := newTokenEnv(t)
	banner := true
	lc := store.LaunchContext{
		Patient:           "pat-1",
		Encounter:         "enc-1",
		FHIRContext:       []json.RawMessage{json.RawMessage(`{"reference":"DiagnosticReport/7"}`)},
		NeedPatientBanner: &banner,
		SmartStyleURL:     "https://ehr.example.org/style-v1.json",
		Intent:            "reconcile-medications",
		Tenant:            "org-1",
	}
	c := e.seedCode(codeOptions{nonce: "n-0S6_WzA2Mj", context: lc})
	cfg := &oauth2.Config{
		ClientID:    tkPublic,
		RedirectURL: tkRedirect,
		Endpoint:    oauth2.Endpoint{TokenURL: e.tokenURL, AuthStyle: oauth2.AuthStyleInParams},
	}
	tok, err := cfg.Exchange(context.Background(), c.code, oauth2.VerifierOption(c.verifier))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.EqualFold(tok.TokenType, "Bearer") || tok.RefreshToken == "" || tok.Expiry.IsZero() {
		t.Fatalf("token: %+v", tok)
	}
	if got := tok.Extra("scope"); got != c.rec.Scope {
		t.Errorf("scope %v, want %q", got, c.rec.Scope)
	}
	if exp := time.Until(tok.Expiry); exp < 9*time.Minute || exp > 11*time.Minute {
		t.Errorf("expires in %v, want 10m", exp)
	}
	for k, want := range map[string]any{
		"patient": "pat-1", "encounter": "enc-1", "need_patient_banner": true,
		"smart_style_url": "https://ehr.example.org/style-v1.json", "intent": "reconcile-medications", "tenant": "org-1",
	} {
		if got := tok.Extra(k); got != want {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	fc, _ := tok.Extra("fhirContext").([]any)
	if len(fc) != 1 || fc[0].(map[string]any)["reference"] != "DiagnosticReport/7" {
		t.Errorf("fhirContext = %v", tok.Extra("fhirContext"))
	}

	// The access token: ES256, at+jwt, with the SMART claims.
	at := e.verifyAccessToken(tok.AccessToken)
	if sub, _ := at.Subject(); sub != tkUser {
		t.Errorf("sub %q", sub)
	}
	for k, want := range map[string]string{
		"client_id": tkPublic, "scope": c.rec.Scope, "patient": "pat-1", "encounter": "enc-1",
		"fhirUser": e.fhirBase + "/" + tkUserFHIR, "family_id": c.rec.FamilyID,
	} {
		if got := claimString(t, at, k); got != want {
			t.Errorf("access token %s = %q, want %q", k, got, want)
		}
	}
	if jti, _ := at.JwtID(); len(jti) < 40 {
		t.Errorf("jti %q", jti)
	}

	// The id_token, checked by an OpenID Connect client library.
	raw, _ := tok.Extra("id_token").(string)
	idt := e.verifyIDToken(raw, tkPublic)
	var claims idClaims
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if idt.Subject != tkUser || claims.FHIRUser != e.fhirBase+"/"+tkUserFHIR || claims.Name != tkUserName ||
		claims.Nonce != "n-0S6_WzA2Mj" || claims.AuthTime != c.rec.AuthTime.Unix() {
		t.Errorf("id_token: sub %q, claims %+v", idt.Subject, claims)
	}
}

func TestTokenConfidentialClientBasicAndPost(t *testing.T) {
	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		e := newTokenEnv(t)
		c := e.seedCode(codeOptions{client: tkConfidential, scope: "openid fhirUser patient/*.rs"})
		cfg := &oauth2.Config{
			ClientID:     tkConfidential,
			ClientSecret: tkSecret,
			RedirectURL:  tkRedirect,
			Endpoint:     oauth2.Endpoint{TokenURL: e.tokenURL, AuthStyle: style},
		}
		tok, err := cfg.Exchange(context.Background(), c.code, oauth2.VerifierOption(c.verifier))
		if err != nil {
			t.Fatalf("auth style %v: %v", style, err)
		}
		if tok.RefreshToken != "" {
			t.Errorf("refresh token without offline_access or online_access")
		}
		raw, _ := tok.Extra("id_token").(string)
		idt := e.verifyIDToken(raw, tkConfidential)
		var claims idClaims
		if err := idt.Claims(&claims); err != nil {
			t.Fatal(err)
		}
		if claims.Name != "" || claims.Nonce != "" || claims.FHIRUser == "" {
			t.Errorf("id_token claims %+v: want fhirUser, no name without profile, no nonce", claims)
		}
	}
}

func TestTokenNoIDTokenWithoutOpenID(t *testing.T) {
	e := newTokenEnv(t)
	c := e.seedCode(codeOptions{scope: "launch/patient patient/*.rs"})
	r := e.exchange(c)
	if _, ok := r.body["id_token"]; ok {
		t.Error("id_token without openid")
	}
	if _, ok := r.body["refresh_token"]; ok {
		t.Error("refresh_token without offline_access")
	}
	if r.str("scope") != "launch/patient patient/*.rs" || r.header.Get("Cache-Control") != "no-store" || r.header.Get("Pragma") != "no-cache" {
		t.Errorf("response %v, headers %v", r.body, r.header)
	}
}

func TestTokenCodeRefused(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(f url.Values, c seededCode)
		status int
		code   string
	}{
		{"wrong verifier", func(f url.Values, _ seededCode) { f.Set("code_verifier", oauth2.GenerateVerifier()) }, 400, "invalid_grant"},
		{"missing verifier", func(f url.Values, _ seededCode) { f.Del("code_verifier") }, 400, "invalid_grant"},
		{"short verifier", func(f url.Values, _ seededCode) { f.Set("code_verifier", strings.Repeat("a", 42)) }, 400, "invalid_grant"},
		{"verifier with bad characters", func(f url.Values, c seededCode) { f.Set("code_verifier", c.verifier[:42]+"!") }, 400, "invalid_grant"},
		{"wrong redirect_uri", func(f url.Values, _ seededCode) { f.Set("redirect_uri", tkRedirect+"/") }, 400, "invalid_grant"},
		{"missing redirect_uri", func(f url.Values, _ seededCode) { f.Del("redirect_uri") }, 400, "invalid_request"},
		{"another client", func(f url.Values, _ seededCode) { f.Set("client_id", tkDynamic) }, 400, "invalid_grant"},
		{"unknown code", func(f url.Values, _ seededCode) { f.Set("code", store.NewSecret()) }, 400, "invalid_grant"},
		{"missing code", func(f url.Values, _ seededCode) { f.Del("code") }, 400, "invalid_request"},
		{"unknown client", func(f url.Values, _ seededCode) { f.Set("client_id", "nobody") }, 401, "invalid_client"},
		{"no client", func(f url.Values, _ seededCode) { f.Del("client_id") }, 401, "invalid_client"},
	}
	e := newTokenEnv(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.seedCode(codeOptions{})
			f := codeForm(c, tkPublic)
			tt.edit(f, c)
			expectTokenError(t, e.post(f, nil), tt.status, tt.code)
		})
	}
	// A code refused for a bad verifier is used up: the right verifier
	// cannot be tried next.
	c := e.seedCode(codeOptions{})
	f := codeForm(c, tkPublic)
	f.Set("code_verifier", oauth2.GenerateVerifier())
	expectTokenError(t, e.post(f, nil), 400, "invalid_grant")
	expectTokenError(t, e.post(codeForm(c, tkPublic), nil), 400, "invalid_grant")
}

func TestTokenCodeReplayRevokesFamily(t *testing.T) {
	e := newTokenEnv(t)
	c := e.seedCode(codeOptions{})
	first := e.exchange(c)
	rt, at := first.str("refresh_token"), first.str("access_token")
	if rt == "" || at == "" {
		t.Fatalf("first exchange: %v", first.body)
	}
	if got := e.userinfo(http.MethodGet, at); got.status != http.StatusOK {
		t.Fatalf("userinfo before the replay: %d %v", got.status, got.body)
	}
	expectTokenError(t, e.post(codeForm(c, tkPublic), nil), 400, "invalid_grant")

	revoked, err := e.db.IsRevoked(context.Background(), store.RevokedFamily, c.rec.FamilyID)
	if err != nil || !revoked {
		t.Fatalf("family revoked = %v, %v", revoked, err)
	}
	expectTokenError(t, e.refresh(rt, url.Values{"client_id": {tkPublic}}, nil), 400, "invalid_grant")
	if got := e.userinfo(http.MethodGet, at); got.status != http.StatusUnauthorized {
		t.Errorf("userinfo with an access token of a revoked family: %d", got.status)
	}
}

func TestTokenExpiredCode(t *testing.T) {
	e := newTokenEnv(t)
	c := e.seedCode(codeOptions{})
	e.clock.Advance(2 * time.Minute)
	expectTokenError(t, e.post(codeForm(c, tkPublic), nil), 400, "invalid_grant")
}

func TestTokenTransportRules(t *testing.T) {
	e := newTokenEnv(t)

	t.Run("unsupported grant", func(t *testing.T) {
		expectTokenError(t, e.post(url.Values{"grant_type": {"password"}, "client_id": {tkPublic}}, nil), 400, "unsupported_grant_type")
	})
	t.Run("client_credentials without client authentication", func(t *testing.T) {
		expectTokenError(t, e.post(url.Values{"grant_type": {"client_credentials"}}, nil), 401, "invalid_client")
	})
	t.Run("missing grant_type", func(t *testing.T) {
		expectTokenError(t, e.post(url.Values{"client_id": {tkPublic}}, nil), 400, "invalid_request")
	})
	t.Run("repeated parameter", func(t *testing.T) {
		c := e.seedCode(codeOptions{})
		f := codeForm(c, tkPublic)
		f.Add("redirect_uri", "https://evil.example/cb")
		expectTokenError(t, e.post(f, nil), 400, "invalid_request")
		// The code was not touched by the refused request.
		e.exchange(c)
	})
	t.Run("JSON body", func(t *testing.T) {
		c := e.seedCode(codeOptions{})
		b, _ := json.Marshal(map[string]string{"grant_type": "authorization_code", "code": c.code})
		req, _ := http.NewRequest(http.MethodPost, e.tokenURL, strings.NewReader(string(b)))
		req.Header.Set("Content-Type", "application/json")
		expectTokenError(t, e.do(req), 400, "invalid_request")
	})
	t.Run("no content type", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.tokenURL, strings.NewReader("grant_type=authorization_code"))
		expectTokenError(t, e.do(req), 400, "invalid_request")
	})
	t.Run("form with charset", func(t *testing.T) {
		c := e.seedCode(codeOptions{})
		req, _ := http.NewRequest(http.MethodPost, e.tokenURL, strings.NewReader(codeForm(c, tkPublic).Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
		if r := e.do(req); r.status != http.StatusOK {
			t.Fatalf("%d %v", r.status, r.body)
		}
	})
	t.Run("GET", func(t *testing.T) {
		c := e.seedCode(codeOptions{})
		req, _ := http.NewRequest(http.MethodGet, e.tokenURL+"?"+codeForm(c, tkPublic).Encode(), nil)
		r := e.do(req)
		expectTokenError(t, r, http.StatusMethodNotAllowed, "invalid_request")
		if !strings.Contains(r.header.Get("Allow"), "POST") {
			t.Errorf("Allow %q", r.header.Get("Allow"))
		}
	})
	t.Run("body too large", func(t *testing.T) {
		f := url.Values{"grant_type": {"authorization_code"}, "code": {strings.Repeat("x", 70<<10)}}
		r := e.post(f, nil)
		if r.status < 400 || r.str("error") != "invalid_request" {
			t.Fatalf("%d %v", r.status, r.body)
		}
	})
	t.Run("preflight", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodOptions, e.tokenURL, nil)
		req.Header.Set("Origin", "https://app.example.org")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		r := e.do(req)
		h := r.header
		if r.status != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "*" ||
			!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
			!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "authorization") ||
			h.Get("Access-Control-Allow-Credentials") != "" {
			t.Fatalf("preflight: %d %v", r.status, h)
		}
	})
}

func TestTokenRefreshRotation(t *testing.T) {
	e := newTokenEnv(t)
	c := e.seedCode(codeOptions{context: store.LaunchContext{Patient: "pat-1"}})
	rt1 := e.exchange(c).str("refresh_token")

	r := e.refresh(rt1, url.Values{"client_id": {tkPublic}}, nil)
	if r.status != http.StatusOK {
		t.Fatalf("refresh: %d %v", r.status, r.body)
	}
	rt2 := r.str("refresh_token")
	if rt2 == "" || rt2 == rt1 || r.str("scope") != c.rec.Scope || r.str("patient") != "pat-1" || r.body["expires_in"] == nil {
		t.Fatalf("refresh response %v", r.body)
	}
	at := e.verifyAccessToken(r.str("access_token"))
	if claimString(t, at, "family_id") != c.rec.FamilyID || claimString(t, at, "patient") != "pat-1" {
		t.Errorf("refreshed access token claims: %v", at)
	}
	// A new id_token with the same identity; no nonce on refresh.
	idt := e.verifyIDToken(r.str("id_token"), tkPublic)
	var claims idClaims
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if idt.Subject != tkUser || claims.FHIRUser == "" || claims.AuthTime != c.rec.AuthTime.Unix() {
		t.Errorf("refreshed id_token %+v", claims)
	}

	// The successor rotates again.
	r = e.refresh(rt2, url.Values{"client_id": {tkPublic}}, nil)
	if r.status != http.StatusOK {
		t.Fatalf("second refresh: %d %v", r.status, r.body)
	}
	rt3 := r.str("refresh_token")
	at3 := r.str("access_token")

	// Reusing a rotated token revokes the whole family: the newest
	// refresh token and the access tokens die too.
	beforeReuse := time.Now()
	expectTokenError(t, e.refresh(rt1, url.Values{"client_id": {tkPublic}}, nil), 400, "invalid_grant")
	revoked, err := e.db.IsRevoked(context.Background(), store.RevokedFamily, c.rec.FamilyID)
	if err != nil || !revoked {
		t.Fatalf("family revoked = %v, %v", revoked, err)
	}
	expectTokenError(t, e.refresh(rt3, url.Values{"client_id": {tkPublic}}, nil), 400, "invalid_grant")
	if got := e.userinfo(http.MethodGet, at3); got.status != http.StatusUnauthorized {
		t.Errorf("userinfo with an access token of a revoked family: %d", got.status)
	}
	// The revocation outlasts every token of the family.
	revs, err := e.db.RevokedSince(context.Background(), time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var until time.Time
	for _, rev := range revs {
		if rev.Kind == store.RevokedFamily && rev.ID == c.rec.FamilyID && rev.Until.After(until) {
			until = rev.Until
		}
	}
	// At least the refresh lifetime from the reuse, so that it covers the
	// newest member of the chain (the store alone revokes only until the
	// reused token's own expiry).
	if until.Before(beforeReuse.Add(24 * time.Hour)) {
		t.Errorf("family revoked until %v, want at least %v", until, beforeReuse.Add(24*time.Hour))
	}
}

func TestTokenRefreshScope(t *testing.T) {
	e := newTokenEnv(t)
	c := e.seedCode(codeOptions{scope: "openid fhirUser launch/patient patient/Observation.rs patient/Condition.rs offline_access"})
	rt := e.exchange(c).str("refresh_token")

	// Escalation is refused and leaves the token usable.
	for _, scope := range []string{
		"patient/Observation.rs patient/MedicationRequest.rs",
		"patient/Observation.cruds",
		"user/Observation.rs",
		"openid profile",
	} {
		expectTokenError(t, e.refresh(rt, url.Values{"client_id": {tkPublic}, "scope": {scope}}, nil), 400, "invalid_scope")
	}
	// A subset is granted to the access token.
	r := e.refresh(rt, url.Values{"client_id": {tkPublic}, "scope": {"patient/Observation.rs offline_access"}}, nil)
	if r.status != http.StatusOK || r.str("scope") != "patient/Observation.rs offline_access" {
		t.Fatalf("subset refresh: %d %v", r.status, r.body)
	}
	if _, ok := r.body["id_token"]; ok {
		t.Error("id_token for a refresh narrowed to no openid")
	}
	if got := claimString(t, e.verifyAccessToken(r.str("access_token")), "scope"); got != "patient/Observation.rs offline_access" {
		t.Errorf("narrowed access token scope %q", got)
	}
	// The refresh token keeps the original grant.
	r = e.refresh(r.str("refresh_token"), url.Values{"client_id": {tkPublic}}, nil)
	if r.status != http.StatusOK || r.str("scope") != c.rec.Scope {
		t.Fatalf("refresh after a narrowed one: %d %v", r.status, r.body)
	}
}

func TestTokenRefreshClientBinding(t *testing.T) {
	e := newTokenEnv(t)
	pub := e.exchange(e.seedCode(codeOptions{})).str("refresh_token")

	// A public client may omit client_id.
	r := e.refresh(pub, nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("public refresh without client_id: %d %v", r.status, r.body)
	}
	pub = r.str("refresh_token")
	// Another client cannot use it, and the refusal does not consume it.
	expectTokenError(t, e.refresh(pub, url.Values{"client_id": {tkDynamic}}, nil), 400, "invalid_grant")
	expectTokenError(t, e.refresh(pub, nil, &[2]string{tkConfidential, tkSecret}), 400, "invalid_grant")
	if r := e.refresh(pub, url.Values{"client_id": {tkPublic}}, nil); r.status != http.StatusOK {
		t.Fatalf("public refresh after refused attempts: %d %v", r.status, r.body)
	}

	// A confidential client's token needs the client's authentication.
	c := e.seedCode(codeOptions{client: tkConfidential})
	f := codeForm(c, tkConfidential)
	f.Del("client_id")
	r = e.post(f, &[2]string{tkConfidential, tkSecret})
	if r.status != http.StatusOK {
		t.Fatalf("confidential exchange: %d %v", r.status, r.body)
	}
	conf := r.str("refresh_token")
	expectTokenError(t, e.refresh(conf, nil, nil), 401, "invalid_client")
	expectTokenError(t, e.refresh(conf, url.Values{"client_id": {tkConfidential}}, nil), 401, "invalid_client")
	expectTokenError(t, e.refresh(conf, nil, &[2]string{tkConfidential, "wrong"}), 401, "invalid_client")
	r = e.refresh(conf, nil, &[2]string{tkConfidential, tkSecret})
	if r.status != http.StatusOK {
		t.Fatalf("confidential refresh: %d %v", r.status, r.body)
	}
	r = e.refresh(r.str("refresh_token"), url.Values{"client_id": {tkConfidential}, "client_secret": {tkSecret}}, nil)
	if r.status != http.StatusOK {
		t.Fatalf("confidential refresh with client_secret_post: %d %v", r.status, r.body)
	}
}

func TestTokenOnlineAccessEndsWithSession(t *testing.T) {
	e := newTokenEnv(t)
	ctx := context.Background()
	sid := store.NewSecret()
	if err := e.db.SaveSession(ctx, sid, &store.Session{User: tkUser, AuthTime: time.Now()}, time.Hour); err != nil {
		t.Fatal(err)
	}
	c := e.seedCode(codeOptions{scope: "openid fhirUser patient/*.rs online_access", sessionID: sid})
	rt := e.exchange(c).str("refresh_token")
	if rt == "" {
		t.Fatal("no refresh token for online_access")
	}
	r := e.refresh(rt, nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("online refresh: %d %v", r.status, r.body)
	}
	rt = r.str("refresh_token")
	if err := e.db.DeleteSession(ctx, sid); err != nil {
		t.Fatal(err)
	}
	expectTokenError(t, e.refresh(rt, nil, nil), 400, "invalid_grant")

	// An offline token is not bound to the session.
	c = e.seedCode(codeOptions{scope: "patient/*.rs offline_access", sessionID: sid})
	if r := e.refresh(e.exchange(c).str("refresh_token"), nil, nil); r.status != http.StatusOK {
		t.Fatalf("offline refresh without a session: %d %v", r.status, r.body)
	}
}

func TestTokenRefreshSurvivesRestart(t *testing.T) {
	e := newTokenEnv(t)
	sid := store.NewSecret()
	if err := e.db.SaveSession(context.Background(), sid, &store.Session{User: tkUser}, time.Hour); err != nil {
		t.Fatal(err)
	}
	rt := e.exchange(e.seedCode(codeOptions{sessionID: sid})).str("refresh_token")
	if err := e.db.DeleteSession(context.Background(), sid); err != nil {
		t.Fatal(err)
	}
	e.restart()
	r := e.refresh(rt, nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("offline refresh after a restart: %d %v", r.status, r.body)
	}
	e.verifyAccessToken(r.str("access_token"))
	// The reused token is still detected after another restart.
	e.restart()
	expectTokenError(t, e.refresh(rt, nil, nil), 400, "invalid_grant")
}

func TestTokenGrantTypeNotAllowed(t *testing.T) {
	e := newTokenEnv(t)
	// A client without refresh_token gets no refresh token and may not
	// refresh.
	c := e.seedCode(codeOptions{client: tkCodeOnly})
	r := e.exchange(c)
	if _, ok := r.body["refresh_token"]; ok {
		t.Error("refresh token for a client without the refresh_token grant")
	}
	expectTokenError(t, e.refresh(store.NewSecret(), url.Values{"client_id": {tkCodeOnly}}, nil), 400, "unauthorized_client")

	// A backend client may not redeem codes.
	c = e.seedCode(codeOptions{client: tkBackend})
	f := assertionForm(c, e.assertionFor(tkBackend))
	expectTokenError(t, e.post(f, nil), 400, "unauthorized_client")
}

// assertionFor signs a valid ES384 assertion for a client of the test JWKS.
func (e *tokenEnv) assertionFor(client string) string {
	return e.assertion("ES384", "", assertionClaims{iss: client})
}

func TestTokenErrorsDoNotLeakDetails(t *testing.T) {
	e := newTokenEnv(t)
	r := e.post(url.Values{"grant_type": {strings.Repeat("<script>", 50)}}, nil)
	expectTokenError(t, r, 400, "unsupported_grant_type")
	if len(r.str("error_description")) > 200 {
		t.Errorf("error_description echoes the whole input: %d bytes", len(r.str("error_description")))
	}
}

// TestTokenRefreshFollowsNarrowedConfiguration checks that a refresh
// issues only what the client's and the user's current configuration
// allow, and that the refresh token keeps the original grant.
func TestTokenRefreshFollowsNarrowedConfiguration(t *testing.T) {
	e := newTokenEnv(t)
	c := e.seedCode(codeOptions{scope: "openid launch/patient patient/*.rs user/*.rs offline_access"})
	rt := e.exchange(c).str("refresh_token")
	client := e.cfg.Clients[tkPublic]
	saved := client.Scopes
	client.Scopes = []string{"openid", "launch/patient", "patient/Observation.rs", "user/*.rs", "offline_access"}
	e.cfg.Users[tkUser].Scopes = []string{"patient/*.rs"}
	e.restart()
	r := e.refresh(rt, url.Values{"client_id": {tkPublic}}, nil)
	if r.status != http.StatusOK || r.str("scope") != "openid launch/patient offline_access" {
		t.Fatalf("refresh after narrowing: %d %v", r.status, r.body)
	}
	if got := claimString(t, e.verifyAccessToken(r.str("access_token")), "scope"); got != "openid launch/patient offline_access" {
		t.Fatalf("access token scope %q", got)
	}
	client.Scopes = saved
	// user/ scopes need the operator's explicit grant (reach.go).
	e.cfg.Users[tkUser].Scopes = []string{"patient/*.rs", "user/*.rs"}
	e.restart()
	r = e.refresh(r.str("refresh_token"), url.Values{"client_id": {tkPublic}}, nil)
	if r.status != http.StatusOK || r.str("scope") != c.rec.Scope {
		t.Fatalf("refresh after widening again: %d %v", r.status, r.body)
	}
}

// TestTokenRefreshEndsWhenPatientLeavesReach: an operator who removes a
// patient from a user's list ends the grants that have that patient in
// context; the others go on.
func TestTokenRefreshEndsWhenPatientLeavesReach(t *testing.T) {
	e := newTokenEnv(t)
	e.cfg.Users[tkUser].Patients = []string{"p1", "p2"}
	e.restart()
	rt1 := e.exchange(e.seedCode(codeOptions{context: store.LaunchContext{Patient: "p1"}})).str("refresh_token")
	rt2 := e.exchange(e.seedCode(codeOptions{context: store.LaunchContext{Patient: "p2"}})).str("refresh_token")
	e.cfg.Users[tkUser].Patients = []string{"p2"}
	e.restart()
	expectTokenError(t, e.refresh(rt1, url.Values{"client_id": {tkPublic}}, nil), 400, "invalid_grant")
	if r := e.refresh(rt2, url.Values{"client_id": {tkPublic}}, nil); r.status != http.StatusOK {
		t.Fatalf("refresh with a patient still in reach: %d %v", r.status, r.body)
	}
}
