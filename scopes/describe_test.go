package scopes

import (
	"strings"
	"testing"
)

func TestDescribe(t *testing.T) {
	for _, tt := range []struct {
		in, want string
	}{
		{"patient/Observation.rs", "Read and search your observations (lab results, vital signs)"},
		{"patient/Observation.rs?category=" + labCat, "Read and search your lab results"},
		{"patient/Observation.rs?category=laboratory", "Read and search your lab results"},
		{"patient/Observation.rs?category=vital-signs", "Read and search your vital signs"},
		{"user/*.cruds", "Create, read, update, delete and search all records you can access"},
		{"patient/*.read", "Read all of your health records"},
		{"patient/*.rs", "Read and search all of your health records"},
		{"system/*.rs", "Read and search all records"},
		{"user/*.*", "Create, read, update, delete and search all records you can access"},
		{"patient/*.write", "Create, update and delete all of your health records"},
		{"launch/patient", "Know which patient record is open"},
		{"openid", "Know who you are"},
		{"fhirUser", "Know who you are"},
		{"openid fhirUser", "Know who you are"},
		{"offline_access", "Keep access when you are not using the app"},
		{"online_access", "Keep access while you are signed in"},
		{"profile", "Know your name"},
		{"patient/Observation.read", "Read your observations (lab results, vital signs)"},
		{"patient/Condition.rs", "Read and search your conditions (problems and diagnoses)"},
		{"patient/MedicationRequest.r", "Read your prescriptions (medication orders)"},
		{"patient/AllergyIntolerance.rs", "Read and search your allergies and intolerances"},
		{"patient/Immunization.s", "Search your immunizations (vaccines)"},
		{"patient/Patient.r", "Read your personal details (name, birth date, contact details)"},
		{"user/Patient.r", "Read patient details (name, birth date, contact details) in records you can access"},
		{"user/Observation.rs", "Read and search observations (lab results, vital signs) in records you can access"},
		{"system/Observation.rs", "Read and search observations (lab results, vital signs) in all records"},
		{"user/Practitioner.r", "Read care provider details in records you can access"},
		{"patient/Goal.cu", "Create and update your health goals"},
		{"patient/Coverage.r", "Read your insurance coverage"},
		{"patient/NutritionOrder.rs", "Read and search your nutrition order records"},
		{"patient/HTTPThing.r", "Read your http thing records"},
		{"patient/Condition.rs?category=problem-list-item", "Read and search your problem list"},
		{"patient/Observation.rs?category=laboratory&code=1234-5", "Read and search your lab results where code is 1234-5"},
		{"patient/Observation.rs?code=http://loinc.org|1234-5", "Read and search your observations where code is 1234-5"},
		{"patient/Observation.rs?category=a&category=b", "Read and search your observations where category is a and category is b"},
		{"user/*.rs?_security=R", "Read and search records of every type where _security is R in records you can access"},
		{"bogus", `Unrecognized permission "bogus"`},
		{"", "No permission"},
		{" ", "No permission"},
		{"openid patient/*.read", "Know who you are; Read all of your health records"},
	} {
		if got := Describe(tt.in); got != tt.want {
			t.Errorf("Describe(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

// TestDescribeNeverEmpty describes every combination of context, a set of
// types and every permission set, and the known scopes.
func TestDescribeNeverEmpty(t *testing.T) {
	var all []string
	for s := range known {
		all = append(all, s)
	}
	types := []string{"*", "Observation", "Patient", "Zz", "NutritionOrder"}
	for _, ctx := range []string{"patient", "user", "system"} {
		for _, typ := range types {
			for p := Perms(1); p <= AllPerms; p++ {
				all = append(all, ctx+"/"+typ+"."+p.String())
			}
			for _, w := range []string{"read", "write", "*"} {
				all = append(all, ctx+"/"+typ+"."+w)
			}
			all = append(all, ctx+"/"+typ+".rs?category=laboratory")
		}
	}
	for _, s := range all {
		d := Describe(s)
		if strings.TrimSpace(d) == "" || strings.Contains(d, "  ") || d != strings.TrimSpace(d) {
			t.Errorf("Describe(%q) = %q", s, d)
		}
		if first := d[0]; first < 'A' || first > 'Z' {
			t.Errorf("Describe(%q) = %q does not start with a capital", s, d)
		}
	}
}
