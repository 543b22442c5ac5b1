package handlers_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/smartcaddy/smartauth/handlers"
	"github.com/smartcaddy/smartauth/handlers/users"
)

// fakeFHIR is a small FHIR server with two patients, answering name
// searches and reads by id; requests counts the searches.
func fakeFHIR(t *testing.T, requests *atomic.Int32) *httptest.Server {
	t.Helper()
	patients := map[string]map[string]any{
		"smith-1": {"resourceType": "Patient", "id": "smith-1", "birthDate": "1970-01-02",
			"name": []any{map[string]any{"family": "Smith", "given": []string{"Anna"}}}},
		"smith-2": {"resourceType": "Patient", "id": "smith-2",
			"name": []any{map[string]any{"text": "Bo Smith"}}},
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/r4/Patient" {
			requests.Add(1) // searches only: the pages also read listed patients' names
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		if id, ok := strings.CutPrefix(r.URL.Path, "/r4/Patient/"); ok {
			p, found := patients[id]
			if !found {
				w.WriteHeader(http.StatusNotFound)
				_, _ = w.Write([]byte(`{"resourceType":"OperationOutcome"}`))
				return
			}
			_ = json.NewEncoder(w).Encode(p)
			return
		}
		if r.URL.Path != "/r4/Patient" {
			http.NotFound(w, r)
			return
		}
		bundle := map[string]any{"resourceType": "Bundle", "type": "searchset"}
		var entries []any
		if strings.EqualFold(r.URL.Query().Get("name"), "smith") && r.URL.Query().Get("_count") != "" {
			for _, id := range []string{"smith-1", "smith-2"} {
				entries = append(entries, map[string]any{"resource": patients[id]})
			}
			// Not a patient: must be ignored.
			entries = append(entries, map[string]any{"resource": map[string]any{"resourceType": "Observation", "id": "o1"}})
		}
		bundle["entry"] = entries
		_ = json.NewEncoder(w).Encode(bundle)
	}))
	t.Cleanup(ts.Close)
	return ts
}

// TestPickerPatientSearch checks the picker's search against the upstream
// FHIR server for a user without a patient list: results are listed with
// names, a found patient can be chosen and flows into the code, an id the
// server does not know is refused, and a down server is reported on the
// page and refuses every choice.
func TestPickerPatientSearch(t *testing.T) {
	var requests atomic.Int32
	upstream := fakeFHIR(t, &requests)
	env := newFlowEnv(t, flowOptions{config: func(c *handlers.Config) {
		c.Authz.PatientSearch, _ = url.Parse(upstream.URL + "/r4")
		c.Users["carol"] = &users.User{Name: "carol", PasswordHash: testPasswordHash(t, "carol-pw"), FHIRUser: "Practitioner/c"}
	}})
	b := env.browser()
	params := env.authParams("openid launch/patient patient/*.rs")
	p := b.follow(b.get(env.authorizeURL(params)))
	p = b.login(p, "carol", "carol-pw")
	if !strings.HasPrefix(p.location, env.issuer+"/select-patient?") {
		t.Fatalf("want the picker, got %d %s", p.status, p.location)
	}
	pickerURL := p.location
	p = b.follow(p)
	if !strings.Contains(p.body, `name="name"`) || strings.Contains(p.body, `name="patient"`) {
		t.Fatalf("the picker should show only the search form first:\n%s", p.body)
	}
	p = b.get(pickerURL + "&name=Smith")
	if !strings.Contains(p.body, `Anna Smith</strong><span class="patient-meta">, born 1970-01-02`) || !strings.Contains(p.body, "Bo Smith") || strings.Contains(p.body, `value="o1"`) {
		t.Fatalf("search results:\n%s", p.body)
	}
	var choose htmlForm
	for _, f := range forms(t, p.body) {
		if len(f.named("patient")) > 0 {
			choose = f
		}
	}
	if len(choose.named("patient")) != 2 {
		t.Fatalf("want two patients to choose from: %+v", choose)
	}

	// An id the server does not know is refused.
	if bad := b.submit(choose, func(v url.Values) { v.Set("patient", "nobody") }); bad.status != http.StatusForbidden {
		t.Fatalf("unknown patient: %d", bad.status)
	}
	// A found one goes on to consent and into the code.
	p = b.submit(choose, func(v url.Values) { v.Set("patient", "smith-2") })
	if !strings.HasPrefix(p.location, env.issuer+"/consent?") {
		t.Fatalf("want consent, got %d %s", p.status, p.location)
	}
	p = b.submit(onlyForm(t, b.follow(p)), func(v url.Values) { v.Set("decision", "allow") })
	q := appRedirectParams(t, p, appRedirect)
	if rec := env.redeem(q.Get("code")); rec.Context.Patient != "smith-2" || !strings.Contains(rec.Scope, "patient/*.rs") {
		t.Fatalf("code: %+v", rec)
	}

	// With the server down, the page says so and no choice is accepted.
	upstream.Close()
	p = b.get(env.authorizeURL(env.authParams("openid launch/patient patient/*.rs")))
	if !strings.HasPrefix(p.location, env.issuer+"/select-patient?") {
		t.Fatalf("want the picker, got %d %s", p.status, p.location)
	}
	pickerURL = p.location
	p = b.get(pickerURL + "&name=Smith")
	if p.status != http.StatusOK || !strings.Contains(p.body, "not available") {
		t.Fatalf("search with the server down: %d\n%s", p.status, p.body)
	}
	pu, _ := url.Parse(pickerURL)
	post := b.post(env.issuer+"/select-patient", url.Values{"csrf_token": choose.values()["csrf_token"], "req": {pu.Query().Get("req")}, "patient": {"smith-1"}})
	if post.status != http.StatusForbidden || !strings.Contains(post.body, "cannot choose that patient") {
		t.Fatalf("choice with the server down: %d %s", post.status, post.body)
	}
}

// TestPickerSearchNotForListedUsers checks that a user with a configured
// patient list does not get the search: the list bounds the choice.
func TestPickerSearchNotForListedUsers(t *testing.T) {
	var requests atomic.Int32
	upstream := fakeFHIR(t, &requests)
	env := newFlowEnv(t, flowOptions{config: func(c *handlers.Config) {
		c.Authz.PatientSearch, _ = url.Parse(upstream.URL + "/r4")
	}})
	b := env.browser()
	p := b.follow(b.get(env.authorizeURL(env.authParams("openid launch/patient patient/*.rs"))))
	p = b.login(p, "alice", alicePassword)
	p = b.follow(p)
	if strings.Contains(p.body, `name="name"`) {
		t.Fatal("a user with a patient list was offered the search")
	}
	f := onlyForm(t, p)
	if got := b.submit(f, func(v url.Values) { v.Set("patient", "smith-1") }); got.status != http.StatusForbidden {
		t.Fatalf("a searched patient outside alice's list: %d", got.status)
	}
	if requests.Load() != 0 {
		t.Fatalf("the upstream was searched %d times", requests.Load())
	}
}
