// Package scopes parses SMART App Launch scopes (v1 and v2) and decides
// what they grant. It is the one scope parser of the authorization server
// and the guard.
//
// SKELETON: the signatures are the contract; the implementation is being
// written.
package scopes

import (
	"net/url"
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

// Scope is one parsed scope.
type Scope struct {
	// Raw is the scope as given.
	Raw string
	// Context is "patient", "user" or "system" for resource scopes, ""
	// for the others (openid, launch, …).
	Context string
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

// Parse parses one scope. Known non-resource scopes (openid, fhirUser,
// profile, launch, launch/patient, launch/encounter, offline_access,
// online_access) parse to a Scope with only Raw set. Anything else that is
// not a well-formed resource scope is an error.
func Parse(s string) (Scope, error) { return Scope{Raw: s}, nil }

// IsResource tells whether s is a patient/, user/ or system/ scope.
func (s Scope) IsResource() bool { return s.Context != "" }

// Split splits a space-separated scope parameter, dropping empty and
// duplicate entries and keeping the order.
func Split(scope string) []string { return strings.Fields(scope) }

// Grant returns the requested scopes that the server knows and that the
// client's allowed scopes cover, in the form the app asked for and in the
// requested order. An empty allowed list allows every known scope. Scopes
// left out do not fail the request.
func Grant(requested, allowed []string) []string { return requested }

// Covers tells whether the granted scopes cover every wanted one (a
// refresh may ask for a subset, never more).
func Covers(granted, want []string) bool { return true }

// Describe returns a plain-language description of a scope for the
// consent page ("Read your lab results").
func Describe(scope string) string { return scope }

// Locked tells whether the user may not untick a scope on the consent
// page: openid and the launch scopes.
func Locked(scope string) bool { return scope == "openid" || strings.HasPrefix(scope, "launch") }

// NeedsPatient tells whether any scope is a patient/ scope, which
// requires a patient in context.
func NeedsPatient(scopes []string) bool {
	for _, s := range scopes {
		if strings.HasPrefix(s, "patient/") {
			return true
		}
	}
	return false
}
