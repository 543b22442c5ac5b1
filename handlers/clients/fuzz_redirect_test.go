package clients

import (
	"net/http"
	"strings"
	"testing"
)

// withoutPort removes the port from the authority of an absolute URL
// ("http://127.0.0.1:8080/cb" → "http://127.0.0.1/cb"), textually, and
// lower-cases the scheme (RFC 3986 §3.1: schemes are case-insensitive).
func withoutPort(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	auth := rest[:end]
	if i := strings.LastIndexByte(auth, ':'); i >= 0 && i > strings.LastIndexByte(auth, ']') {
		port := auth[i+1:]
		if strings.Trim(port, "0123456789") == "" {
			auth = auth[:i]
		}
	}
	return strings.ToLower(scheme) + "://" + auth + rest[end:]
}

// loopbackLiteral tells whether an absolute URL's host is written as a
// loopback IP literal: 127.x.y.z in dotted decimal, or [::1].
func loopbackLiteral(u string) bool {
	_, rest, _ := strings.Cut(withoutPort(u), "://")
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	host := rest[:end]
	if host == "[::1]" {
		return true
	}
	parts := strings.Split(host, ".")
	if len(parts) != 4 || parts[0] != "127" {
		return false
	}
	for _, p := range parts {
		if p == "" || len(p) > 3 || strings.Trim(p, "0123456789") != "" || (len(p) > 1 && p[0] == '0') {
			return false
		}
	}
	return true
}

// FuzzRedirectURI checks redirect-URI matching (RedirectURIRegistered):
// exact string comparison, with the one exception of RFC 8252 §7.3: an
// http redirect URI on a loopback IP literal matches the same URI with any
// port. So a match that is not the exact string must be an http URI on a
// loopback IP literal, without user info or fragment, identical to the
// registered one once the ports are removed; an exact match always
// matches; and matching against a list is matching against one of them.
func FuzzRedirectURI(f *testing.F) {
	for _, s := range [][2]string{
		{"https://app.example.org/cb", "https://app.example.org/cb"},
		{"https://app.example.org/cb", "https://app.example.org/cb/"},
		{"https://app.example.org/cb", "https://APP.example.org/cb"},
		{"http://127.0.0.1/callback", "http://127.0.0.1:51234/callback"},
		{"http://127.0.0.1/callback", "http://127.0.0.1:51234/callback/x"},
		{"http://127.0.0.1/callback", "http://127.0.0.1:51234/callback?x"},
		{"http://127.0.0.1/callback", "http://127.0.0.1:51234/callback#f"},
		{"http://127.0.0.1/callback", "http://u@127.0.0.1:51234/callback"},
		{"http://127.0.0.1/callback", "http://127.0.0.2:51234/callback"},
		{"http://127.0.0.1/callback", "http://[::ffff:127.0.0.1]/callback"},
		{"http://127.0.0.1/callback", "HTTP://127.0.0.1:9/callback"},
		{"http://127.0.0.1/callback", "http://127.0.0.1:9/%63allback"},
		{"http://[::1]:8080/cb?app=1", "http://[::1]:9/cb?app=1"},
		{"http://[::1]:8080/cb?app=1", "http://[::1]:9/cb?app=2"},
		{"http://[::1]/cb", "http://[0:0:0:0:0:0:0:1]:9/cb"},
		{"http://localhost:7000/cb", "http://localhost:7001/cb"},
		{"https://127.0.0.1/secure", "https://127.0.0.1:8443/secure"},
		{"com.example.app:/oauth", "com.example.app:/oauth"},
		{"http://127.0.0.1:80/cb", "http://127.0.0.1:/cb"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, registered, got string) {
		match := RedirectURIRegistered([]string{registered}, got)
		switch {
		case got == registered && !match:
			t.Fatalf("%q does not match itself", got)
		case match && got != registered:
			if !strings.HasPrefix(strings.ToLower(got), "http://") || !loopbackLiteral(got) || !loopbackLiteral(registered) {
				t.Fatalf("%q matches %q: not a loopback http URI", got, registered)
			}
			if withoutPort(got) != withoutPort(registered) {
				t.Fatalf("%q matches %q, which differs in more than the port", got, registered)
			}
			if strings.ContainsAny(got, "#@") {
				t.Fatalf("%q matches %q with a fragment or user info", got, registered)
			}
		}
		other := "https://other.example/cb"
		if RedirectURIRegistered([]string{other, registered}, got) != (match || got == other) {
			t.Fatalf("matching %q against a list differs from matching its members", got)
		}
		// The authorization request carries the URI in a query string; a
		// URI that matches is one a browser can be sent to.
		if match && got != registered {
			if _, err := http.NewRequest(http.MethodGet, got, nil); err != nil {
				t.Fatalf("%q matches %q but is not a usable URL: %v", got, registered, err)
			}
		}
	})
}
