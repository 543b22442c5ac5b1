package integration

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/smartcaddy/smartauth/scopes"
)

// The security invariants of issue 10 §6 as property-based tests
// (pgregory.net/rapid): each test starts one Caddy from a generated
// configuration (clients with and without scope lists, configured and
// registered; patient users, practitioners with and without patients and
// scopes, users with nothing; trusted or password sign-in; patient search
// on or off), then checks its invariant on generated flows and requests
// against the reference model (invariants_model_test.go).
//
// Each rapid check runs a batch of flows or requests, so that the default
// -rapid.checks=100 gives thousands of cases per run. Reproduce a failure
// with the two seeds the run prints: the universe's (logged at the start,
// -invariants.seed=<base>) and rapid's (-rapid.seed=<n>), e.g.
//
//	go test -run 'TestInvariantGrantWithinReach$' . -invariants.seed=123 -rapid.seed=456
//
// rapid also writes the failing case to testdata/rapid/ (replayed by the
// next run; -rapid.nofailfile turns that off). -rapid.checks=N scales every
// test.

// genFlow draws an authorization: any client, any user, requested scopes
// of every kind, and sometimes an EHR launch created through the launch
// API (for a random patient, with or without client_id and user).
func (s *invSite) genFlow(t *rapid.T, ehr bool) (invFlow, string) {
	s.cases++
	f := invFlow{
		client: rapid.SampledFrom(s.u.clients).Draw(t, "client"),
		user:   rapid.SampledFrom(s.u.users).Draw(t, "user"),
		scope:  genScopeList(genScope(), 1, 7).Draw(t, "scope"),
	}
	if rapid.Bool().Draw(t, "standalonePatient") {
		f.scope = append(f.scope, "launch/patient", genResourceScope("patient").Draw(t, "patientScope"))
	}
	launchUser := ""
	if ehr {
		f.scope = append(f.scope, "launch")
		// The encounter marks the launch: only it can put that
		// encounter in a token.
		body := map[string]any{"patient": rapid.SampledFrom(append([]string{"p9"}, invPool...)).Draw(t, "launchPatient"),
			"encounter": fmt.Sprintf("enc-%d", s.cases)}
		if rapid.IntRange(0, 5).Draw(t, "launchClient") > 0 {
			body["client_id"] = f.client.id
		}
		switch rapid.IntRange(0, 2).Draw(t, "launchUser") {
		case 1:
			launchUser = f.user.name
		case 2:
			launchUser = rapid.SampledFrom(s.u.users).Draw(t, "launchUserName").name
		}
		if launchUser != "" {
			body["user"] = launchUser
		}
		status, id := s.createLaunch(t, body)
		if status != 201 {
			launchUser = ""
		}
		f.launch = id
	}
	genFlowChoices(t, &f)
	return f, launchUser
}

// failf stops a check with the universe's seed and a description.
func (s *invSite) failf(t *rapid.T, format string, args ...any) {
	t.Helper()
	t.Fatalf("universe seed %d (-invariants.seed=%d): %s", s.seed, invBaseSeed(), fmt.Sprintf(format, args...))
}

// TestInvariantGrantWithinReach: a grant with a user never carries a
// system/ scope; what the consent page shows and what is granted are
// within requested ∩ what the client may have ∩ what the user may have;
// a forged consent POST adds nothing the page did not show; a patient/
// scope needs a patient in context.
func TestInvariantGrantWithinReach(t *testing.T) {
	s := startInvSite(t, 1)
	rapid.Check(t, func(rt *rapid.T) {
		for range rapid.IntRange(1, 3).Draw(rt, "flows") {
			f, _ := s.genFlow(rt, rapid.IntRange(0, 3).Draw(rt, "ehr") == 0)
			out := s.run(rt, f)
			if v := grantViolation(f, out, true); v != "" {
				s.failf(rt, "client %s (scopes %q), user %s, requested %q, forged consent %q: %s", f.client.id, f.client.scopes, f.user.name, f.scope, f.forge, v)
			}
		}
	})
}

