package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// The rules of reach.go at the authorization server: what a grant with a
// user may hold, and who may complete an EHR launch. The guard's side is
// tested through Caddy in the root package (reach_integration_test.go).

// signedInAt signs a new browser in as user and returns it at the
// authorization request's next step (consent, picker, or the app).
func signedInAt(t *testing.T, env *flowEnv, user string, params url.Values) (*browser, page) {
	t.Helper()
	b := env.browser()
	p := b.get(env.authorizeURL(params))
	if strings.HasPrefix(p.location, env.issuer+"/login?") {
		pw := alicePassword
		if user == "bob" {
			pw = bobPassword
		}
		p = b.login(b.follow(p), user, pw)
	}
	return b, p
}

// consentScopesOffered lists the scope checkboxes of a consent page.
func consentScopesOffered(t *testing.T, p page) []string {
	t.Helper()
	var out []string
	for _, in := range onlyForm(t, p).named("scope") {
		out = append(out, in.value)
	}
	return out
}

func TestSystemScopesNeverThroughAuthorize(t *testing.T) {
	env := newFlowEnv(t, flowOptions{})
	// Only system/ scopes: nothing else to grant, invalid_scope.
	for _, scope := range []string{"system/*.cruds", "system/Patient.rs", "system/*.read system/Observation.cud"} {
		b := env.browser()
		q := appRedirectParams(t, b.get(env.authorizeURL(env.authParams(scope))), appRedirect)
		if q.Get("error") != "invalid_scope" || q.Get("code") != "" {
			t.Errorf("%s: %v, want invalid_scope", scope, q)
		}
	}
	// Mixed: system/ scopes are dropped, never shown, never granted even
	// when a forged consent adds them.
	for _, user := range []string{"alice", "bob", "carol"} {
		params := env.authParams("openid launch/patient system/*.cruds patient/*.rs system/Patient.rs")
		b, p := signedInAt(t, env, user, params)
		if strings.HasPrefix(p.location, env.issuer+"/select-patient?") {
			p = b.submit(onlyForm(t, b.follow(p)), func(v url.Values) { v.Set("patient", "pat1") })
		}
		p = b.follow(p)
		for _, sc := range consentScopesOffered(t, p) {
			if strings.HasPrefix(sc, "system/") {
				t.Errorf("%s: consent offers %s", user, sc)
			}
		}
		p = b.submit(onlyForm(t, p), func(v url.Values) {
			v.Add("scope", "system/*.cruds")
			v.Add("scope", "system/Patient.rs")
			v.Add("scope", "user/*.cruds")
			v.Set("decision", "allow")
		})
		rec := env.redeem(appRedirectParams(t, p, appRedirect).Get("code"))
		want := "openid launch/patient patient/*.rs"
		if user == "carol" {
			// No list and no patient search: no picker, so no patient
			// in context and no patient/ scopes.
			want = "openid launch/patient"
		}
		if rec.Scope != want {
			t.Errorf("%s: granted %q, want %q", user, rec.Scope, want)
		}
	}
}

func TestUserScopesFollowReach(t *testing.T) {
	env := newFlowEnv(t, flowOptions{})
	for _, c := range []struct {
		user, scope, want, patient string
	}{
		// A practitioner with a patients list and no explicit grant:
		// no user/ scopes.
		{"alice", "openid fhirUser user/*.cruds user/Patient.rs", "openid fhirUser", ""},
		{"alice", "openid launch/patient user/*.cruds patient/*.rs", "openid launch/patient patient/*.rs", "pat1"},
		// A Patient user: user/ scopes are granted, confined to the
		// patient's own record at the guard; the context is their own.
		{"bob", "openid launch/patient user/*.cruds", "openid launch/patient user/*.cruds", "pat9"},
		// The explicit grant: within the user's scopes.
		{"carol", "openid user/*.cruds user/Patient.rs", "openid user/Patient.rs", ""},
	} {
		b, p := signedInAt(t, env, c.user, env.authParams(c.scope))
		if strings.HasPrefix(p.location, env.issuer+"/select-patient?") {
			p = b.submit(onlyForm(t, b.follow(p)), func(v url.Values) { v.Set("patient", "pat1") })
		}
		p = b.follow(p)
		p = b.submit(onlyForm(t, p), func(v url.Values) {
			v.Add("scope", "user/*.cruds")
			v.Add("scope", "user/Patient.rs")
			v.Set("decision", "allow")
		})
		rec := env.redeem(appRedirectParams(t, p, appRedirect).Get("code"))
		if rec.Scope != c.want || rec.Context.Patient != c.patient {
			t.Errorf("%s asking %q: granted %q with patient %q, want %q with %q", c.user, c.scope, rec.Scope, rec.Context.Patient, c.want, c.patient)
		}
	}
}

