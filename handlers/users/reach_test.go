package users_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/smartcaddy/smartauth/handlers/users"
	"github.com/smartcaddy/smartauth/scopes"
)

// The people of these tests, one per kind the rule tells apart.
var (
	patientUser = &users.User{Name: "pat", FHIRUser: "Patient/p1", Patients: []string{"p2"}, Scopes: []string{"patient/*.rs"}}
	listed      = &users.User{Name: "alice", FHIRUser: "Practitioner/a", Patients: []string{"p1", "p2"}}
	granted     = &users.User{Name: "dora", FHIRUser: "Practitioner/d", Scopes: []string{"user/Observation.rs patient/*.rs"}}
	unlisted    = &users.User{Name: "carol", FHIRUser: "Practitioner/c"}
)

func TestReach(t *testing.T) {
	for _, search := range []bool{false, true} {
		rule := users.New(users.Options{PatientSearch: search})
		for _, tc := range []struct {
			u          *users.User
			own        string
			userScopes bool
			allowed    []string
			refused    []string
		}{
			{u: nil, refused: []string{"p1", ""}},
			{u: patientUser, own: "p1", userScopes: true, allowed: []string{"p1"}, refused: []string{"p2", ""}},
			{u: listed, allowed: []string{"p1", "p2"}, refused: []string{"p3", ""}},
			{u: granted, userScopes: true, allowed: []string{"p1", "p9"}, refused: []string{""}},
			{u: unlisted},
		} {
			r := rule.Reach(tc.u)
			name := "nil"
			if tc.u != nil {
				name = tc.u.Name
			}
			if r.Own() != tc.own || r.UserScopes() != tc.userScopes {
				t.Errorf("search %v, %s: own %q userScopes %v, want %q %v", search, name, r.Own(), r.UserScopes(), tc.own, tc.userScopes)
			}
			allowed, refused := tc.allowed, tc.refused
			if tc.u == unlisted {
				// Any patient only through patient search.
				if search {
					allowed = []string{"p1", "p9"}
				} else {
					refused = []string{"p1", "p9"}
				}
			}
			for _, id := range allowed {
				if !r.PatientAllowed(id) {
					t.Errorf("search %v, %s: patient %q refused", search, name, id)
				}
			}
			for _, id := range refused {
				if r.PatientAllowed(id) {
					t.Errorf("search %v, %s: patient %q allowed", search, name, id)
				}
			}
			for _, raw := range []string{"system/*.rs", "system/Patient.r"} {
				sc, _ := scopes.Parse(raw)
				if r.ScopeAllowed(sc) {
					t.Errorf("search %v, %s: %s within reach", search, name, raw)
				}
			}
			sc, _ := scopes.Parse("user/Observation.rs")
			if r.ScopeAllowed(sc) != tc.userScopes {
				t.Errorf("search %v, %s: user/ scope allowed %v, want %v", search, name, !tc.userScopes, tc.userScopes)
			}
		}
	}
}

func TestMayGrant(t *testing.T) {
	for _, tc := range []struct {
		u     *users.User
		scope string
		want  bool
	}{
		{nil, "openid", false},
		{listed, "openid", true},
		{listed, "launch/patient", true},
		{listed, "not-a-scope", false},
		{listed, "patient/Observation.rs", true},
		{listed, "user/Observation.rs", false},
		{listed, "system/Observation.rs", false},
		{granted, "user/Observation.rs", true},
		{granted, "user/Observation.r", true},
		{granted, "user/Condition.rs", false},
		{granted, "patient/Condition.rs", true},
		{patientUser, "patient/Observation.rs", true},
		{patientUser, "patient/Observation.cruds", false},
		{patientUser, "user/Observation.rs", false},
	} {
		if got := users.MayGrant(tc.u, tc.scope); got != tc.want {
			t.Errorf("MayGrant(%v, %q) = %v, want %v", tc.u, tc.scope, got, tc.want)
		}
	}
}

func TestMayHavePatient(t *testing.T) {
	ctx := context.Background()
	var asked []string
	known := func(_ context.Context, id string) error {
		asked = append(asked, id)
		if id != "p9" {
			return errors.New("no such patient")
		}
		return nil
	}
	rule := users.New(users.Options{PatientSearch: true})
	for _, tc := range []struct {
		u       *users.User
		patient string
		want    bool
		asks    bool
	}{
		{unlisted, "p9", true, true},
		{unlisted, "p8", false, true},
		{unlisted, "", false, false},
		{listed, "p1", true, false},
		{listed, "p9", false, false},
		{granted, "p8", true, false},
		{patientUser, "p1", true, false},
		{patientUser, "p9", false, false},
		{nil, "p9", false, false},
	} {
		asked = nil
		ok, err := rule.MayHavePatient(ctx, tc.u, tc.patient, known)
		if ok != tc.want || (err != nil) != (tc.asks && !tc.want) || (len(asked) > 0) != tc.asks {
			t.Errorf("MayHavePatient(%v, %q) = %v, %v (asked %v), want %v (asks %v)", tc.u, tc.patient, ok, err, asked, tc.want, tc.asks)
		}
	}
	if !rule.SearchesPatients(unlisted) || rule.SearchesPatients(listed) || rule.SearchesPatients(patientUser) || rule.SearchesPatients(nil) {
		t.Error("SearchesPatients: only a user without a list who is not a patient searches")
	}
	if users.New(users.Options{}).SearchesPatients(unlisted) {
		t.Error("SearchesPatients without patient search configured")
	}
}

func TestWithoutSystemScopes(t *testing.T) {
	got := users.WithoutSystemScopes([]string{"openid", "system/*.rs", "patient/*.rs", "bogus", "system/Patient.r"})
	if want := []string{"openid", "patient/*.rs", "bogus"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestOwnPatient(t *testing.T) {
	for fhirUser, want := range map[string]string{"Patient/p1": "p1", "Patient/": "", "Practitioner/p1": "", "": ""} {
		if got := (&users.User{FHIRUser: fhirUser}).OwnPatient(); got != want {
			t.Errorf("OwnPatient of %q = %q, want %q", fhirUser, got, want)
		}
	}
	if (*users.User)(nil).OwnPatient() != "" {
		t.Error("a nil user has an own patient")
	}
}
