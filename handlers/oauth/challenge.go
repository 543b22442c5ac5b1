package oauth

import (
	"net/http"
	"strings"
)

// BearerChallenge builds the WWW-Authenticate value of a refused resource
// request (RFC 6750 §3): the realm, then the error code, description and
// scope when not empty, in that order. A request that carried no token
// gets the realm alone (§3.1: no error code then). Description and scope
// keep only what may stand in a quoted string (quoteSafe).
func BearerChallenge(realm, code, description, scope string) string {
	var b strings.Builder
	b.WriteString(`Bearer realm="`)
	b.WriteString(quoteSafe(realm))
	b.WriteByte('"')
	if code != "" {
		b.WriteString(`, error="`)
		b.WriteString(quoteSafe(code))
		b.WriteByte('"')
		if description != "" {
			b.WriteString(`, error_description="`)
			b.WriteString(quoteSafe(description))
			b.WriteByte('"')
		}
		if scope != "" {
			b.WriteString(`, scope="`)
			b.WriteString(quoteSafe(scope))
			b.WriteByte('"')
		}
	}
	return b.String()
}

// BasicChallenge builds the WWW-Authenticate value that asks a client for
// HTTP Basic credentials (RFC 7617), in UTF-8.
func BasicChallenge(realm string) string {
	return `Basic realm="` + quoteSafe(realm) + `", charset="UTF-8"`
}

// quoteSafe keeps the printable ASCII of s that may stand in a quoted
// string of a WWW-Authenticate header (RFC 6750 §3: no '"' nor '\').
func quoteSafe(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return strings.Map(func(r rune) rune {
				if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
					return -1
				}
				return r
			}, s)
		}
	}
	return s
}

// BearerToken returns the access token of a request's one Authorization
// header with the Bearer scheme (case-insensitive, RFC 6750 §2.1). A
// request with no Authorization header, more than one, another scheme or
// an empty token has none. The query string is never read (RFC 6750 §2.3
// is not supported: URLs end up in logs).
func BearerToken(r *http.Request) (string, bool) {
	h := r.Header.Values("Authorization")
	if len(h) != 1 {
		return "", false
	}
	scheme, tok, found := strings.Cut(h[0], " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