// grantViolation checks a flow's consent page and grant against the
// model; it returns what is wrong, or "".
//
// A refresh (asRequested false) may name the scopes it narrows to in
// another form than the authorization request did.
func grantViolation(f invFlow, out invOutcome, asRequested bool) string {
	check := func(what string, list []string) string {
		for _, sc := range list {
			switch {
			case strings.HasPrefix(sc, "system/"):
				return fmt.Sprintf("%s holds the system/ scope %q", what, sc)
			case asRequested && !slices.Contains(f.scope, sc):
				return fmt.Sprintf("%s holds %q, which was not requested", what, sc)
			case !clientMay(f.client, sc):
				return fmt.Sprintf("%s holds %q, which the client may not have", what, sc)
			case !userMay(f.user, sc):
				return fmt.Sprintf("%s holds %q, which the user may not have", what, sc)
			}
		}
		return ""
	}
	if v := check("the consent page", out.shown); v != "" || out.token == nil || out.tokStatus != 200 {
		return v
	}
	granted := scopes.Split(fmt.Sprint(out.token["scope"]))
	if v := check("the grant", granted); v != "" {
		return v
	}
	for _, sc := range granted {
		if out.shown != nil && !slices.Contains(out.shown, sc) {
			return fmt.Sprintf("the grant holds %q, which the consent page did not show (forged)", sc)
		}
	}
	claims := jwtClaims(fmt.Sprint(out.token["access_token"]))
	if v := check("the access token", scopes.Split(fmt.Sprint(claims["scope"]))); v != "" {
		return v
	}
	if scopes.NeedsPatient(granted) && out.token["patient"] == nil {
		return fmt.Sprintf("the grant %q has patient/ scopes and no patient", granted)
	}
	return ""
}

// TestInvariantUserTokensStayInReach: a token with a user never reaches
// data outside the user's reach, whatever its scopes: tokens minted with
// the server's key carry arbitrary scopes (system/, user/, patient/) and
// patient contexts for users of every kind.
func TestInvariantUserTokensStayInReach(t *testing.T) {
	s := startInvSite(t, 2)
	rapid.Check(t, func(rt *rapid.T) {
		u := rapid.SampledFrom(s.u.users).Draw(rt, "user")
		c := rapid.SampledFrom(s.u.clients).Draw(rt, "client")
		scope := strings.Join(genTokenScopes().Draw(rt, "scope"), " ")
		patient := s.model.genTokenPatient(rt, u)
		tok := s.mint(u.name, c.id, scope, patient)
		targets := append([]string{"p9"}, invPool...)
		if patient != "" {
			targets = append(targets, patient, patient, patient, patient)
		}
		for range rapid.IntRange(5, 20).Draw(rt, "requests") {
			r := genRequest(s.fhirBase(), targets).Draw(rt, "request")
			status, body, up, reached := s.fhir(rt, tok, r)
			may := func(p string) bool { return s.model.mayReach(u, p) }
			if out := s.outsideReach(status, body, up, reached, may); len(out) > 0 {
				s.failf(rt, "user %s (fhir_user %q, patients %q, scopes %q), token scope %q patient %q: %v answered %d and reached the data of %q (upstream got %v)",
					u.name, u.fhirUser, u.patients, u.scopes, scope, patient, r, status, out, describeUpstream(up, reached))
			}
		}
	})
}

// outsideReach returns what a request reached that may refuses: in what
// the upstream received (when it did), and in the answer passed on.
func (s *invSite) outsideReach(status int, body string, up upstreamRequest, reached bool, may func(string) bool) []string {
	var v upstreamView
	if reached {
		v = analyzeForwarded(up)
	}
	if status == 200 || status == 201 {
		v.items = append(v.items, bodyItems(body, false)...)
	}
	return v.outsideReach(may)
}

