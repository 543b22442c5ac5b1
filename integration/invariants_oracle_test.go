package integration

import (
	"net/url"
	"slices"
	"testing"
)

// TestInvariantOracle checks the reference model of the invariant tests on
// examples, so that a property failure points at the server, not at the
// oracle.
func TestInvariantOracle(t *testing.T) {
	may := func(ps ...string) func(string) bool { return func(p string) bool { return slices.Contains(ps, p) } }
	for _, tc := range []struct {
		typ, query string
		reach      []string
		want       []string // outside the reach
	}{
		{"Observation", "code=1", []string{"p1"}, []string{everyone}},
		{"Observation", "subject=p1", []string{"p1"}, []string{everyone}},
		{"Observation", "subject=Patient/p1", []string{"p1"}, nil},
		{"Observation", "subject=Patient/p1", []string{"p2"}, []string{"p1"}},
		{"Observation", "subject:Patient=p1", []string{"p1"}, nil},
		{"Observation", "subject=http://x/fhir/Patient/p1", []string{"p1"}, nil},
		{"Observation", "subject=Patient/p1&performer=Patient/p9", []string{"p1"}, nil},
		{"Observation", "subject=Patient/p1,Patient/p9", []string{"p1"}, []string{"p9"}},
		{"Observation", "subject=p9&subject=Patient/p1", []string{"p1"}, nil},
		{"Observation", "subject=Group/g1", []string{"p1"}, []string{everyone}},
		{"Observation", "subject.name=x&subject:missing=true", []string{"p1"}, []string{everyone}},
		{"Encounter", "patient=Patient/p2", []string{"p2"}, nil},
		{"Patient", "_id=p1", []string{"p1"}, nil},
		{"Patient", "_id=p1,p2&name=x", []string{"p1"}, []string{"p2"}},
		{"Patient", "name=x", []string{"p1"}, []string{everyone}},
	} {
		q, _ := url.ParseQuery(tc.query)
		v := analyzeForwarded(upstreamRequest{Method: "GET", Path: "/fhir/" + tc.typ, RawQuery: q.Encode()})
		if got := v.outsideReach(may(tc.reach...)); !slices.Equal(got, tc.want) {
			t.Errorf("%s?%s within %q: outside %q, want %q", tc.typ, tc.query, tc.reach, got, tc.want)
		}
	}
	for _, tc := range []struct {
		up   upstreamRequest
		want []string
	}{
		{upstreamRequest{Method: "GET", Path: "/fhir/Observation/o-p2"}, nil},
		{upstreamRequest{Method: "DELETE", Path: "/fhir/Observation/o-p2"}, []string{"p2"}},
		{upstreamRequest{Method: "DELETE", Path: "/fhir/Observation/focus-p2"}, []string{everyone}},
		{upstreamRequest{Method: "PUT", Path: "/fhir/Observation/missing-p2", Body: obsFor("p3")}, []string{"p3"}},
		{upstreamRequest{Method: "POST", Path: "/fhir/Observation", Body: `{"resourceType":"Observation","Subject":{"reference":"Patient/p4"}}`}, []string{"p4"}},
		{upstreamRequest{Method: "GET", Path: "/fhir/Patient/p5/Observation", RawQuery: "code=1"}, []string{"p5"}},
		{upstreamRequest{Method: "GET", Path: "/fhir/", RawQuery: "_type=Observation"}, []string{everyone}},
		{upstreamRequest{Method: "GET", Path: "/fhir/Medication", RawQuery: "code=1"}, nil},
		{upstreamRequest{Method: "POST", Path: "/fhir/", Body: bundleOf("batch", entry("GET", "Observation/o-p1", ""), entry("GET", "Encounter?patient=Patient/p2", ""))}, []string{"p1", "p2"}},
		{upstreamRequest{Method: "POST", Path: "/fhir/Patient", Body: `{"resourceType":"Patient","id":"p1"}`}, []string{"p1", everyone}},
	} {
		if got := analyzeForwarded(tc.up).outsideReach(may()); !slices.Equal(got, tc.want) {
			t.Errorf("analyzeForwarded(%v) reaches %q, want %q", tc.up, got, tc.want)
		}
	}
	// Writes go by the primary reference when there is one; reads by any
	// compartment element.
	for _, tc := range []struct {
		body    string
		written bool
		want    []string // outside p1's reach
	}{
		{`{"resourceType":"Observation","subject":{"reference":"Patient/p1"},"performer":[{"reference":"Patient/p9"}]}`, true, nil},
		{`{"resourceType":"Observation","subject":{"reference":"Patient/p9"},"performer":[{"reference":"Patient/p1"}]}`, true, []string{"p9"}},
		{`{"resourceType":"Observation","subject":{"reference":"Patient/p9"},"performer":[{"reference":"Patient/p1"}]}`, false, nil},
		{`{"resourceType":"Observation","performer":[{"reference":"Patient/p1"}]}`, true, nil},
		{`{"resourceType":"Observation","subject":{"reference":"Patient/p1"},"Subject":{"reference":"Patient/p9"}}`, true, []string{"p9"}},
		{`{"resourceType":"Observation","focus":{"reference":"Patient/p1"}}`, false, []string{everyone}},
		{`{"resourceType":"Patient","id":"p1"}`, true, nil},
		{`{"resourceType":"Medication"}`, true, nil},
	} {
		v := upstreamView{items: bodyItems(tc.body, tc.written)}
		if got := v.outsideReach(may("p1")); !slices.Equal(got, tc.want) {
			t.Errorf("%s (written %t) outside p1's reach: %q, want %q", tc.body, tc.written, got, tc.want)
		}
	}
	m := invModel{patientSearch: true}
	patient := &invUser{name: "p", fhirUser: "Patient/p1", scopes: []string{"user/*.rs"}}
	listed := &invUser{name: "l", patients: []string{"p2"}}
	explicit := &invUser{name: "e", scopes: []string{"user/Observation.rs"}}
	nothing := &invUser{name: "n"}
	for _, tc := range []struct {
		u          *invUser
		p          string
		flow, all  bool
		userScopes bool
	}{
		{patient, "p1", true, false, true}, {patient, "p2", false, false, true},
		{listed, "p2", true, false, false}, {listed, "p1", false, false, false},
		{explicit, "p9", true, true, true}, {nothing, "p3", true, false, false}, {nothing, "p9", false, false, false},
	} {
		if got := m.mayContext(tc.u, tc.p, false); got != tc.flow {
			t.Errorf("mayContext(%s, %s) = %t", tc.u.name, tc.p, got)
		}
		if got := m.mayReachAll(tc.u); got != tc.all {
			t.Errorf("mayReachAll(%s) = %t", tc.u.name, got)
		}
		if got := userMay(tc.u, "user/Observation.r"); got != tc.userScopes {
			t.Errorf("userMay(%s, user/Observation.r) = %t", tc.u.name, got)
		}
		if userMay(tc.u, "system/Observation.r") {
			t.Errorf("userMay(%s, system/…)", tc.u.name)
		}
	}
	if !m.mayContext(nothing, "p9", true) {
		t.Error("at the guard a patient-search user's token may name any patient")
	}
}
