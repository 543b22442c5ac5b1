// Package scopes parses SMART App Launch scopes (v1 and v2) and decides
// what they grant. It is the one scope parser of the authorization server
// and the guard.
//
// Resource scopes have the form
//
//	(patient|user|system)/(ResourceType|*).(perms)[?query]
//
// where perms is either a v2 permission string (a non-empty, in-order
// subsequence of "cruds") or one of the v1 words "read", "write" and "*".
// v1 scopes are translated on parsing (.read → rs, .write → cud,
// .* → cruds) and keep their v1 spelling in String. Only v2 scopes may
// carry a query restriction.
//
// The known non-resource scopes are openid, fhirUser, profile, launch,
// launch/patient, launch/encounter, offline_access and online_access.
// Every other string is unknown: Parse rejects it and Grant drops it.
package scopes

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Perms is a set of SMART v2 permissions (c r u d s).
type Perms uint8

// The v2 permission letters, in their required order c, r, u, d, s.
const (
	Create Perms = 1 << iota
	Read
	Update
	Delete
	Search
)

// AllPerms is the full permission set, "cruds" (v1 ".*").
const AllPerms = Create | Read | Update | Delete | Search

// permLetters lists the letters in their required order.
var permLetters = [...]struct {
	p Perms
	c byte
}{{Create, 'c'}, {Read, 'r'}, {Update, 'u'}, {Delete, 'd'}, {Search, 's'}}

// The v1 permission words and their v2 meaning.
const (
	v1Read  = Read | Search
	v1Write = Create | Update | Delete
	v1All   = AllPerms
)

// String returns the permissions as "cruds" letters in their required
// order ("rs", "cud"); the empty set gives "".
func (p Perms) String() string {
	var b [len(permLetters)]byte
	n := 0
	for _, l := range permLetters {
		if p&l.p != 0 {
			b[n] = l.c
			n++
		}
	}
	return string(b[:n])
}

// Has tells whether p holds every permission of q. Has(0) is true.
func (p Perms) Has(q Perms) bool { return q&^p == 0 }

// Scope is one parsed scope.
type Scope struct {
	// Raw is the scope as given.
	Raw string
	// Context is Patient, User or System for resource scopes, "" for
	// the others (openid, launch, …).
	Context Context
	// ResourceType is a FHIR resource type or "*".
	ResourceType string
	// Perms are the permissions, v1 scopes translated (.read → rs,
	// .write → cud, .* → cruds).
	Perms Perms
	// V1 tells that the scope used v1 syntax.
	V1 bool
	// Query holds v2 restrictions (?category=laboratory); nil when none.
	Query url.Values
}

// ErrInvalid is wrapped by every error Parse returns.
var ErrInvalid = errors.New("invalid scope")

// known lists the non-resource scopes the server understands.
var known = map[string]bool{
	"openid":           true,
	"fhirUser":         true,
	"profile":          true,
	"launch":           true,
	"launch/patient":   true,
	"launch/encounter": true,
	"offline_access":   true,
	"online_access":    true,
}

// Context is the context of a resource scope, the part before the "/":
// whose data the scope reaches. Its value is the scope's wire spelling.
type Context string

// Contexts of resource scopes (SMART App Launch 2.2).
const (
	// Patient scopes reach the compartment of the patient in context.
	Patient Context = "patient"
	// User scopes reach the data the signed-in user can access.
	User Context = "user"
	// System scopes are for a client acting on its own behalf (backend
	// services, client_credentials).
	System Context = "system"
)

// contexts are the contexts of resource scopes.
var contexts = map[Context]bool{Patient: true, User: true, System: true}

// resourceTypeRE matches a FHIR resource type name.
var resourceTypeRE = regexp.MustCompile(`^[A-Z][A-Za-z]{1,63}$`)

func invalid(s, why string) error {
	return fmt.Errorf("%w %q: %s", ErrInvalid, s, why)
}

