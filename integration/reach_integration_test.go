package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"
)

// The holes of issue 10 §1–§2, through a real Caddy with smart_auth in
// front of a recording upstream: a user's grant never reaches beyond the
// user's reach, whatever the app asks for, through a Caddyfile client
// without scopes and a dynamically registered client with an empty scope;
// an EHR launch is completed only by a user who may open its patient.

// reachSite is a Caddy with smart_auth (open registration, a known ES256
// key) and reverse_proxy to a recording upstream.
type reachSite struct {
	site
	up       *fhirUpstream
	signer   *tokenSigner
	redirect string
	// registered is the client_id of a client registered with an empty
	// scope; "open-app" is a Caddyfile client without scopes.
	registered string
}

// The users of the reach tests, all with the password "pw".
var reachUsers = []struct {
	name string
	// outside is a patient the user may not reach ("" when the user may
	// reach every patient).
	outside string
	// userScopes tells whether the user may be granted user/ scopes.
	userScopes bool
	// patient is the patient the picker offers first ("" for none).
	patient string
}{
	{"pat", "456", true, ""},         // fhir_user Patient/123: only 123
	{"doclist", "456", false, "123"}, // patients 123 777
	{"docscoped", "456", false, ""},  // scopes patient/*.rs, no list
	{"docall", "", true, ""},         // scopes user/*.cruds patient/*.cruds
}

func startReachSite(t *testing.T) *reachSite {
	t.Helper()
	s := &reachSite{up: startUpstream(t), signer: newTokenSigner(t)}
	s.site = site{port: freePort(t), storage: t.TempDir()}
	s.signer.issuer, s.signer.aud = s.base()+"/auth", s.base()+"/fhir"
	s.redirect = fmt.Sprintf("http://localhost:%d/callback", freePort(t))
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SMARTAUTH_TEST_EHR_SECRET", ehrSecret)
	s.extra = fmt.Sprintf(`signing_key ES256 %s
		registration open
		client open-app {
			redirect_uri %s
			launch_uri http://localhost:9/launch
		}
		client ehr {
			secret {env.SMARTAUTH_TEST_EHR_SECRET}
			create_launch
		}
		user pat {
			password_hash %[3]s
			fhir_user Patient/123
		}
		user doclist {
			password_hash %[3]s
			fhir_user Practitioner/d1
			patients 123 777
		}
		user docscoped {
			password_hash %[3]s
			fhir_user Practitioner/d2
			scopes patient/*.rs
		}
		user docall {
			password_hash %[3]s
			fhir_user Practitioner/d3
			scopes user/*.cruds patient/*.cruds
		}`, s.signer.pemPath, s.redirect, hash)
	s.after = "reverse_proxy /fhir/* " + strings.TrimPrefix(s.up.URL, "http://")
	startCaddyfile(t, s.caddyfile())
	d := dcr{t: t, s: flowSite{site: s.site}}
	status, _, out := d.call("POST", s.base()+"/auth/register", "", map[string]any{
		"redirect_uris": []string{s.redirect}, "token_endpoint_auth_method": "none", "scope": "",
		"client_name": "Registered without scope",
	})
	if status != http.StatusCreated {
		t.Fatalf("registration: %d %v", status, out)
	}
	s.registered = out["client_id"].(string)
	return s
}

// grant runs the authorization code flow for a user through the pages and
// returns the token response's scope, patient and access token, or the
// error the app got.
func (s *reachSite) grant(t *testing.T, clientID, user, patient string, scope string, extra ...oauth2.AuthCodeOption) (granted, ctxPatient, token, oauthErr string) {
	t.Helper()
	cfg := &oauth2.Config{ClientID: clientID, RedirectURL: s.redirect, Scopes: strings.Fields(scope),
		Endpoint: oauth2.Endpoint{AuthURL: s.base() + "/auth/authorize", TokenURL: s.base() + "/auth/token", AuthStyle: oauth2.AuthStyleInParams}}
	verifier := oauth2.GenerateVerifier()
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", s.base()+"/fhir")}, extra...)
	b := newBrowser(t)
	b.choose = map[string]string{"username": user, "password": "pw", "patient": patient}
	// Every consent is forged to add what the user may not grant.
	b.forge = url.Values{"scope": {"system/*.cruds", "system/Patient.rs", "user/*.cruds", "user/Patient.rs", "patient/*.cruds"}}
	q := b.run(cfg.AuthCodeURL("st", opts...), s.redirect)
	if q.Get("error") != "" {
		return "", "", "", q.Get("error")
	}
	tok, err := cfg.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("%s/%s %q: exchange: %v", clientID, user, scope, err)
	}
	granted, _ = tok.Extra("scope").(string)
	ctxPatient, _ = tok.Extra("patient").(string)
	return granted, ctxPatient, tok.AccessToken, ""
}

