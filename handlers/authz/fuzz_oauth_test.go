package authz

import (
	"bytes"
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// oauthFormEndpoints are the form-POST OAuth endpoints sharing one
// preamble (readTokenForm).
var oauthFormEndpoints = []string{"/auth/token", "/auth/introspect", "/auth/revoke"}

// oauthContentTypes are the Content-Types a fuzzed form picks from.
var oauthContentTypes = []string{
	"application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=UTF-8",
	"APPLICATION/X-WWW-FORM-URLENCODED", "application/json", "", "multipart/form-data; boundary=x", "text/plain; x=\"",
}

// repeatedParameter tells whether a form body repeats a parameter (or is
// not valid form encoding at all): RFC 6749 §3.1 forbids both.
func repeatedParameter(body string) bool {
	form, err := url.ParseQuery(body)
	if err != nil {
		return true
	}
	for _, v := range form {
		if len(v) > 1 {
			return true
		}
	}
	return false
}

// postForm sends a form to an endpoint with one of the authentications
// the fuzz targets pick from: none, HTTP Basic of a confidential client
// (right or wrong secret), or a bearer access token.
func (e *fuzzEnv) postForm(path, ctype string, auth uint8, body string) *httptest.ResponseRecorder {
	req, _ := newFuzzRequest(http.MethodPost, path, []byte(body))
	req.Host = "auth.example.org"
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	switch auth % 4 {
	case 1:
		req.SetBasicAuth(fzEHR, fzSecret)
	case 2:
		req.SetBasicAuth(fzConf, "wrong")
	case 3:
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	return e.serve(req)
}

// FuzzOAuthForm checks the form preamble of the token, introspection and
// revocation endpoints on any body, Content-Type and authentication:
//   - a body that repeats a parameter, or is not form encoding, is
//     invalid_request (400) at all three, before anything else;
//   - so is a body that is not application/x-www-form-urlencoded;
//   - no input causes a 5xx; every error is an OAuth error JSON, never
//     cached; a success is a token (token endpoint), an introspection
//     answer, or an empty 200 (revocation).
func FuzzOAuthForm(f *testing.F) {
	e := newFuzzEnv(f)
	for _, s := range []struct {
		ep, ct, auth uint8
		body         string
	}{
		{0, 0, 1, "grant_type=client_credentials&scope=system%2F*.rs"},
		{0, 0, 1, "grant_type=client_credentials&scope=system%2F*.rs&scope=system%2FPatient.rs"},
		{0, 0, 1, "grant_type=client_credentials&grant_type=authorization_code"},
		{0, 0, 0, "grant_type=authorization_code&code=x&code="},
		{0, 0, 0, "grant_type=refresh_token&refresh_token=x;y=z"},
		{0, 0, 0, "grant_type=authorization_code&code=%zz"},
		{0, 3, 0, `{"grant_type":"client_credentials"}`},
		{0, 2, 1, "grant_type=client_credentials&scope=system%2F*.rs"},
		{1, 0, 1, "token=abc&token_type_hint=access_token"},
		{1, 0, 1, "token=abc&token=def"},
		{1, 0, 3, "token=abc"},
		{1, 0, 0, "token=abc&client_id=conf&client_secret=wrong"},
		{2, 0, 0, "token=abc&client_id=app"},
		{2, 0, 0, "token=abc&client_id=app&client_id=ehr"},
		{2, 1, 1, "token=abc&token_type_hint=refresh_token&token_type_hint=access_token"},
		{2, 4, 0, ""},
	} {
		f.Add(s.ep, s.ct, s.auth, s.body)
	}
	f.Fuzz(func(t *testing.T, ep, ct, auth uint8, body string) {
		path := oauthFormEndpoints[int(ep)%len(oauthFormEndpoints)]
		ctype := oauthContentTypes[int(ct)%len(oauthContentTypes)]
		w := e.postForm(path, ctype, auth, body)
		mt, _, err := mime.ParseMediaType(ctype)
		form := err == nil && mt == "application/x-www-form-urlencoded"
		if w.Code >= 500 {
			t.Fatalf("POST %s %q: %d %s", path, body, w.Code, w.Body)
		}
		if w.Code >= 300 {
			code := checkOAuthError(t, w)
			if (!form || repeatedParameter(body)) && (w.Code != http.StatusBadRequest || code != "invalid_request") {
				t.Fatalf("POST %s (%s) %q: %d %s, want 400 invalid_request", path, ctype, body, w.Code, code)
			}
			return
		}
		if !form || repeatedParameter(body) {
			t.Fatalf("POST %s (%s) %q repeats a parameter or is no form, yet succeeded: %s", path, ctype, body, w.Body)
		}
		var out map[string]any
		switch path {
		case "/auth/token":
			if json.Unmarshal(w.Body.Bytes(), &out) != nil || out["access_token"] == nil || out["token_type"] != "Bearer" || w.Header().Get("Cache-Control") != "no-store" {
				t.Fatalf("token endpoint success: %s", w.Body)
			}
		case "/auth/introspect":
			if json.Unmarshal(w.Body.Bytes(), &out) != nil || reflect.TypeOf(out["active"]) != reflect.TypeOf(true) {
				t.Fatalf("introspection success: %s", w.Body)
			}
		default:
			if w.Body.Len() != 0 {
				t.Fatalf("revocation success with a body: %s", w.Body)
			}
		}
	})
}

// launchBody is the launch API body as the fuzz target reads it: the
// same JSON field names the API documents.
type launchBody struct {
	Patient           string            `json:"patient"`
	Encounter         string            `json:"encounter"`
	FHIRContext       []json.RawMessage `json:"fhirContext"`
	NeedPatientBanner *bool             `json:"need_patient_banner"`
	SmartStyleURL     string            `json:"smart_style_url"`
	Intent            string            `json:"intent"`
	Tenant            string            `json:"tenant"`
	ClientID          string            `json:"client_id"`
}

// launchValid tells whether a decoded launch body is one the launch API
// must accept (leaving aside client_id, which the caller checks): ids are
// FHIR ids, fhirContext holds objects, smart_style_url is an absolute
// http(s) URL, intent and tenant are at most 1024 bytes.
func launchValid(b *launchBody) bool {
	for _, id := range []string{b.Patient, b.Encounter} {
		if id != "" && !fhirIDOracle.MatchString(id) {
			return false
		}
	}
	for _, item := range b.FHIRContext {
		var obj map[string]json.RawMessage
		if json.Unmarshal(item, &obj) != nil || obj == nil {
			return false
		}
	}
	if b.SmartStyleURL != "" {
		u, err := url.Parse(b.SmartStyleURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return false
		}
	}
	return len(b.Intent) <= 1024 && len(b.Tenant) <= 1024
}

// FuzzLaunchAPI posts any body to the EHR launch API through the HTTP
// handler (so that it holds whatever fields the API grows):
//   - only an authenticated client allowed to create launches gets 201;
//     every other answer is an OAuth error JSON, never a 5xx;
//   - a launch created is stored exactly as asked (patient, encounter,
//     fhirContext, banner, style, intent, tenant, client_id), with valid
//     values only, bound to a registered client when it names one, and to
//     a configured user when the API binds users;
//   - a valid body naming a registered client and no user is accepted.
func FuzzLaunchAPI(f *testing.F) {
	e := newFuzzEnv(f)
	for _, s := range []string{
		`{"patient":"p1","client_id":"app"}`,
		`{"patient":"p1","encounter":"e1","fhirContext":[{"reference":"Observation/1"}],"need_patient_banner":false,` +
			`"smart_style_url":"https://ehr.example/style.json","intent":"reconcile","tenant":"t1","client_id":"app"}`,
		`{"patient":"Patient/p1","client_id":"app"}`,
		`{"patient":"p1"}`,
		`{"client_id":"ghost"}`,
		`{"client_id":"app","user":"alice","patient":"p2"}`,
		`{"client_id":"app","user":"nobody"}`,
		`{"client_id":"app","user":7}`,
		`{"fhirContext":["Observation/1"],"client_id":"app"}`,
		`{"smart_style_url":"javascript:alert(1)","client_id":"app"}`,
		`{"PATIENT":"p1","Client_ID":"app"}`,
		`{"patient":"p1","patient":"p2","client_id":"app"}`,
		`{"client_id":"app"} {}`,
		`[]`, ``, `null`,
	} {
		f.Add(uint8(0), []byte(s))
	}
	f.Add(uint8(1), []byte(`{"patient":"p1","client_id":"app"}`))
	f.Add(uint8(4), []byte(`{"patient":"p1","client_id":"app"}`))
	f.Fuzz(func(t *testing.T, auth uint8, body []byte) {
		req, _ := newFuzzRequest(http.MethodPost, "/auth/launch", body)
		req.Header.Set("Content-Type", "application/json")
		switch auth % 5 {
		case 0:
			req.SetBasicAuth(fzEHR, fzSecret)
		case 1:
			req.SetBasicAuth(fzEHR, "wrong")
		case 2:
			req.SetBasicAuth(fzApp, "")
		case 4:
			req.SetBasicAuth(fzConf, fzSecret) // may not create launches
		}
		w := e.serve(req)
		var b launchBody
		decoded := len(bytes.TrimSpace(body)) == 0 || json.Unmarshal(body, &b) == nil
		if w.Code != http.StatusCreated {
			code := checkOAuthError(t, w)
			if w.Code >= 500 {
				t.Fatalf("launch API: %d %s", w.Code, code)
			}
			if auth%5 == 0 && decoded && launchValid(&b) && b.ClientID != "" && e.clientExists(b.ClientID) && !namesUser(body) {
				t.Fatalf("a valid launch %s was refused: %d %s", body, w.Code, w.Body)
			}
			return
		}
		if auth%5 != 0 {
			t.Fatalf("a launch created with authentication %d", auth%5)
		}
		var resp struct {
			Launch    string `json:"launch"`
			ExpiresIn int64  `json:"expires_in"`
		}
		if json.Unmarshal(w.Body.Bytes(), &resp) != nil || resp.Launch == "" || resp.ExpiresIn <= 0 || w.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("launch created: %s", w.Body)
		}
		if !decoded || !launchValid(&b) || b.ClientID == "" || !e.clientExists(b.ClientID) {
			// A launch is always bound to a registered app (issue 10 §2).
			t.Fatalf("an invalid launch %s was created", body)
		}
		e.checkStoredLaunch(t, resp.Launch, &b, body)
	})
}

// clientExists tells whether a client id names a configured or
// registered client.
func (e *fuzzEnv) clientExists(id string) bool {
	c, err := e.s.registry.Lookup(context.Background(), id)
	return err == nil && c != nil
}

// namesUser tells whether a JSON body has a "user" member.
func namesUser(body []byte) bool {
	_, ok := userMember(body)
	return ok
}

// userMember returns the "user" member of a JSON object body, matched
// case-insensitively as encoding/json matches field names (the last one
// wins).
func userMember(body []byte) (any, bool) {
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	var v any
	found := false
	for k, x := range m {
		if strings.EqualFold(k, "user") {
			v, found = x, true
		}
	}
	return v, found
}

// checkStoredLaunch fails unless the stored launch id holds what the body
// asked for, created by the EHR client.
func (e *fuzzEnv) checkStoredLaunch(t *testing.T, id string, b *launchBody, body []byte) {
	t.Helper()
	l, err := e.db.ConsumeLaunch(context.Background(), id)
	if err != nil {
		t.Fatalf("launch %s not stored: %v", body, err)
	}
	got := launchBody{
		Patient: l.Patient, Encounter: l.Encounter, FHIRContext: l.FHIRContext, NeedPatientBanner: l.NeedPatientBanner,
		SmartStyleURL: l.SmartStyleURL, Intent: l.Intent, Tenant: l.Tenant, ClientID: l.ClientID,
	}
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(b)
	if string(gj) != string(wj) || l.CreatedBy != fzEHR {
		t.Fatalf("launch %s stored as %s (created by %q)", body, gj, l.CreatedBy)
	}
	// A launch bound to a user (issue 10 §2) names a configured user,
	// the one the body names.
	var stored map[string]any
	raw, _ := json.Marshal(l)
	_ = json.Unmarshal(raw, &stored)
	if u, ok := stored["user"]; ok {
		name, _ := u.(string)
		if asked, _ := userMember(body); e.s.cfg.Users[name] == nil || asked != name {
			t.Fatalf("launch %s bound to user %v", body, u)
		}
	}
}
