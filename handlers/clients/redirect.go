package clients

import (
	"net"
	"net/url"
	"slices"
	"strings"
)

// RedirectURIRegistered tells whether a redirect URI sent in an
// authorization request is one of a client's registered ones. The
// comparison is exact (RFC 9700 §4.1.3), with one exception that RFC 8252
// §7.3 requires for native apps: a registered http redirect URI on a
// loopback IP literal (127.0.0.1 or [::1], not "localhost") matches the
// same URI with any port, because the app listens on a port the operating
// system picks at run time. Scheme, host, path and query must still be
// identical, and a URI with user info or a fragment never matches.
func RedirectURIRegistered(registered []string, got string) bool {
	if slices.Contains(registered, got) {
		return true
	}
	// An empty fragment ("…#") parses to no fragment at all.
	g, err := url.Parse(got)
	if err != nil || strings.Contains(got, "#") || !isLoopbackHTTP(g) {
		return false
	}
	for _, r := range registered {
		u, err := url.Parse(r)
		if err != nil || !isLoopbackHTTP(u) {
			continue
		}
		if u.Hostname() == g.Hostname() && u.EscapedPath() == g.EscapedPath() && u.RawQuery == g.RawQuery &&
			u.ForceQuery == g.ForceQuery {
			return true
		}
	}
	return false
}

// isLoopbackHTTP tells whether u is an http URL on a loopback IP literal,
// without user info or fragment.
func isLoopbackHTTP(u *url.URL) bool {
	if u.Scheme != "http" || u.User != nil || u.Fragment != "" || u.RawFragment != "" || u.Opaque != "" {
		return false
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback()
}