// outsideRequests are requests on patient 456's data that a user who may
// not reach 456 must never get to the upstream, whatever the token's
// scopes.
var outsideRequests = []struct{ method, path, body string }{
	{"GET", "Patient/456", ""},
	{"DELETE", "Patient/456", ""},
	{"PUT", "Patient/456", `{"resourceType":"Patient","id":"456"}`},
	{"GET", "Patient?_id=456", ""},
	{"GET", "Observation?subject=Patient/456", ""},
	{"GET", "Observation?patient=456", ""},
	{"DELETE", "Observation?subject=Patient/456", ""},
	{"POST", "Observation", `{"resourceType":"Observation","status":"final","subject":{"reference":"Patient/456"}}`},
	{"GET", "Patient/456/$everything", ""},
	{"GET", "Patient/456/Observation", ""},
	{"GET", "$export", ""},
}

// attack sends every outside request with a token and fails the test if
// one is allowed or reaches the upstream.
func (s *reachSite) attack(t *testing.T, label, token string) {
	t.Helper()
	for i, rq := range outsideRequests {
		caseID := fmt.Sprintf("%s-%d-%s", label, i, guardJTI())
		h := http.Header{"X-Test-Case": {caseID}, "Content-Type": {"application/fhir+json"}}
		g := &guardSite{site: s.site, up: s.up}
		resp, body := g.do(t, rq.method, rq.path, token, rq.body, h)
		if resp.StatusCode < 400 {
			t.Errorf("%s: %s %s allowed: %d %s", label, rq.method, rq.path, resp.StatusCode, body)
		}
		if _, reached := s.up.reached(caseID); reached {
			t.Errorf("%s: %s %s reached the upstream", label, rq.method, rq.path)
		}
	}
}

func TestReachOfGrantsThroughCaddy(t *testing.T) {
	s := startReachSite(t)
	asked := []string{
		"openid system/*.cruds",
		"openid system/Patient.rs",
		"openid fhirUser user/*.cruds",
		"openid user/Patient.rs",
		"openid launch/patient patient/*.cruds system/*.cruds",
		"openid launch/patient patient/Patient.rs user/*.cruds system/Patient.rs",
		"system/*.cruds",
	}
	for _, clientID := range []string{"open-app", s.registered} {
		for _, u := range reachUsers {
			for _, scope := range asked {
				label := fmt.Sprintf("%s/%s/%q", clientID, u.name, scope)
				granted, patient, token, oauthErr := s.grant(t, clientID, u.name, u.patient, scope)
				if scope == "system/*.cruds" {
					if oauthErr != "invalid_scope" {
						t.Errorf("%s: got %q %q, want invalid_scope", label, granted, oauthErr)
					}
					continue
				}
				if oauthErr != "" {
					t.Errorf("%s: %s", label, oauthErr)
					continue
				}
				for _, sc := range strings.Fields(granted) {
					if !slices.Contains(strings.Fields(scope), sc) {
						t.Errorf("%s: granted %s, which was not asked for", label, sc)
					}
					if strings.HasPrefix(sc, "system/") || strings.HasPrefix(sc, "user/") && !u.userScopes {
						t.Errorf("%s: granted %s (all: %q)", label, sc, granted)
					}
				}
				if u.name == "pat" && patient != "" && patient != "123" {
					t.Errorf("%s: patient context %s", label, patient)
				}
				if u.outside != "" {
					s.attack(t, label, token)
				}
			}
		}
	}
	// docall's explicit grant does reach another patient: the attack
	// requests above are refused because of the user, not the scopes.
	_, _, token, _ := s.grant(t, "open-app", "docall", "", "openid user/*.cruds")
	g := &guardSite{site: s.site, up: s.up}
	if resp, body := g.do(t, "GET", "Patient/456", token, "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("docall reading Patient/456: %d %s", resp.StatusCode, body)
	}
	// The patient user's user/ token is confined to their own record:
	// their own data is reachable, searches get the restriction.
	_, _, token, _ = s.grant(t, s.registered, "pat", "", "openid user/*.cruds")
	if resp, body := g.do(t, "GET", "Patient/123", token, "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("pat reading Patient/123: %d %s", resp.StatusCode, body)
	}
	h := http.Header{"X-Test-Case": {"pat-own-search"}}
	if resp, body := g.do(t, "GET", "Observation?code=1234", token, "", h); resp.StatusCode != http.StatusOK {
		t.Fatalf("pat searching: %d %s", resp.StatusCode, body)
	}
	if r, ok := s.up.reached("pat-own-search"); !ok || !strings.Contains(r.RawQuery, "subject=Patient%2F123") {
		t.Fatalf("pat's search reached the upstream as %+v", r)
	}
}

