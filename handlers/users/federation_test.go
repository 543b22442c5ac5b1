package users

import (
	"slices"
	"testing"

	"github.com/smartcaddy/smartauth/store"
)

// TestNarrowScopes: claims narrow the operator's bound, never widen it;
// without an operator bound no user/ scope survives.
func TestNarrowScopes(t *testing.T) {
	for _, tc := range []struct {
		operator, claimed, want []string
	}{
		{[]string{"user/*.rs"}, []string{"user/Observation.rs", "user/*.cruds", "patient/*.rs"}, []string{"user/Observation.rs"}},
		{[]string{"user/*.rs", "patient/*.rs"}, []string{"patient/Observation.r", "system/*.rs", "launch", "bogus"}, []string{"patient/Observation.r"}},
		{nil, []string{"user/*.rs", "patient/Observation.rs"}, []string{"patient/Observation.rs"}},
		{[]string{"user/*.rs"}, nil, []string{}},
	} {
		if got := NarrowScopes(tc.operator, tc.claimed); !slices.Equal(got, tc.want) {
			t.Errorf("NarrowScopes(%v, %v) = %v, want %v", tc.operator, tc.claimed, got, tc.want)
		}
	}
}

// TestFederationFind: an unlisted user exists only while its provider is
// configured and accepts unlisted users, under the provider's current
// bound, and only for its own provider's subjects.
func TestFederationFind(t *testing.T) {
	f := NewFederation(map[string]Provider{
		"hospital": {AcceptUnlisted: true, Scopes: []string{"user/*.rs"}},
		"closed":   {AcceptUnlisted: false},
	})
	rec := &store.FederatedUser{Provider: "hospital", FHIRUser: "Practitioner/E1", DisplayName: "Erin"}
	u := f.Find("hospital|erin", rec)
	if u == nil || u.Name != "hospital|erin" || u.FHIRUser != "Practitioner/E1" || !slices.Equal(u.Scopes, []string{"user/*.rs"}) {
		t.Fatalf("Find: %+v", u)
	}
	if !New(Options{}).Reach(u).UserScopes() {
		t.Error("an unlisted practitioner with the operator's user/ bound has no user/ scopes")
	}
	for name, tc := range map[string]struct {
		sub string
		rec *store.FederatedUser
	}{
		"another provider's subject": {"other|erin", rec},
		"no profile":                 {"hospital|erin", nil},
		"provider closed":            {"closed|erin", &store.FederatedUser{Provider: "closed"}},
		"provider removed":           {"gone|erin", &store.FederatedUser{Provider: "gone"}},
		"bound narrowed to nothing":  {"hospital|erin", &store.FederatedUser{Provider: "hospital", Scopes: []string{"user/*.cruds"}}},
	} {
		if u := f.Find(tc.sub, tc.rec); u != nil {
			t.Errorf("%s: found %+v", name, u)
		}
	}
	var none *Federation
	if none.Find("hospital|erin", rec) != nil {
		t.Error("a nil federation found a user")
	}
	configured := map[string]*User{"hospital|erin": {Name: "hospital|erin"}}
	if Lookup(configured, f, "hospital|erin", rec) != configured["hospital|erin"] {
		t.Error("Lookup prefers the federation over a configured user")
	}
	if got := FromToken("hospital|erin", "https://fhir.example/r4/Patient/p9", "https://fhir.example/r4"); got == nil || got.FHIRUser != "Patient/p9" || got.Provider != "hospital" {
		t.Errorf("FromToken: %+v", got)
	}
	if FromToken("alice", "", "https://fhir.example") != nil {
		t.Error("FromToken of a configured user's subject")
	}
}
