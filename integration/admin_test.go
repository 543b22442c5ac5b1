package integration

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestAdminAPIRevocations revokes one refresh-token family, every token
// of a user, then every token of a client, through Caddy's admin
// endpoint, and checks that the guard refuses the access tokens within a
// second and the token endpoint the refresh tokens.
func TestAdminAPIRevocations(t *testing.T) {
	s := startAdminSite(t)
	issuers := s.admin(t, "GET", "issuers", nil).expect(t, "issuers", 200)
	var list []map[string]any
	if json.Unmarshal([]byte(issuers.raw), &list) != nil || len(list) != 1 || list[0]["issuer"] != s.issuer() || list[0]["storage"] != "badger" {
		t.Fatalf("issuers: %s", issuers.raw)
	}
	var lags []time.Duration

	// One family: the grants list it; revoking it kills its tokens.
	access1, rt1 := appTokens(t, s.flowSite, "public-app")
	access2, rt2 := appTokens(t, s.flowSite, "public-app")
	g := s.admin(t, "GET", "users/alice/grants", nil).expect(t, "grants", 200)
	grants, _ := g.body["grants"].([]any)
	if len(grants) != 1 {
		t.Fatalf("grants: %s", g.raw)
	}
	families := strs(grants[0].(map[string]any)["family_ids"])
	if grants[0].(map[string]any)["client_id"] != "public-app" || len(families) != 2 {
		t.Fatalf("grants: %s", g.raw)
	}
	family1 := familyOf(t, access1)
	if !slices.Contains(families, family1) {
		t.Fatalf("the first token's family %s is not among the grants' %v", family1, families)
	}
	start := time.Now()
	s.admin(t, "POST", "families/"+url.PathEscape(family1)+"/revoke", nil).expect(t, "revoke a family", 200)
	lags = append(lags, guardRefusesWithin(t, s.flowSite, access1, start, revocationBound))
	if r := refresh(t, s.flowSite, rt1, "public-app"); r["error"] != "invalid_grant" {
		t.Errorf("refresh of the revoked family: %v", r)
	}
	if resp, _ := guardedRead(t, s.flowSite, access2); resp.StatusCode != 200 {
		t.Fatalf("the other family's token is refused: %d", resp.StatusCode)
	}

	// The user: the remaining family, and its refreshed tokens.
	next := refresh(t, s.flowSite, rt2, "public-app")
	access3, rt3 := str(next, "access_token"), str(next, "refresh_token")
	if access3 == "" {
		t.Fatalf("refresh: %v", next)
	}
	// An access token without a refresh token (no offline_access): no
	// family lists it; the user's revocation covers it by issue time.
	online := appToken(t, s.flowSite, "public-app", "launch/patient", "patient/*.rs")
	if online.RefreshToken != "" {
		t.Fatalf("a refresh token without offline_access")
	}
	// online is cached by the guard (its revocation log view refuses it);
	// uncached is first seen after the revocation (the full check does).
	if resp, body := guardedRead(t, s.flowSite, online.AccessToken); resp.StatusCode != 200 {
		t.Fatalf("a token without offline_access: %d %s", resp.StatusCode, body)
	}
	uncached := appToken(t, s.flowSite, "public-app", "launch/patient", "patient/*.rs")
	start = time.Now()
	u := s.admin(t, "POST", "users/alice/revoke", nil).expect(t, "revoke a user", 200)
	revoked := time.Now() // the revocation's At is no later
	if got := strs(u.body["families_revoked"]); len(got) != 1 || got[0] != familyOf(t, access2) {
		t.Errorf("families revoked: %s", u.raw)
	}
	lags = append(lags, guardRefusesWithin(t, s.flowSite, access3, start, revocationBound))
	lags = append(lags, guardRefusesWithin(t, s.flowSite, access2, start, revocationBound))
	lags = append(lags, guardRefusesWithin(t, s.flowSite, online.AccessToken, start, revocationBound))
	if resp, _ := guardedRead(t, s.flowSite, uncached.AccessToken); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a token of the user first seen after the revocation: %d, want 401", resp.StatusCode)
	}
	// A token issued after the revocation passes. iat has one-second
	// precision and a token of the revocation's own second counts as
	// revoked, so wait for the next second.
	time.Sleep(time.Until(revoked.Truncate(time.Second).Add(time.Second + 50*time.Millisecond)))
	fresh := appToken(t, s.flowSite, "public-app", "launch/patient", "patient/*.rs")
	if resp, body := guardedRead(t, s.flowSite, fresh.AccessToken); resp.StatusCode != 200 {
		t.Errorf("a token issued after the user's revocation: %d %s", resp.StatusCode, body)
	}
	if r := refresh(t, s.flowSite, rt3, "public-app"); r["error"] != "invalid_grant" {
		t.Errorf("refresh after the user's revocation: %v", r)
	}
	if g := s.admin(t, "GET", "users/alice/grants", nil).expect(t, "grants after", 200); len(g.body["grants"].([]any)) != 0 {
		t.Errorf("grants after the user's revocation: %s", g.raw)
	}

	// The client: every token issued to it so far.
	access4, rt4 := appTokens(t, s.flowSite, "public-app")
	start = time.Now()
	c := s.admin(t, "POST", "clients/public-app/revoke", nil).expect(t, "revoke a client", 200)
	if c.body["tokens_revoked"] != true {
		t.Errorf("revoke a client: %s", c.raw)
	}
	lags = append(lags, guardRefusesWithin(t, s.flowSite, access4, start, revocationBound))
	if r := refresh(t, s.flowSite, rt4, "public-app"); r["error"] != "invalid_grant" {
		t.Errorf("refresh after the client's revocation: %v", r)
	}
	t.Logf("revocation to guard refusal: %v", lags)
}

