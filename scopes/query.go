package scopes

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Query restrictions (SMART v2 fine-grained scopes) are compared strictly
// and literally, everywhere in this package:
//
//   - A restriction is a set of (key, value) pairs. `?a=1&a=2` holds two
//     pairs, both of which apply.
//   - A pair is met by a request (Permits) or by a narrower scope (Grant,
//     Covers) when that side has the same key with a byte-equal value among
//     its values, after percent-decoding. Nothing else is interpreted: no
//     FHIR search semantics, so a scope value "laboratory" does NOT match
//     "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
//     nor the reverse, "a,b" (FHIR's OR) is not split and never matches "a",
//     and a modified key (category:not, category:in) is a different key.
//     Extra keys or values on the request side are allowed: with FHIR's AND
//     between repeated parameters they can only narrow a search.
//
// Being literal fails closed: a request that means the same thing in
// another spelling is refused, a broader one is never let through.

// parseQuery parses the query of a v2 scope: one or more key=value pairs
// joined by '&', each key and value non-empty, decoded by url.ParseQuery.
func parseQuery(raw string) (url.Values, error) {
	if raw == "" {
		return nil, errors.New("empty query after '?'")
	}
	for seg := range strings.SplitSeq(raw, "&") {
		k, v, ok := strings.Cut(seg, "=")
		switch {
		case seg == "":
			return nil, errors.New("empty parameter in query")
		case !ok:
			return nil, fmt.Errorf("query parameter %q has no '='", seg)
		case k == "":
			return nil, fmt.Errorf("query parameter %q has no name", seg)
		case v == "":
			return nil, fmt.Errorf("query parameter %q has no value", seg)
		}
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, fmt.Errorf("malformed query: %v", err)
	}
	return q, nil
}

// encodeQuery writes a restriction with sorted keys and each key's values
// in order, escaping only what would change its meaning on parsing.
func encodeQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		for _, v := range q[k] {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			escapeTo(&b, k)
			b.WriteByte('=')
			escapeTo(&b, v)
		}
	}
	return b.String()
}

// escapeTo percent-encodes the bytes that are not allowed in a scope token
// or that url.ParseQuery would read as syntax, and keeps the rest as is.
func escapeTo(b *strings.Builder, s string) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c <= 0x20, c >= 0x7f, c == '"', c == '\\',
			c == '%', c == '&', c == '=', c == '+', c == ';', c == '#':
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		default:
			b.WriteByte(c)
		}
	}
}

// includes tells whether every (key, value) pair of restriction r is also
// in q, compared literally (see above). An empty restriction is included
// in anything.
func includes(q, r url.Values) bool {
	for k, vs := range r {
		have := q[k]
		for _, v := range vs {
			if !slices.Contains(have, v) {
				return false
			}
		}
	}
	return true
}
