package integration

import (
	"fmt"
	"strings"

	"pgregory.net/rapid"
)

// Generators of the invariant tests: configurations (a "universe" of
// clients and users), requested scopes, tokens and FHIR requests.

// invClient is a client of the generated configuration: from the
// Caddyfile, or registered through the registration API at start.
type invClient struct {
	id         string
	registered bool
	public     bool
	// hybrid clients may also use client_credentials (their scopes list
	// system/ scopes) besides the authorization code grant.
	hybrid bool
	// scopes is the client's list; empty: no list (unbounded).
	scopes []string
	// secret is set at start for confidential clients.
	secret string
}

// universe is one generated configuration.
type universe struct {
	trusted         bool // sign_in trusted_identity behind basic_auth, else password
	patientSearch   bool
	rememberConsent bool
	outside         []string // allow_outside_compartment
	clients         []*invClient
	users           []*invUser
}

var (
	invScopeTypes  = []string{"*", "Patient", "Observation", "Encounter", "Condition", "AllergyIntolerance", "Medication", "Organization"}
	invQueries     = []string{"category=laboratory", "code=1234", "category=laboratory&code=1234"}
	invNonResource = []string{"openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter", "offline_access", "online_access"}
	invJunk        = []string{"everything", "patient/observation.rs", "user/*.x", "system/*.sr", "launch/imagingstudy",
		"__introspect", "Patient/*.rs", "user/Observation", "patient/*.rs?", "system/*", "patient/*.rs?category"}
)

// genResourceScope draws a resource scope of one of the contexts: any
// type (or *), v2 letters (sometimes with a query restriction) or a v1
// word.
func genResourceScope(contexts ...string) *rapid.Generator[string] {
	return rapid.Custom(func(t *rapid.T) string {
		ctx := rapid.SampledFrom(contexts).Draw(t, "ctx")
		typ := rapid.SampledFrom(invScopeTypes).Draw(t, "type")
		if rapid.IntRange(0, 3).Draw(t, "v1") == 0 {
			return ctx + "/" + typ + "." + rapid.SampledFrom([]string{"read", "write", "*"}).Draw(t, "word")
		}
		var perm strings.Builder
		for _, c := range "cruds" {
			if rapid.Bool().Draw(t, "letter") {
				perm.WriteRune(c)
			}
		}
		if perm.Len() == 0 {
			perm.WriteString("rs")
		}
		s := ctx + "/" + typ + "." + perm.String()
		if rapid.IntRange(0, 4).Draw(t, "restricted") == 0 {
			s += "?" + rapid.SampledFrom(invQueries).Draw(t, "query")
		}
		return s
	})
}

// genScope draws any scope an app might ask for: resource scopes of every
// context, the non-resource scopes, or junk.
func genScope() *rapid.Generator[string] {
	return rapid.Custom(func(t *rapid.T) string {
		switch rapid.IntRange(0, 9).Draw(t, "kind") {
		case 0, 1, 2:
			return rapid.SampledFrom(invNonResource).Draw(t, "nonresource")
		case 3:
			return rapid.SampledFrom(invJunk).Draw(t, "junk")
		case 4:
			// The wide scopes of the review's attacks.
			return rapid.SampledFrom([]string{"system/*.cruds", "system/Patient.rs", "user/*.cruds", "user/Patient.rs",
				"patient/*.cruds", "system/*.*", "user/*.read"}).Draw(t, "wide")
		default:
			return genResourceScope("patient", "user", "system").Draw(t, "resource")
		}
	})
}

// genScopeList draws a non-empty scope list without duplicates.
func genScopeList(g *rapid.Generator[string], minLen, maxLen int) *rapid.Generator[[]string] {
	return rapid.SliceOfNDistinct(g, minLen, maxLen, rapid.ID)
}

