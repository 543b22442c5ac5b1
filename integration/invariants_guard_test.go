package integration

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/smartcaddy/smartauth/scopes"
)

// TestInvariantPatientTokensStayInCompartment: a patient/ token never
// reads, searches or writes outside its patient's compartment (types
// outside the compartment only when allow_outside_compartment lists
// them), for any patient/ scopes and any generated request.
func TestInvariantPatientTokensStayInCompartment(t *testing.T) {
	s := startInvSite(t, 4)
	rapid.Check(t, func(rt *rapid.T) {
		c := rapid.SampledFrom(invPool).Draw(rt, "patient")
		// Users who may have c in context; those without a bound of their
		// own thrice, so that more requests pass the scope check and the
		// compartment rule decides.
		var users []*invUser
		for _, u := range s.u.users {
			if s.model.mayContext(u, c, true) {
				users = append(users, u)
				if len(u.scopes) == 0 {
					users = append(users, u, u)
				}
			}
		}
		u := rapid.SampledFrom(users).Draw(rt, "user")
		client := rapid.SampledFrom(s.u.clients).Draw(rt, "client")
		wide := rapid.SampledFrom([]string{"patient/*.cruds", "patient/*.rs", "patient/Observation.cruds", "patient/Patient.*", "patient/*.write", "patient/*.*"})
		scope := strings.Join(genScopeList(rapid.OneOf(genResourceScope("patient"), wide, wide), 1, 4).Draw(rt, "scope"), " ")
		tok := s.mint(u.name, client.id, scope, c)
		targets := append([]string{c, c, c, c, c, c, "p9"}, invPool...)
		for range rapid.IntRange(5, 20).Draw(rt, "requests") {
			r := genRequest(s.fhirBase(), targets).Draw(rt, "request")
			status, body, up, reached := s.fhir(rt, tok, r)
			var outside []string
			if reached {
				outside = analyzeForwarded(up).outside
			}
			bad := ""
			if out := s.outsideReach(status, body, up, reached, func(p string) bool { return p == c }); len(out) > 0 {
				bad = fmt.Sprintf("reached the data of %q", out)
			}
			for _, typ := range outside {
				if !slices.Contains(s.u.outside, typ) {
					bad = "reached " + typ + ", outside the compartment and not allowed"
				}
			}
			if bad != "" {
				s.failf(rt, "user %s, token scope %q patient %q: %v answered %d and %s (upstream got %s)",
					u.name, scope, c, r, status, bad, describeUpstream(up, reached))
			}
		}
	})
}

// TestInvariantGuardDecisionsMatchUpstream: a request the guard refuses
// never reaches the upstream (a read by id may have been fetched for the
// guard's check, then nothing of it is passed on; a write may have been
// preceded by the guard's read of the stored resource), one it allows
// reaches it, and a search allowed for a token confined to a patient's
// compartment (patient/ scopes only, or a Patient user's token) arrives
// with the compartment restriction added.
func TestInvariantGuardDecisionsMatchUpstream(t *testing.T) {
	s := startInvSite(t, 5)
	rapid.Check(t, func(rt *rapid.T) {
		client := rapid.SampledFrom(s.u.clients).Draw(rt, "client")
		sub := client.id
		var u *invUser
		if rapid.IntRange(0, 4).Draw(rt, "backend") > 0 {
			u = rapid.SampledFrom(s.u.users).Draw(rt, "user")
			sub = u.name
		}
		list := genTokenScopes().Draw(rt, "scope")
		patient := s.model.genTokenPatient(rt, u)
		tok := s.mint(sub, client.id, strings.Join(list, " "), patient)
		confined := confinement(u, list, patient)
		targets := append([]string{"p9"}, invPool...)
		if patient != "" {
			targets = append(targets, patient, patient)
		}
		for range rapid.IntRange(5, 20).Draw(rt, "requests") {
			r := genRequest(s.fhirBase(), targets).Draw(rt, "request")
			status, body, up, reached := s.fhir(rt, tok, r)
			if v := decisionViolation(r, status, body, up, reached, confined); v != "" {
				s.failf(rt, "token sub %q client %s scope %q patient %q (confined to %q): %v answered %d: %s (upstream got %s)",
					sub, client.id, list, patient, confined, r, status, v, describeUpstream(up, reached))
			}
		}
	})
}

// confinement is the patient whose compartment confines a token's
// requests: a Patient user's own record, or the token's patient when it
// has only patient/ resource scopes; "" when it is not confined.
func confinement(u *invUser, list []string, patient string) string {
	if u != nil {
		if own, ok := u.ownPatient(); ok {
			return own
		}
	}
	for _, s := range list {
		if sc, err := scopes.Parse(s); err == nil && (sc.Context == "user" || sc.Context == "system") {
			return ""
		}
	}
	return patient
}

// decisionViolation checks one guarded request against what the upstream
// received; it returns what is wrong, or "".
func decisionViolation(r invRequest, status int, body string, up upstreamRequest, reached bool, confined string) string {
	path, _, _ := strings.Cut(r.Path, "?")
	samePath := reached && strings.TrimSuffix(up.Path, "/") == strings.TrimSuffix("/fhir/"+path, "/")
	itself := samePath && up.Method == r.Method
	if guardRefused(status) {
		switch {
		case itself && !readByID(r):
			return "refused, yet the upstream received the request"
		case itself:
			var res struct {
				ResourceType string `json:"resourceType"`
			}
			if json.Unmarshal([]byte(body), &res) != nil || res.ResourceType != "OperationOutcome" {
				return "refused, yet the answer is not an OperationOutcome"
			}
		}
		return ""
	}
	if !itself {
		return "allowed, yet the upstream did not receive the request"
	}
	if confined == "" {
		return ""
	}
	for _, sr := range analyzeForwarded(up).searches {
		if !sr.restricted(confined) {
			return fmt.Sprintf("a search on %s arrived without the restriction to %s", sr.typ, confined)
		}
	}
	return ""
}

// readByID tells whether a request is a read by id (read, vread or
// instance history), whose answer the guard may check after the upstream.
func readByID(r invRequest) bool {
	if (r.Method != "GET" && r.Method != "HEAD") || strings.Contains(r.Path, "?") {
		return false
	}
	segs := strings.Split(r.Path, "/")
	if len(segs) < 2 || segs[0] == "" || strings.HasPrefix(segs[1], "$") || strings.HasPrefix(segs[1], "_") {
		return false
	}
	return len(segs) == 2 || segs[2] == "_history"
}