// familyOf reads the family_id claim of an access token (no
// verification: the test's own token).
func familyOf(t *testing.T, access string) string {
	t.Helper()
	parts := strings.Split(access, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", access)
	}
	var claims map[string]any
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(raw, &claims) != nil {
		t.Fatalf("claims: %v", err)
	}
	return str(claims, "family_id")
}

// TestAdminAPIRegisterRemoveRotate registers a client through the admin
// API (registration is off on the site: the operator may still), uses it,
// removes it (its tokens are refused), checks the answers to bad input,
// and rotates the signing keys (the successors are published at once).
func TestAdminAPIRegisterRemoveRotate(t *testing.T) {
	s := startAdminSite(t)
	reg := s.admin(t, "POST", "clients", map[string]any{
		"client_name": "Admin App", "redirect_uris": []string{s.redirect}, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"},
	}).expect(t, "register", 201)
	appID := str(reg.body, "client_id")
	if appID == "" || str(reg.body, "registration_access_token") == "" || reg.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("register: %s %v", reg.raw, reg.header)
	}
	listed := s.admin(t, "GET", "clients", nil).expect(t, "clients", 200)
	if !strings.Contains(listed.raw, `"client_id":"`+appID+`"`) || !strings.Contains(listed.raw, `"client_id":"public-app"`) ||
		strings.Contains(listed.raw, "hmac-sha256") || strings.Contains(listed.raw, "secret") {
		t.Fatalf("clients: %s", listed.raw)
	}
	access, rt := appTokens(t, s.flowSite, appID)
	if resp, body := guardedRead(t, s.flowSite, access); resp.StatusCode != 200 {
		t.Fatalf("guarded read with the registered app's token: %d %s", resp.StatusCode, body)
	}

	// Bad input: JSON errors with proper statuses; nothing changes.
	s.admin(t, "POST", "clients", map[string]any{"redirect_uris": []string{"http://evil.example/cb"}, "token_endpoint_auth_method": "none"}).
		expectError(t, "register with an http redirect", 400, "invalid_redirect_uri")
	s.admin(t, "POST", "clients", "not an object").expectError(t, "register with a JSON string", 400, "invalid_client_metadata")
	s.admin(t, "DELETE", "clients/public-app", nil).expectError(t, "remove a configured client", 409, "configuration")
	s.admin(t, "DELETE", "clients/no-such-client", nil).expectError(t, "remove an unknown client", 404, "no registered client")
	s.admin(t, "POST", "clients/no-such-client/revoke", nil).expectError(t, "revoke an unknown client", 404, "no client")
	s.admin(t, "POST", "clients/"+appID+"/revoke", map[string]any{"for": "1h"}).expectError(t, "revoke for too short", 400, "at least")
	s.admin(t, "POST", "clients/"+appID+"/revoke", map[string]any{"bogus": 1}).expectError(t, "revoke with an unknown field", 400, "JSON object")
	s.admin(t, "GET", "users/nobody/grants", nil).expectError(t, "grants of an unknown user", 404, "no configured user")
	s.admin(t, "GET", "clients?issuer=http://elsewhere.example/auth", nil).expectError(t, "unknown issuer", 404, "no running smart_auth handler")
	s.admin(t, "GET", "nothing-here", nil).expectError(t, "unknown route", 404, "no smart-auth admin route")
	s.admin(t, "PUT", "clients", nil).expectError(t, "wrong method", 405, "method not allowed")
	s.admin(t, "POST", "keys/rotate?alg=HS256", nil).expectError(t, "rotate an unknown alg", 400, "alg")
	if resp, _ := guardedRead(t, s.flowSite, access); resp.StatusCode != 200 {
		t.Fatalf("a refused admin call changed something: %d", resp.StatusCode)
	}

	// Removing the client refuses its tokens.
	start := time.Now()
	s.admin(t, "DELETE", "clients/"+appID, nil).expect(t, "remove", 200)
	lag := guardRefusesWithin(t, s.flowSite, access, start, revocationBound)
	t.Logf("removal to guard refusal: %s", lag)
	if r := refresh(t, s.flowSite, rt, appID); r["error"] == nil {
		t.Errorf("refresh of the removed client's token: %v", r)
	}
	s.admin(t, "DELETE", "clients/"+appID, nil).expectError(t, "remove twice", 404, "no registered client")

	// Keys: two active; a rotation publishes a successor of each.
	k := s.admin(t, "GET", "keys", nil).expect(t, "keys", 200)
	before := keyStates(t, k)
	if len(before) != 2 || before["ES256"] == nil || before["RS256"] == nil {
		t.Fatalf("keys: %s", k.raw)
	}
	rot := s.admin(t, "POST", "keys/rotate", nil).expect(t, "rotate", 200)
	if got := strs(rot.body["rotated"]); len(got) != 2 {
		t.Errorf("rotated: %s", rot.raw)
	}
	_, jwks := getJSON(t, s.issuer()+"/jwks")
	published := map[string]bool{}
	for _, key := range jwks["keys"].([]any) {
		published[key.(map[string]any)["kid"].(string)] = true
	}
	after := keyStates(t, rot)
	for _, alg := range []string{"ES256", "RS256"} {
		if len(after[alg]["active"]) != 1 || after[alg]["active"][0] != before[alg]["active"][0] || len(after[alg]["pending"]) != 1 {
			t.Errorf("%s after rotation: %v (before %v)", alg, after[alg], before[alg])
			continue
		}
		if !published[after[alg]["pending"][0]] || !published[before[alg]["active"][0]] {
			t.Errorf("%s: the JWKS (%v) lacks the successor or the current key", alg, published)
		}
	}
	if next, _ := rot.body["next_rotation"].(map[string]any); len(next) != 2 {
		t.Errorf("next_rotation: %s", rot.raw)
	}
}

