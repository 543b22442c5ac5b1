package integration

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/net/html"
	"golang.org/x/oauth2"
)

// flowSite runs a server with a user, a public app, a confidential app and
// an EHR client that may create launches.
type flowSite struct {
	site
	redirect string
}

const (
	ehrSecret  = "ehr-secret-for-tests"
	confSecret = "confidential-secret-for-tests"
)

func startFlowSite(t *testing.T, extra string) flowSite {
	t.Helper()
	s := newFlowSite(t, extra)
	startCaddyfile(t, s.caddyfile())
	return s
}

// newFlowSite builds the flow site's configuration without starting it.
func newFlowSite(t testing.TB, extra string) flowSite {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("alice-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	s := flowSite{site: site{port: freePort(t), storage: t.TempDir()}}
	s.redirect = fmt.Sprintf("http://localhost:%d/callback", freePort(t))
	t.Setenv("SMARTAUTH_TEST_EHR_SECRET", ehrSecret)
	t.Setenv("SMARTAUTH_TEST_CONF_SECRET", confSecret)
	s.extra = fmt.Sprintf(`%s
		client public-app {
			redirect_uri %s
			launch_uri http://localhost:9/launch
		}
		client confidential-app {
			secret {env.SMARTAUTH_TEST_CONF_SECRET}
			redirect_uri %s
		}
		client ehr {
			secret {env.SMARTAUTH_TEST_EHR_SECRET}
			create_launch
		}
		user alice {
			password_hash %s
			fhir_user Practitioner/dr-alice
			display_name "Alice Test"
			patients p1 p2
		}`, extra, s.redirect, s.redirect, hash)
	return s
}

func (s flowSite) issuer() string   { return s.base() + "/auth" }
func (s flowSite) fhirBase() string { return s.base() + "/fhir" }

func (s flowSite) oauth(clientID, secret string, scopes ...string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: clientID, ClientSecret: secret,
		Endpoint:    oauth2.Endpoint{AuthURL: s.issuer() + "/authorize", TokenURL: s.issuer() + "/token"},
		RedirectURL: s.redirect,
		Scopes:      scopes,
	}
}

// browser is a cookie-keeping HTTP client that submits forms the way a
// person would, and reports where the server finally redirects the app.
type browser struct {
	t      testing.TB
	c      *http.Client
	pages  []string // titles of the pages seen
	choose map[string]string
	untick map[string]bool
	deny   bool
	// forge adds these values to every form with a decision (a forged
	// consent POST).
	forge url.Values
}

func newBrowser(t testing.TB) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		choose: map[string]string{"username": "alice", "password": "alice-pw", "patient": "p1"}, untick: map[string]bool{}}
}

// run starts at an authorization URL and answers every page until the
// server redirects to prefix; it returns that redirect's query.
func (b *browser) run(start, prefix string) url.Values {
	b.t.Helper()
	req, _ := http.NewRequest("GET", start, nil)
	for range 20 {
		resp, err := b.c.Do(req)
		if err != nil {
			b.t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			loc, err := resp.Location()
			if err != nil {
				b.t.Fatal(err)
			}
			if strings.HasPrefix(loc.String(), prefix) {
				return loc.Query()
			}
			req, _ = http.NewRequest("GET", loc.String(), nil)
		case resp.StatusCode == 200:
			req = b.submit(resp.Request.URL, string(body))
		default:
			b.t.Fatalf("%s %s: %d\n%s", req.Method, req.URL, resp.StatusCode, body)
		}
	}
	b.t.Fatal("too many steps")
	return nil
}

