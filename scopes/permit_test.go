package scopes

import (
	"net/url"
	"testing"
)

func mustParseAll(t *testing.T, list ...string) []Scope {
	t.Helper()
	parsed, unknown := ParseAll(list)
	if len(unknown) > 0 {
		t.Fatalf("unknown scopes %q", unknown)
	}
	return parsed
}

func TestPermits(t *testing.T) {
	lab := url.Values{"category": {labCat}}
	tests := []struct {
		name    string
		granted []string
		ctx     Context
		typ     string
		need    Perms
		params  url.Values
		want    bool
	}{
		{"exact", []string{"patient/Observation.rs"}, "patient", "Observation", Read, nil, true},
		{"search", []string{"patient/Observation.rs"}, "patient", "Observation", Search, nil, true},
		{"missing perm", []string{"patient/Observation.rs"}, "patient", "Observation", Update, nil, false},
		{"two perms needed", []string{"patient/Observation.r"}, "patient", "Observation", Read | Search, nil, false},
		{"two perms from two scopes", []string{"patient/Observation.r", "patient/*.s"}, "patient", "Observation", Read | Search, nil, true},
		{"perms never joined across contexts", []string{"patient/Observation.r", "user/Observation.s"}, "", "Observation", Read | Search, nil, false},
		{"wildcard scope", []string{"user/*.cruds"}, "user", "Condition", Delete, nil, true},
		{"other type", []string{"patient/Observation.rs"}, "patient", "Condition", Read, nil, false},
		{"system-level needs wildcard", []string{"patient/Observation.rs"}, "patient", "*", Search, nil, false},
		{"system-level with wildcard", []string{"patient/*.rs"}, "patient", "*", Search, nil, true},
		{"context mismatch", []string{"user/*.cruds"}, "patient", "Observation", Read, nil, false},
		{"any context", []string{"user/*.cruds"}, "", "Observation", Read, nil, true},
		{"v1 read gives search", []string{"patient/Observation.read"}, "patient", "Observation", Search, nil, true},
		{"v1 write gives no read", []string{"patient/*.write"}, "patient", "Observation", Read, nil, false},
		{"v1 write gives update", []string{"patient/*.write"}, "patient", "Observation", Update, nil, true},
		{"empty need refused", []string{"user/*.cruds"}, "user", "Observation", 0, nil, false},
		{"empty type refused", []string{"user/*.cruds"}, "user", "", Read, nil, false},
		{"non-resource scopes ignored", []string{"openid", "launch/patient"}, "", "Patient", Read, nil, false},
		{"nothing granted", nil, "", "Patient", Read, nil, false},

		{"restricted: search with restriction", []string{"patient/Observation.rs?category=" + labCat},
			"patient", "Observation", Search, lab, true},
		{"restricted: extra params narrow", []string{"patient/Observation.rs?category=" + labCat},
			"patient", "Observation", Search, url.Values{"category": {labCat}, "code": {"1234-5"}}, true},
		{"restricted: repeated param (AND) narrows", []string{"patient/Observation.rs?category=" + labCat},
			"patient", "Observation", Search, url.Values{"category": {"vital-signs", labCat}}, true},
		{"restricted: search without restriction", []string{"patient/Observation.rs?category=" + labCat},
			"patient", "Observation", Search, nil, false},
		{"restricted: other value", []string{"patient/Observation.rs?category=" + labCat},
			"patient", "Observation", Search, url.Values{"category": {"vital-signs"}}, false},
		{"restricted: OR list is broader", []string{"patient/Observation.rs?category=laboratory"},
			"patient", "Observation", Search, url.Values{"category": {"laboratory,vital-signs"}}, false},
		{"restricted: literal, request with system", []string{"patient/Observation.rs?category=laboratory"},
			"patient", "Observation", Search, lab, false},
		{"restricted: literal, request without system", []string{"patient/Observation.rs?category=" + labCat},
			"patient", "Observation", Search, url.Values{"category": {"laboratory"}}, false},
		{"restricted: modifier is another key", []string{"patient/Observation.rs?category=laboratory"},
			"patient", "Observation", Search, url.Values{"category:not": {"laboratory"}}, false},
		{"restricted: read by id without params", []string{"patient/Observation.rs?category=" + labCat},
			"patient", "Observation", Read, nil, false},
		{"restricted: read with params", []string{"patient/Observation.rs?category=" + labCat},
			"patient", "Observation", Read, url.Values{"_id": {"1"}, "category": {labCat}}, true},
		{"restricted: never create", []string{"patient/Observation.cruds?category=" + labCat},
			"patient", "Observation", Create, lab, false},
		{"restricted: never update", []string{"patient/Observation.cruds?category=" + labCat},
			"patient", "Observation", Update, lab, false},
		{"restricted: never delete", []string{"patient/Observation.cruds?category=" + labCat},
			"patient", "Observation", Delete, lab, false},
		{"restricted: all pairs needed", []string{"patient/Observation.rs?category=laboratory&code=x"},
			"patient", "Observation", Search, url.Values{"category": {"laboratory"}}, false},
		{"restricted: all pairs given", []string{"patient/Observation.rs?category=laboratory&code=x"},
			"patient", "Observation", Search, url.Values{"category": {"laboratory"}, "code": {"x"}}, true},
		{"restricted plus unrestricted write", []string{"patient/Observation.rs?category=" + labCat, "patient/Observation.c"},
			"patient", "Observation", Create, nil, true},
		{"restricted wildcard", []string{"patient/*.rs?_security=R"},
			"patient", "Condition", Search, url.Values{"_security": {"R"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := mustParseAll(t, tt.granted...)
			if got := Permits(g, tt.ctx, tt.typ, tt.need, tt.params); got != tt.want {
				t.Errorf("Permits(%q, %q, %q, %s, %v) = %v, want %v", tt.granted, tt.ctx, tt.typ, tt.need, tt.params, got, tt.want)
			}
		})
	}
}
