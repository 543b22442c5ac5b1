package handlers_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/smartcaddy/smartauth/store"
)

// userinfo calls the UserInfo endpoint with a bearer token ("" for none).
func (e *tokenEnv) userinfo(method, token string) tokenReply {
	e.t.Helper()
	req, err := http.NewRequest(method, e.issuer+"/userinfo", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return e.do(req)
}

func TestUserinfo(t *testing.T) {
	e := newTokenEnv(t)
	r := e.exchange(e.seedCode(codeOptions{scope: "openid fhirUser profile patient/*.rs"}))
	at := r.str("access_token")
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		u := e.userinfo(m, at)
		if u.status != http.StatusOK || u.str("sub") != tkUser || u.str("fhirUser") != e.fhirBase+"/"+tkUserFHIR || u.str("name") != tkUserName {
			t.Fatalf("%s userinfo: %d %v", m, u.status, u.body)
		}
		if u.header.Get("Cache-Control") != "no-store" || u.header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("userinfo headers %v", u.header)
		}
	}
	// Without profile: no name.
	r = e.exchange(e.seedCode(codeOptions{scope: "openid fhirUser"}))
	if u := e.userinfo(http.MethodGet, r.str("access_token")); u.status != http.StatusOK || u.body["name"] != nil || u.str("fhirUser") == "" {
		t.Fatalf("userinfo without profile: %d %v", u.status, u.body)
	}
}

func TestUserinfoRefused(t *testing.T) {
	e := newTokenEnv(t)
	good := e.exchange(e.seedCode(codeOptions{scope: "openid fhirUser patient/*.rs"}))
	noOpenID := e.exchange(e.seedCode(codeOptions{scope: "patient/*.rs"})).str("access_token")

	u := e.userinfo(http.MethodGet, "")
	if u.status != http.StatusUnauthorized || !strings.HasPrefix(u.header.Get("WWW-Authenticate"), "Bearer ") {
		t.Errorf("no token: %d %v", u.status, u.header)
	}
	for name, tok := range map[string]string{
		"garbage":  "not-a-jwt",
		"id_token": good.str("id_token"),
		"tampered": good.str("access_token")[:len(good.str("access_token"))-4] + "AAAA",
	} {
		u := e.userinfo(http.MethodGet, tok)
		if u.status != http.StatusUnauthorized || !strings.Contains(u.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("%s: %d %v", name, u.status, u.header)
		}
	}
	// A token with every access-token claim but typ JWT is no access
	// token.
	forged := jwt.New()
	for k, v := range map[string]any{
		jwt.IssuerKey: e.issuer, jwt.SubjectKey: tkUser, jwt.AudienceKey: e.fhirBase, jwt.JwtIDKey: "x1",
		jwt.ExpirationKey: time.Now().Add(time.Minute), "scope": "openid fhirUser", "client_id": tkPublic,
	} {
		if err := forged.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := e.ring.Sign(forged, "ES256", "JWT")
	if err != nil {
		t.Fatal(err)
	}
	if u := e.userinfo(http.MethodGet, string(raw)); u.status != http.StatusUnauthorized {
		t.Errorf("typ JWT: %d %v", u.status, u.body)
	}
	u = e.userinfo(http.MethodGet, noOpenID)
	if u.status != http.StatusForbidden || !strings.Contains(u.header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Errorf("no openid: %d %v", u.status, u.header)
	}
	req, _ := http.NewRequest(http.MethodDelete, e.issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+good.str("access_token"))
	if u := e.do(req); u.status != http.StatusMethodNotAllowed {
		t.Errorf("DELETE: %d", u.status)
	}

	// A revoked token (by jti) is refused.
	at := e.verifyAccessToken(good.str("access_token"))
	jti, _ := at.JwtID()
	if u := e.userinfo(http.MethodGet, good.str("access_token")); u.status != http.StatusOK {
		t.Fatalf("before revocation: %d %v", u.status, u.body)
	}
	if err := e.db.Revoke(context.Background(), store.RevokedToken, jti, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if u := e.userinfo(http.MethodGet, good.str("access_token")); u.status != http.StatusUnauthorized {
		t.Errorf("revoked token: %d %v", u.status, u.body)
	}
}
