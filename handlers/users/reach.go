package users

import (
	"context"
	"slices"
	"strings"

	"github.com/smartcaddy/smartauth/scopes"
)

// What a signed-in user may reach is decided here, from the current
// configuration, for every token that has a user: password sign-in,
// trusted identity and any later source of users alike. The authorization
// endpoint, the consent page, the patient picker, the launcher page, EHR
// launches, refresh and the guard all ask this file.
//
// The rules, secure by default (a user the configuration says nothing
// about reaches nothing beyond the scopes that need no patient data):
//
//   - system/ scopes are never part of a grant with a user: they are for
//     backend services (client_credentials), as SMART App Launch 2.2
//     defines them.
//   - A user whose fhir_user is Patient/X reaches X's compartment and
//     nothing else, whatever else is configured: the patient in context
//     can only be X, and user/ scopes are confined to X's compartment
//     exactly as patient/ scopes are.
//   - user/ scopes ("all data the user can access") are granted to any
//     other user only when the operator lists user/ scopes in the user's
//     `scopes`: that is the explicit grant to reach every patient's data
//     of those types. A user with a `patients` list and no such grant gets
//     no user/ scopes: one patient at a time, through patient/ scopes.
//   - The patient in context must be the user's own record (a Patient
//     user), one of the user's `patients` (when listed), or, for a user
//     without a list, any patient when the user has an explicit user/
//     grant or when the operator turned on `patient_search` (then a
//     patient the FHIR server confirms).

// Options configure the reach rule.
type Options struct {
	// PatientSearch tells whether the operator turned on patient search
	// (users without a patient list pick any patient the FHIR server
	// confirms).
	PatientSearch bool
}

// Rule is the reach rule under one configuration. It is immutable and
// safe for concurrent use.
type Rule struct {
	patientSearch bool
}

// New builds the reach rule.
func New(opts Options) *Rule {
	return &Rule{patientSearch: opts.PatientSearch}
}

// Reach is what one user may reach (Rule.Reach).
type Reach struct {
	// own is the id of the user's own Patient record; when set, the user
	// is confined to that patient's compartment.
	own string
	// patients are the configured patients the user may have in context.
	patients []string
	// anyPatient allows any patient in context (no list is configured,
	// and the user has an explicit user/ grant or patient search).
	anyPatient bool
	// userScopes allows user/ scopes (bounded by the user's scopes).
	userScopes bool
}

// userReach computes a user's reach; patientSearch tells whether the
// operator turned on patient search. A nil user reaches nothing.
func userReach(u *User, patientSearch bool) Reach {
	if u == nil {
		return Reach{}
	}
	if own := u.OwnPatient(); own != "" {
		return Reach{own: own, userScopes: true}
	}
	r := Reach{patients: u.Patients, userScopes: listsUserScopes(u.Scopes)}
	if len(u.Patients) == 0 {
		r.anyPatient = r.userScopes || patientSearch
	}
	return r
}

// Reach is the reach of a user; a nil user reaches nothing.
func (r *Rule) Reach(u *User) Reach {
	return userReach(u, r.patientSearch)
}

// listsUserScopes tells whether a scope list holds a user/ resource scope.
func listsUserScopes(list []string) bool {
	for _, s := range scopes.Split(strings.Join(list, " ")) {
		if sc, err := scopes.Parse(s); err == nil && sc.Context == scopes.User {
			return true
		}
	}
	return false
}

// Own is the id of the user's own Patient record, to whose compartment
// the user is confined; "" for a user who is not a patient.
func (r Reach) Own() string { return r.own }

// UserScopes tells whether user/ scopes are within reach (bounded by the
// user's configured scopes).
func (r Reach) UserScopes() bool { return r.userScopes }

// PatientAllowed tells whether the patient may be in context. A patient
// allowed only through patient search must still be confirmed by the
// FHIR server (Rule.MayHavePatient).
func (r Reach) PatientAllowed(id string) bool {
	switch {
	case id == "":
		return false
	case r.own != "":
		return id == r.own
	case len(r.patients) > 0:
		return slices.Contains(r.patients, id)
	}
	return r.anyPatient
}

// ScopeAllowed tells whether a scope's context is within reach: never
// system/, user/ only with UserScopes. Non-resource scopes and patient/
// scopes are (patient/ ones then need a patient in context).
func (r Reach) ScopeAllowed(sc scopes.Scope) bool {
	switch sc.Context {
	case scopes.System:
		return false
	case scopes.User:
		return r.userScopes
	}
	return true
}

// MayGrant tells whether a scope may be in a grant to a user: within the
// user's reach (ScopeAllowed) and covered by the user's configured scopes
// (User.Scopes) when it is a resource scope and the user has a bound.
// Unknown scopes, and any scope for a nil user, are refused. Patient
// search plays no part in it.
func MayGrant(u *User, scope string) bool {
	if u == nil {
		return false
	}
	sc, err := scopes.Parse(scope)
	if err != nil || !userReach(u, false).ScopeAllowed(sc) {
		return false
	}
	return !sc.IsResource() || len(u.Scopes) == 0 || scopes.Covers(u.Scopes, []string{scope})
}

// SearchesPatients tells whether a user picks patients by searching the
// upstream FHIR server: search is configured, and the user has no
// configured patient list (which would bound the choice) and is not a
// patient (whose own record is the context).
func (r *Rule) SearchesPatients(u *User) bool {
	return r.patientSearch && u != nil && len(u.Patients) == 0 && !strings.HasPrefix(u.FHIRUser, "Patient/")
}

// ConfirmPatient asks the FHIR server whether a patient exists; an error
// when it does not or cannot say.
type ConfirmPatient func(ctx context.Context, id string) error

// MayHavePatient tells whether a user may have a patient in context: the
// one rule for the patient picker, the launcher page and EHR launches. A
// patient allowed only through patient search must be one the FHIR server
// confirms (confirm); err is confirm's error when it refused, and ok is
// then false.
func (r *Rule) MayHavePatient(ctx context.Context, u *User, patient string, confirm ConfirmPatient) (ok bool, err error) {
	rc := r.Reach(u)
	if !rc.PatientAllowed(patient) {
		return false, nil
	}
	if rc.own != "" || len(rc.patients) > 0 || rc.userScopes || !r.SearchesPatients(u) {
		return true, nil
	}
	if err := confirm(ctx, patient); err != nil {
		return false, err
	}
	return true, nil
}

// WithoutSystemScopes drops system/ scopes from a list of scopes asked
// for with a user.
func WithoutSystemScopes(list []string) []string {
	out := make([]string, 0, len(list))
	for _, s := range list {
		if sc, err := scopes.Parse(s); err == nil && sc.Context == scopes.System {
			continue
		}
		out = append(out, s)
	}
	return out
}