func TestPickerRefusesPatientsOutOfReach(t *testing.T) {
	env := newFlowEnv(t, flowOptions{})
	b, p := signedInAt(t, env, "alice", env.authParams("openid launch/patient patient/*.rs"))
	f := onlyForm(t, b.follow(p))
	for _, pt := range []string{"pat9", "pat1,pat2", "../pat1"} {
		if p := b.submit(f, func(v url.Values) { v.Set("patient", pt) }); p.status != http.StatusForbidden {
			t.Errorf("picker with %q: %d", pt, p.status)
		}
	}
}

// createLaunchFor creates an EHR launch of "app" and returns its id.
func createLaunchFor(t *testing.T, env *flowEnv, body string) string {
	t.Helper()
	status, out := env.createLaunch("ehr", ehrSecret, body)
	if status != http.StatusCreated {
		t.Fatalf("launch API %s: %d %v", body, status, out)
	}
	return out["launch"].(string)
}

// launchParams are an EHR launch's authorization parameters.
func launchParams(env *flowEnv, launch string) url.Values {
	v := env.authParams("launch openid patient/*.rs")
	v.Set("launch", launch)
	return v
}

func TestEHRLaunchBoundToItsUser(t *testing.T) {
	env := newFlowEnv(t, flowOptions{})
	launch := createLaunchFor(t, env, `{"patient":"pat1","client_id":"app","user":"alice"}`)
	// Anyone who sees the launch id may start the request: nothing is
	// used up before sign-in.
	for range 3 {
		if p := env.browser().get(env.authorizeURL(launchParams(env, launch))); !strings.HasPrefix(p.location, env.issuer+"/login?") {
			t.Fatalf("authorize before sign-in: %d %s", p.status, p.location)
		}
	}
	// Another user gets an error page, and the launch stays usable.
	_, p := signedInAt(t, env, "carol", launchParams(env, launch))
	if p.status != http.StatusForbidden || !strings.Contains(p.body, "another user") {
		t.Fatalf("carol completing alice's launch: %d %s", p.status, p.location)
	}
	b, p := signedInAt(t, env, "alice", launchParams(env, launch))
	if strings.HasPrefix(p.location, env.issuer+"/consent?") {
		p = b.submit(onlyForm(t, b.follow(p)), func(v url.Values) { v.Set("decision", "allow") })
	}
	rec := env.redeem(appRedirectParams(t, p, appRedirect).Get("code"))
	if rec.Context.Patient != "pat1" || rec.Subject != "alice" {
		t.Fatalf("alice's launch: %+v", rec)
	}
	// Used up with the code.
	q := appRedirectParams(t, env.browser().get(env.authorizeURL(launchParams(env, launch))), appRedirect)
	if q.Get("error") != "invalid_request" {
		t.Fatalf("a used launch: %v", q)
	}
}

func TestEHRLaunchPatientMustBeInReach(t *testing.T) {
	env := newFlowEnv(t, flowOptions{})
	for _, c := range []struct {
		user, patient string
		ok            bool
	}{
		{"alice", "pat2", true},
		{"alice", "pat9", false}, // not in alice's list
		{"bob", "pat9", true},    // bob's own record
		{"bob", "pat1", false},   // a Patient user: only their own
		{"carol", "pat7", true},  // explicit user/ grant, no list: any
	} {
		launch := createLaunchFor(t, env, `{"patient":"`+c.patient+`","client_id":"app"}`)
		b, p := signedInAt(t, env, c.user, launchParams(env, launch))
		if !c.ok {
			if p.status != http.StatusForbidden || !strings.Contains(p.body, "may not open") {
				t.Errorf("%s completing a launch for %s: %d %s", c.user, c.patient, p.status, p.location)
			}
			continue
		}
		if strings.HasPrefix(p.location, env.issuer+"/consent?") {
			p = b.submit(onlyForm(t, b.follow(p)), func(v url.Values) { v.Set("decision", "allow") })
		}
		if rec := env.redeem(appRedirectParams(t, p, appRedirect).Get("code")); rec.Context.Patient != c.patient {
			t.Errorf("%s: %+v", c.user, rec)
		}
	}
}

