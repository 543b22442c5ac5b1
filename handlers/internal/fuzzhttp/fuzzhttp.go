// Package fuzzhttp holds what the fuzz harnesses of the authorization
// server, registration and the guard share: building a request as
// net/http's server would hand it to a handler from fuzzed request-line
// parts, and checking an OAuth error answer. It is imported by tests only.
package fuzzhttp

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// NewRequest builds a request as net/http's server would hand it to a
// handler: target is the request-target of the request line, host the Host
// when target carries none. ok is false when net/http would refuse the
// request line itself.
func NewRequest(method, target, host string, body []byte) (*http.Request, bool) {
	if !ValidMethod(method) || !strings.HasPrefix(target, "/") || !ValidTarget(target) {
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
		r.Host = host
	}
	return r.WithContext(context.Background()), true
}

// ValidMethod tells whether m is an HTTP method token.
func ValidMethod(m string) bool {
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

// ValidTarget tells whether a request-target has no bytes a request line
// cannot carry (controls, spaces, non-ASCII).
func ValidTarget(t string) bool {
	for _, c := range []byte(t) {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// ValidHeader tells whether v may be sent as a header field value.
func ValidHeader(v string) bool { return httpguts.ValidHeaderFieldValue(v) }

// CheckOAuthError fails unless w is an OAuth error response (RFC 6749
// §5.2): JSON with an error code, never cached; it returns the code.
func CheckOAuthError(t testing.TB, w *httptest.ResponseRecorder) string {
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
