package scopes

import (
	"reflect"
	"strings"
	"testing"
)

func TestGrant(t *testing.T) {
	const lab = "patient/Observation.rs?category=" + labCat
	tests := []struct {
		name      string
		requested string
		allowed   []string
		want      []string
	}{
		{"empty allowed allows all known", "openid fhirUser patient/*.cruds user/Observation.read",
			nil, []string{"openid", "fhirUser", "patient/*.cruds", "user/Observation.read"}},
		{"empty allowed still drops unknown", "openid bogus patient/observation.rs launch/imagingstudy",
			[]string{}, []string{"openid"}},
		{"blank allowed allows nothing", "openid patient/*.rs", []string{""}, []string{}},
		{"unknown allowed allows nothing", "openid", []string{"bogus"}, []string{}},
		{"non-resource needs identical string", "openid fhirUser profile launch launch/patient",
			[]string{"openid", "launch"}, []string{"openid", "launch"}},
		{"context mismatch user does not cover patient", "patient/Observation.rs user/Observation.rs",
			[]string{"user/*.cruds"}, []string{"user/Observation.rs"}},
		{"context mismatch patient does not cover system", "system/Observation.rs",
			[]string{"patient/*.cruds"}, []string{}},
		{"wildcard covers any type", "patient/Observation.rs patient/Condition.r patient/Foo.s",
			[]string{"patient/*.rs"}, []string{"patient/Observation.rs", "patient/Condition.r", "patient/Foo.s"}},
		{"named type does not cover wildcard", "patient/*.rs",
			[]string{"patient/Observation.cruds"}, []string{}},
		{"named type does not cover another type", "patient/Condition.r",
			[]string{"patient/Observation.cruds"}, []string{}},
		{"perms must be a subset", "patient/Observation.rs patient/Observation.cruds patient/Observation.c",
			[]string{"patient/Observation.rs"}, []string{"patient/Observation.rs"}},
		{"write alone cannot read", "patient/Observation.r patient/Observation.cu",
			[]string{"patient/*.write"}, []string{"patient/Observation.cu"}},
		{"v2 allowed covers v1 request", "patient/Observation.read patient/Observation.write",
			[]string{"patient/*.rs"}, []string{"patient/Observation.read"}},
		{"v1 allowed covers v2 request", "patient/Observation.rs patient/Observation.s patient/Observation.cud",
			[]string{"patient/*.read"}, []string{"patient/Observation.rs", "patient/Observation.s"}},
		{"v1 star covers all", "user/Observation.cruds user/*.* user/*.write",
			[]string{"user/*.*"}, []string{"user/Observation.cruds", "user/*.*", "user/*.write"}},
		{"union of allowed scopes", "patient/Observation.rs patient/Observation.cruds",
			[]string{"patient/Observation.r", "patient/*.s"}, []string{"patient/Observation.rs"}},
		{"unrestricted allowed covers restricted request", lab,
			[]string{"patient/Observation.rs"}, []string{lab}},
		{"restricted allowed does not cover unrestricted request", "patient/Observation.rs patient/Observation.r",
			[]string{lab}, []string{}},
		{"restricted allowed covers same restriction", lab + " patient/Observation.s?category=" + labCat,
			[]string{lab}, []string{lab, "patient/Observation.s?category=" + labCat}},
		{"restricted allowed covers narrower request", lab + "&code=1234-5",
			[]string{lab}, []string{lab + "&code=1234-5"}},
		{"restricted allowed: other value not covered", "patient/Observation.rs?category=vital-signs",
			[]string{lab}, []string{}},
		{"restricted allowed: literal, system-less value not covered", "patient/Observation.rs?category=laboratory",
			[]string{lab}, []string{}},
		{"restricted allowed: same type only", "patient/Condition.rs?category=" + labCat,
			[]string{"patient/*.rs?category=" + labCat}, []string{}},
		{"restricted wildcard covers restricted wildcard", "patient/*.rs?_security=R",
			[]string{"patient/*.rs?_security=R"}, []string{"patient/*.rs?_security=R"}},
		{"restricted allowed, perms still checked", "patient/Observation.cruds?category=" + labCat,
			[]string{lab}, []string{}},
		{"order kept and deduplicated", "patient/*.rs openid patient/*.rs launch openid",
			[]string{"openid", "launch", "patient/*.cruds"}, []string{"patient/*.rs", "openid", "launch"}},
		{"requested form kept", "patient/Observation.read",
			[]string{"patient/*.cruds"}, []string{"patient/Observation.read"}},
		{"unknown dropped", "openid patient/Observation.sr launch/imagingstudy online_access",
			[]string{"openid", "online_access", "patient/*.cruds"}, []string{"openid", "online_access"}},
		{"allowed given as one scope parameter", "openid patient/Observation.rs",
			[]string{"openid patient/*.rs"}, []string{"openid", "patient/Observation.rs"}},
		{"nothing requested", "", []string{"openid"}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Grant(Split(tt.requested), tt.allowed)
			if got == nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Grant(%q, %q) = %#v, want %#v", tt.requested, tt.allowed, got, tt.want)
			}
		})
	}
}