// Parse parses one scope. Known non-resource scopes (openid, fhirUser,
// profile, launch, launch/patient, launch/encounter, offline_access,
// online_access) parse to a Scope with only Raw set. Anything else that is
// not a well-formed resource scope is an error wrapping ErrInvalid.
//
// Parse is exact: no trimming, no case folding, and every byte must be a
// printable ASCII character allowed in an OAuth scope token (RFC 6749
// §3.3: no space, '"' or '\').
func Parse(s string) (Scope, error) {
	if s == "" {
		return Scope{}, invalid(s, "empty")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return Scope{}, invalid(s, "character not allowed in a scope")
		}
	}
	if known[s] {
		return Scope{Raw: s}, nil
	}
	ctx, rest, ok := strings.Cut(s, "/")
	if !ok || !contexts[Context(ctx)] {
		return Scope{}, invalid(s, "unknown scope")
	}
	body, rawQuery, hasQuery := strings.Cut(rest, "?")
	typ, perm, ok := strings.Cut(body, ".")
	if !ok {
		return Scope{}, invalid(s, `missing "." before the permissions`)
	}
	if typ != "*" && !resourceTypeRE.MatchString(typ) {
		return Scope{}, invalid(s, "bad resource type")
	}
	sc := Scope{Raw: s, Context: Context(ctx), ResourceType: typ}
	switch perm {
	case "read":
		sc.Perms, sc.V1 = v1Read, true
	case "write":
		sc.Perms, sc.V1 = v1Write, true
	case "*":
		sc.Perms, sc.V1 = v1All, true
	default:
		p, err := parseV2Perms(perm)
		if err != nil {
			return Scope{}, invalid(s, err.Error())
		}
		sc.Perms = p
	}
	if hasQuery {
		if sc.V1 {
			return Scope{}, invalid(s, "v1 scopes take no query")
		}
		q, err := parseQuery(rawQuery)
		if err != nil {
			return Scope{}, invalid(s, err.Error())
		}
		sc.Query = q
	}
	return sc, nil
}

// parseV2Perms parses a non-empty, in-order subsequence of "cruds".
func parseV2Perms(s string) (Perms, error) {
	if s == "" {
		return 0, errors.New("empty permissions")
	}
	var p Perms
	next := 0 // index in permLetters of the next letter allowed
	for i := 0; i < len(s); i++ {
		j := next
		for j < len(permLetters) && permLetters[j].c != s[i] {
			j++
		}
		if j == len(permLetters) {
			return 0, fmt.Errorf("permissions %q: not an in-order subset of \"cruds\"", s)
		}
		p |= permLetters[j].p
		next = j + 1
	}
	return p, nil
}

// ParseAll parses a list of scopes in order. Scopes that parse go to
// parsed, the others to unknown; empty entries are skipped and exact
// duplicates kept once.
func ParseAll(list []string) (parsed []Scope, unknown []string) {
	seen := make(map[string]bool, len(list))
	for _, s := range list {
		if s == "" || seen[s] {
			continue
		}
		seen[s] = true
		sc, err := Parse(s)
		if err != nil {
			unknown = append(unknown, s)
			continue
		}
		parsed = append(parsed, sc)
	}
	return parsed, unknown
}

// IsResource tells whether s is a patient/, user/ or system/ scope.
func (s Scope) IsResource() bool { return s.Context != "" }

// String returns the scope in canonical form. A non-resource scope is its
// Raw string. A resource scope is rebuilt from its fields: a v1 scope keeps
// its v1 word (read, write, *), a v2 scope gets its letters in "cruds"
// order, and a query is written with its keys sorted, each key's values in
// their order, and only the characters that would change its meaning
// percent-encoded ('|', ':' and '/' stay readable). For a scope as usually
// written String equals Raw; Parse(s.String()) always gives back s.
func (s Scope) String() string {
	if !s.IsResource() {
		return s.Raw
	}
	var b strings.Builder
	b.WriteString(string(s.Context))
	b.WriteByte('/')
	b.WriteString(s.ResourceType)
	b.WriteByte('.')
	b.WriteString(s.permWord())
	if len(s.Query) > 0 {
		b.WriteByte('?')
		b.WriteString(encodeQuery(s.Query))
	}
	return b.String()
}

// permWord is the permission part of String.
func (s Scope) permWord() string {
	if s.V1 {
		switch s.Perms {
		case v1Read:
			return "read"
		case v1Write:
			return "write"
		case v1All:
			return "*"
		}
	}
	return s.Perms.String()
}

// Split splits a space-separated scope parameter, dropping empty and
// duplicate entries and keeping the order.
func Split(scope string) []string {
	fields := strings.Fields(scope)
	out := fields[:0]
	seen := make(map[string]bool, len(fields))
	for _, f := range fields {
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return out
}