// describeUpstream shows what the upstream received.
func describeUpstream(up upstreamRequest, reached bool) string {
	if !reached {
		return "nothing"
	}
	s := up.Method + " " + up.Path
	if up.RawQuery != "" {
		s += "?" + up.RawQuery
	}
	if up.Body != "" {
		s += " " + up.Body
	}
	return s
}

// TestInvariantPatientContextInReach: a token's patient context is
// always one the user may reach (a Patient user: only their own record),
// through standalone flows with the picker (forged choices included), EHR
// launches created through the launch API with and without a user, and
// launches from the launcher page (forged patients included); a
// launch bound to a user is completed by no one else; and the guard
// refuses a token whose patient is outside its user's reach.
func TestInvariantPatientContextInReach(t *testing.T) {
	s := startInvSite(t, 3)
	t.Run("flows", rapid.MakeCheck(func(rt *rapid.T) {
		for range rapid.IntRange(1, 3).Draw(rt, "flows") {
			kind := rapid.SampledFrom([]string{"standalone", "launch API", "launcher"}).Draw(rt, "kind")
			f, launchUser := s.genFlow(rt, kind == "launch API")
			f.scope = append(f.scope, "launch/patient", "patient/*.rs")
			if kind == "launcher" {
				f.scope = append(f.scope, "launch")
				f.launch, _ = s.launcherLaunch(rt, &f)
			}
			out := s.run(rt, f)
			if v := contextViolation(s.model, f, launchUser, out); v != "" {
				s.failf(rt, "client %s, user %s (fhir_user %q, patients %q, scopes %q), launch bound to %q, picked %q: %s",
					f.client.id, f.user.name, f.user.fhirUser, f.user.patients, f.user.scopes, launchUser, out.picked, v)
			}
		}
	}))
	t.Run("guard", rapid.MakeCheck(func(rt *rapid.T) {
		u := rapid.SampledFrom(s.u.users).Draw(rt, "user")
		p := rapid.SampledFrom(append([]string{"p9"}, invPool...)).Draw(rt, "patient")
		if s.model.mayContext(u, p, true) {
			return
		}
		c := rapid.SampledFrom(s.u.clients).Draw(rt, "client")
		scope := rapid.SampledFrom([]string{"patient/*.rs", "patient/*.cruds user/*.rs", "openid patient/Observation.rs"}).Draw(rt, "scope")
		tok := s.mint(u.name, c.id, scope, p)
		r := rapid.SampledFrom([]invRequest{{Method: "GET", Path: "Patient/" + p}, {Method: "GET", Path: "Observation?code=1234"},
			{Method: "GET", Path: "Observation/o-" + p}}).Draw(rt, "request")
		status, _, up, reached := s.fhir(rt, tok, r)
		if !guardRefused(status) || reached {
			s.failf(rt, "user %s (fhir_user %q, patients %q) with a token for patient %q (scope %q): %v answered %d, upstream got %s",
				u.name, u.fhirUser, u.patients, p, scope, r, status, describeUpstream(up, reached))
		}
	}))
}

// contextViolation checks the patient context of a flow's outcome.
func contextViolation(m invModel, f invFlow, launchUser string, out invOutcome) string {
	if out.token == nil || out.tokStatus != 200 {
		return ""
	}
	if launchUser != "" && launchUser != f.user.name && out.token["encounter"] != nil {
		return fmt.Sprintf("completed a launch created for user %s (encounter %v)", launchUser, out.token["encounter"])
	}
	patient, _ := out.token["patient"].(string)
	claim, _ := jwtClaims(fmt.Sprint(out.token["access_token"]))["patient"].(string)
	switch {
	case claim != patient:
		return fmt.Sprintf("the token response says patient %q, the access token %q", patient, claim)
	case patient != "" && !m.mayContext(f.user, patient, false):
		return fmt.Sprintf("the token's patient context is %q, outside the user's reach", patient)
	}
	return ""
}
