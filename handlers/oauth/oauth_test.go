package oauth

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestNewStatus(t *testing.T) {
	for code, want := range map[string]int{
		CodeInvalidClient:          401,
		CodeServerError:            500,
		CodeTemporarilyUnavailable: 503,
		CodeInvalidGrant:           400,
		CodeInvalidScope:           400,
	} {
		if got := New(code, "d").Status; got != want {
			t.Errorf("New(%q).Status = %d, want %d", code, got, want)
		}
	}
}

func TestWrite(t *testing.T) {
	w := httptest.NewRecorder()
	Write(w, New(CodeInvalidClient, `bad "client"`).WithBasic("https://as.example/r"))
	if w.Code != 401 {
		t.Fatalf("status %d", w.Code)
	}
	if got, want := w.Header().Get("WWW-Authenticate"), `Basic realm="https://as.example/r", charset="UTF-8"`; got != want {
		t.Errorf("challenge %q, want %q", got, want)
	}
	if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Pragma") != "no-cache" {
		t.Errorf("cacheable error: %v", w.Header())
	}
	if got, want := w.Body.String(), `{"error":"invalid_client","error_description":"bad \"client\""}`; got != want {
		t.Errorf("body %s, want %s", got, want)
	}
	if w.Header().Get("Content-Type") != "application/json" {
		t.Errorf("content type %q", w.Header().Get("Content-Type"))
	}

	w = httptest.NewRecorder()
	Write(w, New(CodeInvalidGrant, "x").WithBasic("r"))
	if w.Header().Get("WWW-Authenticate") != "" {
		t.Errorf("invalid_grant got a Basic challenge")
	}

	w = httptest.NewRecorder()
	Write(w, (&Error{Status: 401}).WithBearer("r"))
	var b map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || b["error"] != CodeInvalidRequest {
		t.Errorf("no-token body %s (%v)", w.Body, err)
	}
	if got := w.Header().Get("WWW-Authenticate"); got != `Bearer realm="r"` {
		t.Errorf("no-token challenge %q", got)
	}
}

func TestBearerChallenge(t *testing.T) {
	for _, c := range []struct{ realm, code, desc, scope, want string }{
		{"https://f/x", "", "ignored", "ignored", `Bearer realm="https://f/x"`},
		{"r", "invalid_token", "", "", `Bearer realm="r", error="invalid_token"`},
		{"r", "invalid_token", `bad "tok"\` + "\n\u00e9", "", `Bearer realm="r", error="invalid_token", error_description="bad tok"`},
		{"r", "insufficient_scope", "", "openid", `Bearer realm="r", error="insufficient_scope", scope="openid"`},
		{"r", "insufficient_scope", "d", "patient/*.rs", `Bearer realm="r", error="insufficient_scope", error_description="d", scope="patient/*.rs"`},
	} {
		if got := BearerChallenge(c.realm, c.code, c.desc, c.scope); got != c.want {
			t.Errorf("BearerChallenge(%q, %q, %q, %q) = %q, want %q", c.realm, c.code, c.desc, c.scope, got, c.want)
		}
	}
}

func TestBearerToken(t *testing.T) {
	for _, c := range []struct {
		h    []string
		tok  string
		want bool
	}{
		{nil, "", false},
		{[]string{"Bearer abc"}, "abc", true},
		{[]string{"bearer  abc "}, "abc", true},
		{[]string{"Bearer "}, "", false},
		{[]string{"Basic abc"}, "", false},
		{[]string{"Bearer"}, "", false},
		{[]string{"Bearer a", "Bearer b"}, "", false},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		for _, v := range c.h {
			r.Header.Add("Authorization", v)
		}
		tok, ok := BearerToken(r)
		if tok != c.tok || ok != c.want {
			t.Errorf("BearerToken(%q) = %q, %v; want %q, %v", c.h, tok, ok, c.tok, c.want)
		}
	}
}

func TestTruncate(t *testing.T) {
	long := ""
	for range 70 {
		long += "a"
	}
	if got := Truncate(long); got != `"`+long[:64]+`…"` {
		t.Errorf("Truncate(long) = %q", got)
	}
	if got := Truncate("a\xffb"); got != `"a?b"` {
		t.Errorf("Truncate(invalid) = %q", got)
	}
}

func TestGrantTypes(t *testing.T) {
	want := []GrantType{"authorization_code", "refresh_token", "client_credentials"}
	got := GrantTypes()
	if len(got) != len(want) {
		t.Fatalf("GrantTypes() = %q", got)
	}
	for i, g := range got {
		if g != want[i] || !g.Known() {
			t.Errorf("GrantTypes()[%d] = %q (known %v), want %q", i, g, g.Known(), want[i])
		}
	}
	if !GrantRefreshToken.In([]string{"authorization_code", "refresh_token"}) || GrantClientCredentials.In([]string{"authorization_code"}) || GrantAuthorizationCode.In(nil) {
		t.Errorf("GrantType.In")
	}
	for _, g := range []GrantType{"", "password", "implicit", "Authorization_code", "urn:ietf:params:oauth:grant-type:jwt-bearer"} {
		if g.Known() {
			t.Errorf("%q is known", g)
		}
	}
}

// TestUnavailable: the storage-down answer is 503 temporarily_unavailable
// with Retry-After: 5; errors without RetryAfter carry no Retry-After.
func TestUnavailable(t *testing.T) {
	w := httptest.NewRecorder()
	Write(w, Unavailable())
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d", w.Code)
	}
	if got := w.Header().Get("Retry-After"); got != "5" {
		t.Errorf("Retry-After %q, want 5", got)
	}
	if got, want := w.Body.String(), `{"error":"temporarily_unavailable","error_description":"the authorization server's storage is unavailable; retry later"}`; got != want {
		t.Errorf("body %s, want %s", got, want)
	}
	w = httptest.NewRecorder()
	Write(w, New(CodeServerError, "internal error"))
	if got := w.Header().Get("Retry-After"); got != "" {
		t.Errorf("server_error with Retry-After %q", got)
	}
}

// TestRetryAfterSeconds: whole seconds, rounded up, at least 1.
func TestRetryAfterSeconds(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Nanosecond:                  "1",
		time.Second:                      "1",
		1500 * time.Millisecond:          "2",
		5 * time.Second:                  "5",
		2*time.Minute + time.Millisecond: "121",
	} {
		if got := RetryAfterSeconds(d); got != want {
			t.Errorf("RetryAfterSeconds(%v) = %q, want %q", d, got, want)
		}
	}
}
