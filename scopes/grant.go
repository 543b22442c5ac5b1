package scopes

import "strings"

// Coverage, used by Grant and Covers. A requested scope r is covered by a
// list of scopes L when:
//
//   - r is a non-resource scope and L holds the identical string;
//   - r is a resource scope and r's permissions are all in the union of
//     the permissions of the scopes a in L that apply to r, where a applies
//     to r when a has the same context (user/*.cruds does not cover
//     patient/…), and either
//     a has no query and a's type is "*" or r's type, or
//     a has a query, the same type as r (a "*" with a query covers only
//     "*" with a query) and every pair of a's query is in r's query
//     (restrictions only narrow; see the comment in query.go on how pairs
//     are compared).
//
// v1 and v2 scopes compare by their v2 meaning: patient/*.rs covers
// patient/Observation.read. Taking the union means patient/Observation.r
// with patient/Observation.s covers patient/Observation.rs.

// applies returns the permissions a gives for r's context, type and
// restriction, or 0 when it gives none.
func applies(a, r Scope) Perms {
	if !a.IsResource() || !r.IsResource() || a.Context != r.Context {
		return 0
	}
	if len(a.Query) > 0 {
		if a.ResourceType != r.ResourceType || !includes(r.Query, a.Query) {
			return 0
		}
	} else if a.ResourceType != "*" && a.ResourceType != r.ResourceType {
		return 0
	}
	return a.Perms
}

// covered tells whether list covers r.
func covered(r Scope, list []Scope) bool {
	if !r.IsResource() {
		for _, a := range list {
			if !a.IsResource() && a.Raw == r.Raw {
				return true
			}
		}
		return false
	}
	if r.Perms == 0 {
		return false
	}
	var have Perms
	for _, a := range list {
		have |= applies(a, r)
	}
	return have.Has(r.Perms)
}

// flatten splits every entry of list on spaces, so that a list may hold
// single scopes as well as whole scope parameters, and drops empty and
// duplicate entries.
func flatten(list []string) []string {
	return Split(strings.Join(list, " "))
}

// Grant returns the requested scopes that the server knows and that the
// client's allowed scopes cover, in the form the app asked for and in the
// requested order. Scopes left out do not fail the request.
//
// An empty allowed list (a client configured or registered without
// scopes: an "unbounded" client) allows exactly UnboundedAllows: every
// known non-resource scope and every patient/ and user/ resource scope,
// never a system/ scope. A system/ scope is granted only when the allowed
// list covers it.
//
// Entries of either list may also be space-separated scope parameters.
// Only a nil or zero-length allowed list is unbounded: a list of blank or
// unknown entries allows nothing. Duplicates are returned once (exact
// string comparison). A requested scope broader than what is allowed is
// dropped, not narrowed.
func Grant(requested, allowed []string) []string {
	unbounded := len(allowed) == 0
	al, _ := ParseAll(flatten(allowed))
	out := make([]string, 0, len(requested))
	for _, s := range flatten(requested) {
		sc, err := Parse(s)
		if err != nil {
			continue
		}
		if unbounded && UnboundedAllows(sc) || covered(sc, al) {
			out = append(out, s)
		}
	}
	return out
}

// UnboundedAllows tells whether a client without a scope list may be
// granted a (known, parsed) scope: anything but a system/ scope. What a
// user's grant then holds is bounded further by the user's reach.
func UnboundedAllows(sc Scope) bool {
	return sc.Context != System
}

// Covers tells whether the granted scopes cover every wanted one (a
// refresh may ask for a subset, never more).
//
// It uses the coverage rule of Grant, with no "empty allows all": an empty
// granted list covers only an empty want list. Any unknown or unparseable
// wanted scope makes it false; unknown granted scopes are ignored.
func Covers(granted, want []string) bool {
	g, _ := ParseAll(flatten(granted))
	for _, s := range flatten(want) {
		sc, err := Parse(s)
		if err != nil || !covered(sc, g) {
			return false
		}
	}
	return true
}

// Locked tells whether the user may not untick a scope on the consent
// page: openid and the launch scopes (launch, launch/patient,
// launch/encounter). The comparison is exact.
func Locked(scope string) bool {
	switch scope {
	case "openid", "launch", "launch/patient", "launch/encounter":
		return true
	}
	return false
}

// NeedsPatient tells whether any scope is a patient/ scope, which
// requires a patient in context. Only well-formed patient/ resource
// scopes count; entries may be space-separated scope parameters.
func NeedsPatient(scopes []string) bool {
	for _, s := range flatten(scopes) {
		if sc, err := Parse(s); err == nil && sc.Context == Patient {
			return true
		}
	}
	return false
}
