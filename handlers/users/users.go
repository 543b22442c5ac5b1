// Package users holds the people who can sign in, as the configuration
// describes them, and the one rule of what a signed-in user may reach
// (Rule). The authorization server (authorize, consent, picker, launcher,
// EHR launches, refresh) and the guard both ask it.
package users

import "strings"

// User is a person who can sign in, from the configuration.
type User struct {
	Name         string
	PasswordHash string
	FHIRUser     string
	DisplayName  string
	Patients     []string
	// Scopes bound the resource scopes the user can grant and use; empty
	// for no bound.
	Scopes []string
}

// OwnPatient is the id of the user's own Patient record (fhir_user
// Patient/X), to whose compartment the user is confined; "" for a nil
// user and for a user who is not a patient.
func (u *User) OwnPatient() string {
	if u == nil {
		return ""
	}
	if own, ok := strings.CutPrefix(u.FHIRUser, "Patient/"); ok {
		return own
	}
	return ""
}