// TestEHRLaunchRace: fifty sign-ins at the consent page of one launch
// allow at once; exactly one gets a code, the others an OAuth error at
// the app, none a server error.
func TestEHRLaunchRace(t *testing.T) {
	env := newFlowEnv(t, flowOptions{})
	for round := range 3 {
		launch := createLaunchFor(t, env, `{"patient":"pat1","client_id":"app"}`)
		type ready struct {
			b    *browser
			form url.Values
			to   string
		}
		var all []ready
		for range 50 {
			b, p := signedInAt(t, env, "alice", launchParams(env, launch))
			f := onlyForm(t, b.follow(p))
			v := f.values()
			v.Set("decision", "allow")
			all = append(all, ready{b, v, f.action})
		}
		var wg sync.WaitGroup
		results := make([]*http.Response, len(all))
		errs := make([]error, len(all))
		for i, r := range all {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodPost, env.issuer+"/consent", strings.NewReader(r.form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				results[i], errs[i] = r.b.c.Do(req)
				if errs[i] == nil {
					_ = results[i].Body.Close()
				}
			}()
		}
		wg.Wait()
		codes, refusals := 0, 0
		for i, resp := range results {
			if errs[i] != nil {
				t.Fatalf("round %d: %v", round, errs[i])
			}
			loc, _ := url.Parse(resp.Header.Get("Location"))
			q := loc.Query()
			switch {
			case resp.StatusCode != http.StatusSeeOther:
				t.Errorf("round %d: status %d", round, resp.StatusCode)
			case q.Get("code") != "":
				codes++
			case q.Get("error") == "invalid_request":
				refusals++
			default:
				t.Errorf("round %d: redirect %s", round, loc)
			}
		}
		if codes != 1 || refusals != len(all)-1 {
			t.Errorf("round %d: %d codes and %d refusals, want 1 and %d", round, codes, refusals, len(all)-1)
		}
	}
}

// TestLauncherLaunchBoundToItsUser: a launch made on the launcher page is
// bound to the user who made it, and a patient user's launcher offers
// only their own record.
func TestLauncherLaunchBoundToItsUser(t *testing.T) {
	env := newFlowEnv(t, flowOptions{})
	b := env.browser()
	p := b.login(b.follow(b.get(env.issuer+"/launcher")), "alice", alicePassword)
	f := onlyForm(t, b.follow(p))
	q := appRedirectParams(t, b.submit(f, func(v url.Values) { v.Set("patient", "pat1") }), appLaunchURI)
	launch := q.Get("launch")
	if _, p := signedInAt(t, env, "carol", launchParams(env, launch)); p.status != http.StatusForbidden || !strings.Contains(p.body, "another user") {
		t.Fatalf("carol completing alice's launcher launch: %d %s", p.status, p.location)
	}
	p = ehrAuthorize(t, env, b, launchParams(env, launch))
	if rec := env.redeem(appRedirectParams(t, p, appRedirect).Get("code")); rec.Context.Patient != "pat1" || rec.Subject != "alice" {
		t.Fatalf("alice's launch: %+v", rec)
	}

	bob := env.browser()
	p = bob.login(bob.follow(bob.get(env.issuer+"/launcher")), "bob", bobPassword)
	f = onlyForm(t, bob.follow(p))
	var offered []string
	for _, in := range f.named("patient") {
		offered = append(offered, in.value)
	}
	if strings.Join(offered, ",") != "pat9" {
		t.Fatalf("bob's launcher offers %v", offered)
	}
	if p := bob.submit(f, func(v url.Values) { v.Set("patient", "pat1") }); p.status != http.StatusForbidden {
		t.Fatalf("bob launching for pat1: %d", p.status)
	}
}
