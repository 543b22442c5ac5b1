package handlers_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// createLaunch calls the launch API as a client.
func (e *flowEnv) createLaunch(id, secret, body string) (int, map[string]any) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.issuer+"/launch", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if id != "" {
		req.SetBasicAuth(id, secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		e.t.Fatalf("launch API answered %d without JSON: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, out
}

func TestLaunchAPIErrors(t *testing.T) {
	env := newFlowEnv(t, flowOptions{})
	for name, c := range map[string]struct {
		id, secret, body string
		status           int
		err              string
	}{
		"no credentials":                    {"", "", `{}`, 401, "invalid_client"},
		"wrong secret":                      {"ehr", "nope", `{}`, 401, "invalid_client"},
		"unknown client":                    {"ghost", ehrSecret, `{}`, 401, "invalid_client"},
		"not a launcher":                    {"backend", ehrSecret, `{}`, 403, "unauthorized_client"},
		"bad JSON":                          {"ehr", ehrSecret, `{"patient":`, 400, "invalid_request"},
		"bad patient":                       {"ehr", ehrSecret, `{"patient":"Patient/123"}`, 400, "invalid_request"},
		"bad fhirContext":                   {"ehr", ehrSecret, `{"fhirContext":["Observation/1"]}`, 400, "invalid_request"},
		"unknown app":                       {"ehr", ehrSecret, `{"client_id":"ghost"}`, 400, "invalid_request"},
		"unknown fields":                    {"ehr", ehrSecret, `{"patient":"pat7","shoe_size":44,"client_id":"app"}`, 201, ""},
		"empty body":                        {"ehr", ehrSecret, ``, 400, "invalid_request"},
		"no client_id":                      {"ehr", ehrSecret, `{"patient":"pat7"}`, 400, "invalid_request"},
		"unknown user":                      {"ehr", ehrSecret, `{"patient":"pat1","client_id":"app","user":"ghost"}`, 400, "invalid_request"},
		"user's patient":                    {"ehr", ehrSecret, `{"patient":"pat1","client_id":"app","user":"alice"}`, 201, ""},
		"patient out of the user's reach":   {"ehr", ehrSecret, `{"patient":"pat7","client_id":"app","user":"alice"}`, 400, "invalid_request"},
		"a patient user's own record":       {"ehr", ehrSecret, `{"patient":"pat9","client_id":"app","user":"bob"}`, 201, ""},
		"another record for a patient user": {"ehr", ehrSecret, `{"patient":"pat1","client_id":"app","user":"bob"}`, 400, "invalid_request"},
		"full context, bound": {"ehr", ehrSecret, `{"patient":"pat7","encounter":"enc1","fhirContext":[{"reference":"Observation/1"}],
			"need_patient_banner":false,"smart_style_url":"https://ehr.example/style.json","intent":"reconcile","tenant":"t1","client_id":"app"}`, 201, ""},
	} {
		status, out := env.createLaunch(c.id, c.secret, c.body)
		if status != c.status {
			t.Errorf("%s: status %d, want %d (%v)", name, status, c.status, out)
			continue
		}
		if c.err != "" && out["error"] != c.err {
			t.Errorf("%s: error %v, want %s", name, out["error"], c.err)
		}
		if c.err == "" && (out["launch"] == "" || out["expires_in"] != float64(300)) {
			t.Errorf("%s: answer %v", name, out)
		}
	}
}

// ehrAuthorize runs an EHR launch's authorization for alice and returns
// the redirect to the app.
func ehrAuthorize(t *testing.T, env *flowEnv, b *browser, params url.Values) page {
	t.Helper()
	p := b.get(env.authorizeURL(params))
	if strings.HasPrefix(p.location, env.issuer+"/login?") {
		p = b.login(b.follow(p), "alice", alicePassword)
	}
	if strings.HasPrefix(p.location, env.issuer+"/consent?") {
		p = b.submit(onlyForm(t, b.follow(p)), func(v url.Values) { v.Set("decision", "allow") })
	}
	return p
}

func TestEHRLaunch(t *testing.T) {
	env := newFlowEnv(t, flowOptions{})
	status, out := env.createLaunch("ehr", ehrSecret, `{"patient":"pat1","encounter":"enc1","need_patient_banner":false,"intent":"reconcile","client_id":"app"}`)
	if status != http.StatusCreated {
		t.Fatalf("launch API: %d %v", status, out)
	}
	launch := out["launch"].(string)
	b := env.browser()
	params := env.authParams("launch openid fhirUser patient/*.rs")
	params.Set("launch", launch)
	q := appRedirectParams(t, ehrAuthorize(t, env, b, params), appRedirect)
	rec := env.redeem(q.Get("code"))
	if rec.Context.Patient != "pat1" || rec.Context.Encounter != "enc1" || rec.Context.Intent != "reconcile" ||
		rec.Context.NeedPatientBanner == nil || *rec.Context.NeedPatientBanner || rec.Scope != "launch openid fhirUser patient/*.rs" {
		t.Fatalf("code %+v", rec)
	}

	// The launch id is single-use.
	params = env.authParams("launch openid patient/*.rs")
	params.Set("launch", launch)
	q = appRedirectParams(t, b.get(env.authorizeURL(params)), appRedirect)
	if q.Get("error") != "invalid_request" || q.Get("error_description") != "invalid launch" || q.Get("state") != params.Get("state") {
		t.Fatalf("reused launch: %v", q)
	}

	// A launch bound to another app is refused.
	_, out = env.createLaunch("ehr", ehrSecret, `{"patient":"pat7","client_id":"other"}`)
	params = env.authParams("launch openid patient/*.rs")
	params.Set("launch", out["launch"].(string))
	q = appRedirectParams(t, b.get(env.authorizeURL(params)), appRedirect)
	if q.Get("error") != "invalid_request" || q.Get("code") != "" {
		t.Fatalf("launch of another app: %v", q)
	}

	// An unknown launch id is refused.
	params.Set("launch", "made-up")
	if q = appRedirectParams(t, b.get(env.authorizeURL(params)), appRedirect); q.Get("error") != "invalid_request" {
		t.Fatalf("unknown launch: %v", q)
	}
}

func TestLauncher(t *testing.T) {
	env := newFlowEnv(t, flowOptions{})
	b := env.browser()
	p := b.get(env.issuer + "/launcher")
	if !strings.HasPrefix(p.location, env.issuer+"/login?") {
		t.Fatalf("launcher signed out: %d %s", p.status, p.location)
	}
	p = b.login(b.follow(p), "alice", alicePassword)
	if p.location != env.issuer+"/launcher" {
		t.Fatalf("after sign-in: %s", p.location)
	}
	p = b.follow(p)
	f := onlyForm(t, p)
	var apps, patients []string
	for _, in := range f.named("client_id") {
		apps = append(apps, in.value)
	}
	for _, in := range f.named("patient") {
		patients = append(patients, in.value)
	}
	if strings.Join(apps, ",") != "app" || strings.Join(patients, ",") != "pat1,pat2" || len(f.named("csrf_token")) != 1 {
		t.Fatalf("launcher offers apps %v and patients %v", apps, patients)
	}
	if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'self' "+ehrFrame) {
		t.Errorf("launcher CSP %q", csp)
	}
	if p := b.submit(f, func(v url.Values) { v.Set("csrf_token", "x") }); p.status != http.StatusForbidden {
		t.Fatalf("launcher without CSRF: %d", p.status)
	}
	if p := b.submit(f, func(v url.Values) { v.Set("patient", "pat9") }); p.status != http.StatusForbidden {
		t.Fatalf("launcher with a foreign patient: %d", p.status)
	}
	p = b.submit(f, func(v url.Values) { v.Set("patient", "pat2") })
	q := appRedirectParams(t, p, appLaunchURI)
	if q.Get("iss") != env.fhirBase || q.Get("launch") == "" {
		t.Fatalf("launch redirect %v", q)
	}
	// The app uses the launch.
	params := env.authParams("launch openid patient/*.rs")
	params.Set("launch", q.Get("launch"))
	rec := env.redeem(appRedirectParams(t, ehrAuthorize(t, env, b, params), appRedirect).Get("code"))
	if rec.Context.Patient != "pat2" || rec.ClientID != "app" {
		t.Fatalf("code %+v", rec)
	}
}