func TestCovers(t *testing.T) {
	granted := []string{"openid", "fhirUser", "offline_access", "patient/Observation.rs", "patient/Condition.read",
		"user/*.s", "patient/DiagnosticReport.rs?category=LAB"}
	tests := []struct {
		name string
		want string
		ok   bool
	}{
		{"same set", "openid fhirUser offline_access patient/Observation.rs patient/Condition.read user/*.s patient/DiagnosticReport.rs?category=LAB", true},
		{"nothing asked", "", true},
		{"subset", "openid patient/Observation.rs", true},
		{"narrower perms", "patient/Observation.r", true},
		{"v1 to v2 form", "patient/Condition.rs", true},
		{"v2 to v1 form", "patient/Observation.read", true},
		{"narrower by query", "patient/Observation.rs?category=" + labCat, true},
		{"same restriction", "patient/DiagnosticReport.s?category=LAB", true},
		{"narrower than restriction", "patient/DiagnosticReport.s?category=LAB&code=x", true},
		{"escalation: more perms", "patient/Observation.rsu", false},
		{"escalation: write", "patient/Condition.write", false},
		{"escalation: new type", "patient/Procedure.rs", false},
		{"escalation: wildcard", "patient/*.rs", false},
		{"escalation: other context", "user/Observation.rs", false},
		{"escalation: user read from search", "user/Observation.r", false},
		{"escalation: drop restriction", "patient/DiagnosticReport.rs", false},
		{"escalation: other restriction", "patient/DiagnosticReport.rs?category=RAD", false},
		{"escalation: new non-resource scope", "openid launch", false},
		{"unknown wanted", "openid bogus", false},
		{"unparseable wanted", "patient/Observation.sr", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Covers(granted, Split(tt.want)); got != tt.ok {
				t.Errorf("Covers(granted, %q) = %v, want %v", tt.want, got, tt.ok)
			}
		})
	}
	if Covers(nil, []string{"openid"}) {
		t.Error("an empty granted list must cover nothing")
	}
	if !Covers(nil, nil) {
		t.Error("nothing wanted is covered")
	}
	if Covers([]string{"bogus"}, []string{"bogus"}) {
		t.Error("unknown scopes never cover")
	}
}

func TestLocked(t *testing.T) {
	for _, tt := range []struct {
		s    string
		want bool
	}{
		{"openid", true},
		{"launch", true},
		{"launch/patient", true},
		{"launch/encounter", true},
		{"fhirUser", false},
		{"profile", false},
		{"offline_access", false},
		{"online_access", false},
		{"patient/*.rs", false},
		{"launchpad", false},
		{"launch/imagingstudy", false},
		{"", false},
	} {
		if got := Locked(tt.s); got != tt.want {
			t.Errorf("Locked(%q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}

func TestNeedsPatient(t *testing.T) {
	for _, tt := range []struct {
		in   []string
		want bool
	}{
		{nil, false},
		{[]string{"openid", "launch/patient"}, false},
		{[]string{"user/*.rs", "system/*.rs"}, false},
		{[]string{"openid", "patient/Observation.rs"}, true},
		{[]string{"patient/*.read"}, true},
		{[]string{"patient/Observation.rs?category=" + labCat}, true},
		{[]string{"openid patient/*.rs"}, true},
		{[]string{"patient/observation.rs"}, false},
		{[]string{"patient/"}, false},
	} {
		if got := NeedsPatient(tt.in); got != tt.want {
			t.Errorf("NeedsPatient(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestGrantUnboundedNeverSystem: a client without a scope list (the
// default, and every client registered with an empty scope) may be granted
// every known non-resource scope and every patient/ and user/ scope, never
// a system/ one; a list that covers a system/ scope grants it.
func TestGrantUnboundedNeverSystem(t *testing.T) {
	req := []string{"openid", "fhirUser", "launch", "launch/patient", "offline_access", "system/*.cruds",
		"system/Patient.rs", "system/Observation.read", "user/*.cruds", "patient/Observation.rs?category=laboratory", "junk"}
	want := "openid fhirUser launch launch/patient offline_access user/*.cruds patient/Observation.rs?category=laboratory"
	for _, allowed := range [][]string{nil, {}} {
		if got := strings.Join(Grant(req, allowed), " "); got != want {
			t.Errorf("Grant(%v): %q, want %q", allowed, got, want)
		}
	}
	if got := strings.Join(Grant(req, []string{"system/*.rs"}), " "); got != "system/Patient.rs system/Observation.read" {
		t.Errorf("Grant with system/*.rs: %q", got)
	}
}