// genUniverse draws a configuration with every kind of client and user,
// their lists random.
func genUniverse(t *rapid.T) *universe {
	u := &universe{
		trusted:         rapid.Bool().Draw(t, "trusted"),
		patientSearch:   rapid.Bool().Draw(t, "patientSearch"),
		rememberConsent: rapid.Bool().Draw(t, "rememberConsent"),
	}
	for _, typ := range invOutside {
		if rapid.Bool().Draw(t, "outside") {
			u.outside = append(u.outside, typ)
		}
	}
	clientScopes := genScopeList(rapid.OneOf(genResourceScope("patient", "user", "system"), rapid.SampledFrom(invNonResource)), 1, 6)
	regScopes := genScopeList(rapid.OneOf(genResourceScope("patient", "user"), rapid.SampledFrom(invNonResource)), 1, 6)
	u.clients = []*invClient{
		{id: "c-pub", public: true},
		{id: "c-conf"},
		{id: "c-pub-list", public: true, scopes: clientScopes.Draw(t, "c-pub-list")},
		{id: "c-conf-list", scopes: clientScopes.Draw(t, "c-conf-list")},
		{id: "c-hybrid", hybrid: true, scopes: append([]string{genResourceScope("system").Draw(t, "system")}, clientScopes.Draw(t, "c-hybrid")...)},
		{id: "r-pub", registered: true, public: true},
		{id: "r-conf", registered: true},
		{id: "r-pub-list", registered: true, public: true, scopes: regScopes.Draw(t, "r-pub-list")},
	}
	userScopes := func(label string, explicitUser bool) []string {
		if !explicitUser {
			return rapid.SliceOfNDistinct(genResourceScope("patient"), 1, 3, rapid.ID).Draw(t, label)
		}
		l := rapid.SliceOfNDistinct(genResourceScope("patient", "user"), 0, 3, rapid.ID).Draw(t, label)
		return append([]string{genResourceScope("user").Draw(t, label+"-user")}, l...)
	}
	somePatients := rapid.SliceOfNDistinct(rapid.SampledFrom(invPool), 1, 3, rapid.ID)
	maybe := func(label string, l []string) []string {
		if rapid.Bool().Draw(t, label) {
			return l
		}
		return nil
	}
	u.users = []*invUser{
		{name: "pat-a", fhirUser: "Patient/p1", patients: maybe("pat-a-list", []string{"p2"}),
			scopes: maybe("pat-a-scopes", userScopes("pat-a", rapid.Bool().Draw(t, "pat-a-user")))},
		{name: "pat-b", fhirUser: "Patient/p4"},
		{name: "doc-list", fhirUser: "Practitioner/d1", patients: somePatients.Draw(t, "doc-list"), scopes: maybe("doc-list-scopes", userScopes("doc-list", false))},
		{name: "doc-both", fhirUser: "Practitioner/d2", patients: somePatients.Draw(t, "doc-both"), scopes: userScopes("doc-both", true)},
		{name: "doc-user", fhirUser: "Practitioner/d3", scopes: userScopes("doc-user", true)},
		{name: "doc-none", fhirUser: "Practitioner/d4"},
		{name: "anon", patients: maybe("anon-list", somePatients.Draw(t, "anon")), scopes: maybe("anon-scopes", userScopes("anon", false))},
	}
	return u
}

// String describes a universe for failure messages.
func (u *universe) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sign-in trusted=%t patient_search=%t remember_consent=%t allow_outside_compartment=%v\n", u.trusted, u.patientSearch, u.rememberConsent, u.outside)
	for _, c := range u.clients {
		fmt.Fprintf(&b, "  client %s registered=%t public=%t hybrid=%t scopes=%q\n", c.id, c.registered, c.public, c.hybrid, c.scopes)
	}
	for _, x := range u.users {
		fmt.Fprintf(&b, "  user %s fhir_user=%q patients=%q scopes=%q\n", x.name, x.fhirUser, x.patients, x.scopes)
	}
	return b.String()
}

// genTokenScopes draws the scopes of a token minted directly: mostly wide
// scopes of every context (so that many requests pass the scope check and
// the reach and compartment rules decide), else any scope.
func genTokenScopes() *rapid.Generator[[]string] {
	wide := rapid.SampledFrom([]string{"system/*.cruds", "user/*.cruds", "patient/*.cruds", "user/*.rs", "patient/*.rs", "system/*.rs",
		"user/Observation.cruds", "patient/Observation.cruds", "patient/Patient.rs", "user/Patient.rs", "user/*.*", "patient/*.read"})
	return genScopeList(rapid.OneOf(wide, wide, genScope()), 1, 4)
}

// genTokenPatient draws the patient of a token minted for user u (nil:
// no user): mostly one the user may have in context, else any.
func (m invModel) genTokenPatient(t *rapid.T, u *invUser) string {
	all := append([]string{"p9"}, invPool...)
	var reachable []string
	for _, p := range all {
		if u != nil && m.mayContext(u, p, true) {
			reachable = append(reachable, p)
		}
	}
	if len(reachable) > 0 && rapid.IntRange(0, 2).Draw(t, "reachablePatient") > 0 {
		return rapid.SampledFrom(reachable).Draw(t, "patient")
	}
	return rapid.SampledFrom(append(all, "")).Draw(t, "patient")
}
