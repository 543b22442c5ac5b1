package scopes

import (
	"errors"
	"net/url"
	"reflect"
	"testing"
)

const labCat = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"

func TestParseValid(t *testing.T) {
	tests := []struct {
		in    string
		ctx   Context
		typ   string
		perms Perms
		v1    bool
		query url.Values
	}{
		{"openid", "", "", 0, false, nil},
		{"fhirUser", "", "", 0, false, nil},
		{"profile", "", "", 0, false, nil},
		{"launch", "", "", 0, false, nil},
		{"launch/patient", "", "", 0, false, nil},
		{"launch/encounter", "", "", 0, false, nil},
		{"offline_access", "", "", 0, false, nil},
		{"online_access", "", "", 0, false, nil},
		{"patient/*.cruds", "patient", "*", AllPerms, false, nil},
		{"patient/Observation.rs", "patient", "Observation", Read | Search, false, nil},
		{"user/Patient.r", "user", "Patient", Read, false, nil},
		{"system/Encounter.s", "system", "Encounter", Search, false, nil},
		{"user/*.c", "user", "*", Create, false, nil},
		{"user/*.cud", "user", "*", Create | Update | Delete, false, nil},
		{"patient/Condition.cu", "patient", "Condition", Create | Update, false, nil},
		{"patient/Condition.ds", "patient", "Condition", Delete | Search, false, nil},
		{"patient/Condition.crds", "patient", "Condition", Create | Read | Delete | Search, false, nil},
		{"system/Group.u", "system", "Group", Update, false, nil},
		{"user/MedicationRequest.d", "user", "MedicationRequest", Delete, false, nil},
		{"patient/*.read", "patient", "*", Read | Search, true, nil},
		{"patient/Observation.read", "patient", "Observation", Read | Search, true, nil},
		{"user/*.write", "user", "*", Create | Update | Delete, true, nil},
		{"system/*.*", "system", "*", AllPerms, true, nil},
		{"user/Observation.*", "user", "Observation", AllPerms, true, nil},
		{"patient/Observation.rs?category=" + labCat, "patient", "Observation", Read | Search, false,
			url.Values{"category": {labCat}}},
		{"patient/Observation.rs?category=laboratory&code=1234-5", "patient", "Observation", Read | Search, false,
			url.Values{"category": {"laboratory"}, "code": {"1234-5"}}},
		{"patient/Observation.rs?category=a&category=b", "patient", "Observation", Read | Search, false,
			url.Values{"category": {"a", "b"}}},
		{"patient/Observation.rs?code=http%3A%2F%2Floinc.org%7C1234-5", "patient", "Observation", Read | Search, false,
			url.Values{"code": {"http://loinc.org|1234-5"}}},
		{"user/*.rs?_security=R", "user", "*", Read | Search, false, url.Values{"_security": {"R"}}},
		{"patient/Ab.r", "patient", "Ab", Read, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			want := Scope{Raw: tt.in, Context: tt.ctx, ResourceType: tt.typ, Perms: tt.perms, V1: tt.v1, Query: tt.query}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Parse(%q) = %+v, want %+v", tt.in, got, want)
			}
			if got.IsResource() != (tt.ctx != "") {
				t.Errorf("IsResource = %v", got.IsResource())
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	for _, in := range []string{
		"",
		"openID",                     // case matters
		"launch/imagingstudy",        // not known here
		"launch/patient?role=x",      // not known here
		"offline",                    // unknown
		"__custom",                   // extension scopes are unknown
		"patient",                    // no slash
		"patient/",                   // nothing after slash
		"doctor/Observation.rs",      // bad context
		"Patient/Observation.rs",     // context case
		"/Observation.rs",            // empty context
		"*.*",                        // no context
		"patient/Observation",        // no perms
		"patient/Observation.",       // empty perms
		"patient/.rs",                // empty type
		"patient/observation.rs",     // lowercase type
		"patient/O.rs",               // one-letter type
		"patient/Observation1.rs",    // digit in type
		"patient/Obs_ervation.rs",    // underscore in type
		"patient/**.rs",              // double wildcard
		"patient/Observation.sr",     // order violation
		"patient/Observation.dus",    // order violation
		"patient/Observation.rr",     // repeated letter
		"patient/Observation.crudss", // repeated letter
		"patient/Observation.x",      // undefined letter
		"patient/Observation.R",      // uppercase letter
		"patient/Observation.rd.s",   // extra dot
		"patient/Observation.Read",   // v1 word case
		"patient/Observation.reads",  // not a v1 word
		"patient/Observation.**",     // not a v1 word
		"patient/Observation.read?category=laboratory", // v1 with query
		"patient/*.*?a=b",                  // v1 with query
		"patient/Observation.rs?",          // empty query
		"patient/Observation.rs?category",  // no '='
		"patient/Observation.rs?=x",        // no name
		"patient/Observation.rs?category=", // no value
		"patient/Observation.rs?a=1&&b=2",  // empty segment
		"patient/Observation.rs?a=1&",      // trailing '&'
		"patient/Observation.rs?a=%zz",     // bad escape
		"patient/Observation.rs?a=1;b=2",   // semicolon
		"patient/Observation.rs ",          // trailing space
		" openid",                          // leading space
		"openid fhirUser",                  // two scopes
		"patient/Observation.rs?a=\"x\"",   // quote not allowed in a scope token
		"patient/Observation.rs?a=é",       // non-ASCII
		"patient/Observation.r\ts",         // control character
	} {
		t.Run(in, func(t *testing.T) {
			sc, err := Parse(in)
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want an error", in, sc)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
}

func TestV1Mapping(t *testing.T) {
	for _, tt := range []struct {
		v1, v2 string
	}{
		{"patient/Observation.read", "patient/Observation.rs"},
		{"patient/Observation.write", "patient/Observation.cud"},
		{"patient/Observation.*", "patient/Observation.cruds"},
		{"user/*.read", "user/*.rs"},
		{"system/*.write", "system/*.cud"},
		{"system/*.*", "system/*.cruds"},
	} {
		a, err := Parse(tt.v1)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Parse(tt.v2)
		if err != nil {
			t.Fatal(err)
		}
		if !a.V1 || b.V1 {
			t.Errorf("%s V1=%v, %s V1=%v", tt.v1, a.V1, tt.v2, b.V1)
		}
		if a.Perms != b.Perms || a.Context != b.Context || a.ResourceType != b.ResourceType {
			t.Errorf("%s = %+v, want the meaning of %s = %+v", tt.v1, a, tt.v2, b)
		}
		if a.String() != tt.v1 {
			t.Errorf("String() = %q, want the v1 form %q", a.String(), tt.v1)
		}
	}
}

func TestPermsString(t *testing.T) {
	for _, tt := range []struct {
		p    Perms
		want string
	}{
		{0, ""},
		{Create, "c"},
		{Read | Search, "rs"},
		{Search | Read, "rs"},
		{Create | Update | Delete, "cud"},
		{AllPerms, "cruds"},
		{Delete | Create, "cd"},
	} {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("Perms(%d).String() = %q, want %q", tt.p, got, tt.want)
		}
	}
	if !AllPerms.Has(Read|Search) || (Read | Search).Has(Create) || !Read.Has(0) {
		t.Error("Has")
	}
}

func TestScopeString(t *testing.T) {
	for _, tt := range []struct {
		in, want string
	}{
		{"openid", "openid"},
		{"launch/patient", "launch/patient"},
		{"patient/*.cruds", "patient/*.cruds"},
		{"user/Observation.read", "user/Observation.read"},
		{"system/*.*", "system/*.*"},
		{"patient/Observation.rs?category=" + labCat, "patient/Observation.rs?category=" + labCat},
		// Canonical query: keys sorted, readable '|' ':' '/', '+' means space.
		{"patient/Observation.rs?code=x&category=y", "patient/Observation.rs?category=y&code=x"},
		{"patient/Observation.rs?code=http%3A%2F%2Floinc.org%7C1", "patient/Observation.rs?code=http://loinc.org|1"},
		{"patient/Observation.rs?a=b+c", "patient/Observation.rs?a=b%20c"},
		{"patient/Observation.rs?a=%2B%26%3D", "patient/Observation.rs?a=%2B%26%3D"},
		{"patient/Observation.rs?a=2&a=1", "patient/Observation.rs?a=2&a=1"},
	} {
		sc, err := Parse(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		got := sc.String()
		if got != tt.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
		again, err := Parse(got)
		if err != nil || !reflect.DeepEqual(again.Query, sc.Query) || again.Perms != sc.Perms {
			t.Errorf("Parse(%q) = %+v, %v; want the meaning of %+v", got, again, err, sc)
		}
	}
	// A hand-built scope gets its letters in order.
	s := Scope{Context: "user", ResourceType: "Patient", Perms: Search | Read}
	if got := s.String(); got != "user/Patient.rs" {
		t.Errorf("String() = %q", got)
	}
	s = Scope{Context: "user", ResourceType: "Patient", Perms: Read, V1: true}
	if got := s.String(); got != "user/Patient.r" {
		t.Errorf("String() of a v1 scope with no v1 word = %q", got)
	}
}

func TestSplit(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{"", []string{}},
		{"   ", []string{}},
		{"openid", []string{"openid"}},
		{" openid  fhirUser ", []string{"openid", "fhirUser"}},
		{"b a b c a", []string{"b", "a", "c"}},
		{"openid\tlaunch\nprofile", []string{"openid", "launch", "profile"}},
	} {
		got := Split(tt.in)
		if len(got) != len(tt.want) || (len(got) > 0 && !reflect.DeepEqual(got, tt.want)) {
			t.Errorf("Split(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseAll(t *testing.T) {
	parsed, unknown := ParseAll([]string{"openid", "", "bogus", "patient/*.rs", "openid", "bogus", "user/x.r"})
	var got []string
	for _, p := range parsed {
		got = append(got, p.Raw)
	}
	if !reflect.DeepEqual(got, []string{"openid", "patient/*.rs"}) {
		t.Errorf("parsed = %q", got)
	}
	if !reflect.DeepEqual(unknown, []string{"bogus", "user/x.r"}) {
		t.Errorf("unknown = %q", unknown)
	}
	if p, u := ParseAll(nil); p != nil || u != nil {
		t.Errorf("ParseAll(nil) = %v, %v", p, u)
	}
}