// TestTokensWithAUserNeverUseSystemScopes mints tokens as the server
// would if a grant had gone wrong: whatever a token with a user carries,
// the guard holds it to the user's reach.
func TestTokensWithAUserNeverUseSystemScopes(t *testing.T) {
	s := startReachSite(t)
	for _, u := range reachUsers {
		if u.outside == "" {
			continue
		}
		for _, scope := range []string{"system/*.cruds", "user/*.cruds", "system/*.cruds user/*.cruds patient/*.cruds"} {
			for _, patient := range []string{"", "123", "456"} {
				for _, clientID := range []string{"open-app", s.registered} {
					token := s.signer.mint(t, tokenSpec{sub: u.name, clientID: clientID, scope: scope, patient: patient})
					s.attack(t, fmt.Sprintf("minted %s/%s/%q/patient %q", clientID, u.name, scope, patient), token)
				}
			}
		}
	}
}

// createLaunch posts to the launch API as the EHR.
func (s *reachSite) createLaunch(t *testing.T, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.base()+"/auth/launch", strings.NewReader(body))
	req.SetBasicAuth("ehr", ehrSecret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestEHRLaunchReachThroughCaddy is the review's matrix: every user who
// may not open patient 456, through a configured and a registered client,
// completing an EHR launch for 456 (created without a user): refused with
// a page, never a code. A launch bound to a user is refused to others and
// stays usable for that user.
func TestEHRLaunchReachThroughCaddy(t *testing.T) {
	s := startReachSite(t)
	if status, out := s.createLaunch(t, `{"patient":"456"}`); status != http.StatusBadRequest || out["error"] != "invalid_request" {
		t.Fatalf("a launch without client_id: %d %v", status, out)
	}
	for _, clientID := range []string{"open-app", s.registered} {
		for _, u := range reachUsers {
			status, out := s.createLaunch(t, fmt.Sprintf(`{"patient":"456","client_id":%q}`, clientID))
			if status != http.StatusCreated {
				t.Fatalf("launch API: %d %v", status, out)
			}
			launch := out["launch"].(string)
			page := s.launchPage(t, clientID, u.name, launch)
			if u.outside != "" && (page.status != http.StatusForbidden || !strings.Contains(page.body, "may not open")) {
				t.Errorf("%s/%s completing a launch for 456: %d %s", clientID, u.name, page.status, page.location)
			}
			if u.outside == "" && page.status != http.StatusSeeOther {
				t.Errorf("docall completing a launch for 456: %d %s", page.status, page.body)
			}
		}
	}
	// Bound to doclist: pat is refused; doclist then completes it.
	_, out := s.createLaunch(t, `{"patient":"777","client_id":"open-app","user":"doclist"}`)
	launch := out["launch"].(string)
	if p := s.launchPage(t, "open-app", "docall", launch); p.status != http.StatusForbidden || !strings.Contains(p.body, "another user") {
		t.Fatalf("docall completing doclist's launch: %d %s", p.status, p.location)
	}
	granted, patient, _, oauthErr := s.grant(t, "open-app", "doclist", "", "launch openid patient/*.rs",
		oauth2.SetAuthURLParam("launch", launch))
	if oauthErr != "" || patient != "777" || granted != "launch openid patient/*.rs" {
		t.Fatalf("doclist's own launch: %q %q %q", granted, patient, oauthErr)
	}
}

// pageResult is the answer a browser ended on.
type pageResult struct {
	status   int
	location string
	body     string
}

// launchPage signs a user in to complete an EHR launch, answering the
// sign-in and consent pages, and returns the answer that ends the flow:
// the redirect to the app or an error page.
func (s *reachSite) launchPage(t *testing.T, clientID, user, launch string) pageResult {
	t.Helper()
	v := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {s.redirect},
		"scope": {"launch openid patient/*.rs"}, "state": {"st"}, "aud": {s.base() + "/fhir"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"},
		"launch": {launch}}
	b := newBrowser(t)
	b.choose = map[string]string{"username": user, "password": "pw"}
	req, _ := http.NewRequest("GET", s.base()+"/auth/authorize?"+v.Encode(), nil)
	for range 10 {
		resp, err := b.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		switch {
		case resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(loc, s.base()+"/auth/"):
			req, _ = http.NewRequest("GET", loc, nil)
		case resp.StatusCode == http.StatusOK:
			req = b.submit(resp.Request.URL, string(body))
		default:
			return pageResult{resp.StatusCode, loc, string(body)}
		}
	}
	t.Fatal("too many steps")
	return pageResult{}
}