// submit fills the page's form.
func (b *browser) submit(page *url.URL, body string) *http.Request {
	b.t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	var form *html.Node
	var walk func(*html.Node)
	var title string
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "form" && form == nil {
			form = n
		}
		if n.Type == html.ElementNode && n.Data == "title" && n.FirstChild != nil {
			title = n.FirstChild.Data
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if form == nil {
		b.t.Fatalf("no form on %s:\n%s", page, body)
	}
	b.pages = append(b.pages, title)
	vals := url.Values{}
	decision := false
	var visit func(*html.Node)
	visit = func(n *html.Node) {
		if n.Type == html.ElementNode && (n.Data == "input" || n.Data == "button") {
			a := map[string]string{}
			disabled := false
			for _, at := range n.Attr {
				a[at.Key] = at.Val
				if at.Key == "disabled" {
					disabled = true
				}
			}
			name := a["name"]
			switch {
			case name == "" || disabled:
			case name == "decision":
				if !decision && ((a["value"] == "allow") != b.deny) {
					vals.Set("decision", a["value"])
					decision = true
				}
			case a["type"] == "checkbox":
				if _, checked := a["checked"]; checked && !b.untick[a["value"]] {
					vals.Add(name, a["value"])
				}
			case a["type"] == "radio":
				if a["value"] == b.choose[name] {
					vals.Set(name, a["value"])
				}
			case b.choose[name] != "" && a["type"] != "hidden":
				vals.Set(name, b.choose[name])
			default:
				vals.Add(name, a["value"])
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			visit(c)
		}
	}
	visit(form)
	if decision {
		for k, vs := range b.forge {
			for _, v := range vs {
				vals.Add(k, v)
			}
		}
	}
	action, method := page.String(), "GET"
	for _, at := range form.Attr {
		switch at.Key {
		case "action":
			u, _ := page.Parse(at.Val)
			action = u.String()
		case "method":
			method = strings.ToUpper(at.Val)
		}
	}
	if method == "POST" {
		req, _ := http.NewRequest("POST", action, strings.NewReader(vals.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return req
	}
	u, _ := url.Parse(action)
	u.RawQuery = vals.Encode()
	req, _ := http.NewRequest("GET", u.String(), nil)
	return req
}

func randomString(t *testing.T) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestStandaloneLaunchWithPickerEndToEnd(t *testing.T) {
	s := startFlowSite(t, "")
	ctx := context.Background()
	cfg := s.oauth("public-app", "", "openid", "fhirUser", "launch/patient", "patient/*.rs", "offline_access")
	verifier := oauth2.GenerateVerifier()
	state, nonce := randomString(t), randomString(t)
	authURL := cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("aud", s.fhirBase()), oauth2.SetAuthURLParam("nonce", nonce))

	b := newBrowser(t)
	q := b.run(authURL, s.redirect)
	if q.Get("state") != state || q.Get("code") == "" {
		t.Fatalf("redirect: %v", q)
	}
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if tok.Extra("patient") != "p1" || tok.TokenType != "Bearer" || tok.RefreshToken == "" {
		t.Errorf("token response: patient=%v type=%s refresh=%t", tok.Extra("patient"), tok.TokenType, tok.RefreshToken != "")
	}
	if sc, _ := tok.Extra("scope").(string); !strings.Contains(sc, "patient/*.rs") || !strings.Contains(sc, "openid") {
		t.Errorf("scope %q", sc)
	}

	// The id_token verifies against the published JWKS.
	provider, err := oidc.NewProvider(ctx, s.issuer())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: "public-app"}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("id_token: %v", err)
	}
	var claims struct {
		FHIRUser string `json:"fhirUser"`
		Nonce    string `json:"nonce"`
	}
	_ = idt.Claims(&claims)
	if claims.Nonce != nonce || claims.FHIRUser != s.fhirBase()+"/Practitioner/dr-alice" {
		t.Errorf("id_token claims: %+v", claims)
	}

	// Refresh rotates; the old refresh token's reuse revokes the family.
	first := tok.RefreshToken
	next := refresh(t, s, first, "public-app")
	if next["refresh_token"] == nil || next["refresh_token"] == first || next["expires_in"] == nil {
		t.Fatalf("refresh: %v", next)
	}
	if again := refresh(t, s, first, "public-app"); again["error"] != "invalid_grant" {
		t.Fatalf("reuse of a rotated refresh token: %v", again)
	}
	if after := refresh(t, s, next["refresh_token"].(string), "public-app"); after["error"] != "invalid_grant" {
		t.Fatalf("the family survived a reuse: %v", after)
	}
}

func refresh(t *testing.T, s flowSite, token, clientID string) map[string]any {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}, "client_id": {clientID}}
	resp, err := http.PostForm(s.issuer()+"/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return m
}

func TestEHRLaunchEndToEnd(t *testing.T) {
	s := startFlowSite(t, "")
	ctx := context.Background()
	// The EHR creates a launch context.
	req, _ := http.NewRequest("POST", s.issuer()+"/launch", strings.NewReader(`{"patient":"p2","encounter":"e1","need_patient_banner":true,"intent":"reconcile-medications","client_id":"confidential-app"}`))
	req.SetBasicAuth("ehr", ehrSecret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		Launch    string `json:"launch"`
		ExpiresIn int    `json:"expires_in"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if resp.StatusCode != 201 || created.Launch == "" || created.ExpiresIn <= 0 {
		t.Fatalf("create launch: %d %+v", resp.StatusCode, created)
	}

	cfg := s.oauth("confidential-app", confSecret, "launch", "openid", "fhirUser", "patient/*.rs", "user/*.rs")
	verifier := oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("aud", s.fhirBase()), oauth2.SetAuthURLParam("launch", created.Launch))
	q := newBrowser(t).run(authURL, s.redirect)
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if tok.Extra("patient") != "p2" || tok.Extra("encounter") != "e1" || tok.Extra("need_patient_banner") != true ||
		tok.Extra("intent") != "reconcile-medications" {
		t.Errorf("launch context not in the token response: patient=%v encounter=%v banner=%v intent=%v",
			tok.Extra("patient"), tok.Extra("encounter"), tok.Extra("need_patient_banner"), tok.Extra("intent"))
	}
	if tok.RefreshToken != "" {
		t.Error("a refresh token without offline_access or online_access")
	}
	// The launch id is single-use.
	q = newBrowser(t).run(cfg.AuthCodeURL("st2", oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("aud", s.fhirBase()), oauth2.SetAuthURLParam("launch", created.Launch)), s.redirect)
	if q.Get("error") == "" || q.Get("code") != "" || q.Get("state") != "st2" {
		t.Errorf("reused launch id: %v", q)
	}
}
