package clients

import (
	"net"
	"net/url"
	"strings"
	"testing"
)

// TestCheckAppURLInvariants holds the URL policy to its rules over every
// combination of URL kind × scheme × separator × user info × host ×
// fragment spelling (15,840, with ports and paths varied), with an oracle written independently
// of CheckAppURL: an accepted URL never carries a fragment (in any
// spelling that reaches the parser) or user info; plain http only on a
// loopback address or a localhost name (RFC 8252 §8.3); a scheme other
// than https/http only for a redirect URI, and only a reverse-domain
// private-use one (RFC 8252 §7.1) — never javascript:, data: or file:.
func TestCheckAppURLInvariants(t *testing.T) {
	kinds := []URLKind{RedirectURI, LaunchURI, JWKSURI}
	schemes := []string{"https", "http", "HTTPS", "HTTP", "com.example.app", "javascript", "data", "file", "ftp", ""}
	seps := []string{"://", ":/", ":"}
	userinfos := []string{"", "u@", "u:pw@", "@"}
	hosts := []string{"app.example.org", "localhost", "app.localhost", "127.0.0.1", "127.9.8.7", "[::1]", "10.0.0.1",
		"localhost.evil.example", "127.0.0.1.nip.io", "[::ffff:127.0.0.1]", ""}
	ports := []string{"", ":8080", ":0"}
	paths := []string{"", "/", "/cb", "/cb?x=1", "/a/../cb"}
	frags := []string{"", "#", "#f", "?#f"}
	n := 0
	// Every combination of kind × scheme × separator × user info × host
	// × fragment; the port and the path vary with the combination's index
	// (they matter to none of the rules, which the oracle checks anyway).
	for _, kind := range kinds {
		for _, scheme := range schemes {
			for _, sep := range seps {
				for _, user := range userinfos {
					for _, host := range hosts {
						for _, frag := range frags {
							n++
							raw := scheme + sep + user + host + ports[n%len(ports)] + paths[n%len(paths)] + frag
							if CheckAppURL(raw, kind) == nil {
								checkAccepted(t, raw, kind)
							}
						}
					}
				}
			}
		}
	}
	t.Logf("%d combinations", n)
}

// checkAccepted is the oracle for an accepted URL.
func checkAccepted(t *testing.T, raw string, kind URLKind) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("%q accepted but does not parse: %v", raw, err)
	}
	if strings.Contains(raw, "#") || u.Fragment != "" {
		t.Fatalf("%q (kind %d) accepted with a fragment", raw, kind)
	}
	if u.User != nil {
		t.Fatalf("%q (kind %d) accepted with user info", raw, kind)
	}
	switch s := strings.ToLower(u.Scheme); {
	case s == "https":
		if u.Host == "" {
			t.Fatalf("%q accepted without a host", raw)
		}
	case s == "http":
		h := u.Hostname()
		ip := net.ParseIP(h)
		if !(h == "localhost" || strings.HasSuffix(h, ".localhost") || ip != nil && ip.IsLoopback()) {
			t.Fatalf("%q (kind %d) accepted: plain http to a host that is not loopback", raw, kind)
		}
	default:
		if kind != RedirectURI || !strings.Contains(s, ".") {
			t.Fatalf("%q (kind %d) accepted with scheme %q", raw, kind, s)
		}
	}
}