// keyStates groups a key ring answer's kids by algorithm and state.
func keyStates(t *testing.T, r adminReply) map[string]map[string][]string {
	t.Helper()
	out := map[string]map[string][]string{}
	keys, _ := r.body["keys"].([]any)
	for _, k := range keys {
		m := k.(map[string]any)
		alg, state := str(m, "alg"), str(m, "state")
		if out[alg] == nil {
			out[alg] = map[string][]string{}
		}
		out[alg][state] = append(out[alg][state], str(m, "kid"))
	}
	return out
}

// TestHealthEndpoint: {issuer}/health and the admin API's health answer
// ready, are never cached, and refuse writes.
func TestHealthEndpoint(t *testing.T) {
	s := startAdminSite(t)
	resp, body := getJSON(t, s.issuer()+"/health")
	if resp.StatusCode != 200 || body["status"] != "ready" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("health: %d %v %v", resp.StatusCode, body, resp.Header)
	}
	if checks, _ := body["checks"].(map[string]any); checks["store"] != "ok" || checks["keys"] != "ok" {
		t.Errorf("checks: %v", body)
	}
	if r := s.admin(t, "GET", "health", nil).expect(t, "admin health", 200); r.body["status"] != "ready" {
		t.Errorf("admin health: %s", r.raw)
	}
	if r, _ := fetch(t, "POST", s.issuer()+"/health", nil); r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST health: %d", r.StatusCode)
	}
}
