package integration

import (
	"bufio"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"
)

// startNodeOP runs interop/idp.mjs, the Node package oidc-provider (a
// certified OpenID Provider, pinned in interop/package-lock.json and
// installed by .ci/run with `npm ci --prefix interop`), for smart_auth's
// client, and returns its issuer. Without node or the package the test
// fails.
func startNodeOP(t *testing.T, redirectURI, postLogout string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed: install nodejs and npm, then run `npm ci --prefix interop` (.ci/run does)")
	}
	if _, err := os.Stat(filepath.Join("..", "interop", "node_modules", "oidc-provider")); err != nil {
		t.Fatal("oidc-provider is not installed: run `npm ci --prefix interop` (.ci/run does)")
	}
	port := freePort(t)
	cmd := exec.Command(node, filepath.Join("..", "interop", "idp.mjs"))
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port), "CLIENT_ID="+opClientID, "CLIENT_SECRET="+opClientSecret,
		"REDIRECT_URI="+redirectURI, "POST_LOGOUT_URI="+postLogout)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if issuer, ok := strings.CutPrefix(sc.Text(), "ready "); ok {
				ready <- issuer
			}
		}
	}()
	select {
	case issuer := <-ready:
		return issuer
	case <-time.After(30 * time.Second):
		t.Fatal("oidc-provider did not start")
	}
	return ""
}

// TestBrowserSignInThroughIdentityProvider: in headless Chromium, a
// clinician opens an app, clicks "Sign in with Example Hospital", signs in
// on oidc-provider's page, consents there and here, and the app gets a
// token whose fhirUser came from the provider's claims; then signs out,
// here and at the provider. A screenshot of each page goes to
// screenshots/idp-*.png.
func TestBrowserSignInThroughIdentityProvider(t *testing.T) {
	t.Setenv("SMARTAUTH_TEST_IDP_SECRET", opClientSecret)
	s := newFlowSite(t, "")
	issuerOP := startNodeOP(t, s.issuer()+"/login/idp/callback", s.issuer()+"/logout")
	s.extra = `sign_in password identity_provider
		identity_provider hospital {
			display_name "Example Hospital"
			issuer ` + issuerOP + `
			client_id ` + opClientID + `
			client_secret {env.SMARTAUTH_TEST_IDP_SECRET}
			scopes openid profile fhirUser groups
			accept_unlisted
			fhir_user_claim fhirUser
			user_scopes user/*.rs patient/*.rs
			require_claim groups smart-users
		}` + s.extra
	startCaddyfile(t, s.caddyfile())

	got := catchAppCode(t, s.redirect)
	shots := "screenshots"
	ctx := newBrowserTab(t).ctx

	cfg := s.oauth("public-app", "", "openid", "profile", "fhirUser", "user/*.rs")
	verifier := oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL("browser-idp", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", s.fhirBase()))
	n := 0
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		img, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot after %s: %v", what, err)
		}
		n++
		name := fmt.Sprintf("idp-%d-%s.png", n, strings.ReplaceAll(what, " ", "-"))
		if err := os.WriteFile(filepath.Join(shots, name), img, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	step("sign-in page", chromedp.Navigate(authURL), chromedp.WaitVisible(css(`a.provider`)))
	step("provider sign-in", chromedp.Click(css(`a.provider`)), chromedp.WaitVisible(css(`input[name=login]`)))
	step("provider consent",
		chromedp.SendKeys(css(`input[name=login]`), "nora"),
		chromedp.SendKeys(css(`input[name=password]`), "any-password"),
		chromedp.Submit(css(`input[name=password]`)),
		chromedp.WaitReady(css(`input[name=prompt][value=consent]`)))
	step("consent", chromedp.Click(css(`button[type=submit]`)), chromedp.WaitVisible(css(`input[name=scope]`)))
	step("app", chromedp.Click(css(`button[name=decision][value=allow]`)), chromedp.WaitVisible(css(`#app-received`)))
	var q url.Values
	select {
	case q = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the app never received the redirect")
	}
	if q.Get("state") != "browser-idp" || q.Get("code") == "" {
		t.Fatalf("redirect: %v", q)
	}
	tok, idt := idpSite{flowSite: s}.exchange(t, cfg, q.Get("code"), verifier)
	if idt["sub"] != "hospital|nora" || idt["fhirUser"] != s.fhirBase()+"/Practitioner/np-7" || idt["name"] != "Nora Practitioner" {
		t.Errorf("id_token: %v", idt)
	}
	if sc := fmt.Sprint(tok.Extra("scope")); !strings.Contains(sc, "user/*.rs") {
		t.Errorf("scope %q", sc)
	}
	resp, body := fetch(t, "GET", s.fhirBase()+"/Practitioner/np-7", http.Header{"Authorization": {"Bearer " + tok.AccessToken}})
	if resp.StatusCode != 200 {
		t.Errorf("the token at the guard: %d %s", resp.StatusCode, body)
	}

	step("sign-out page", chromedp.Navigate(s.issuer()+"/logout"), chromedp.WaitVisible(css(`button[type=submit]`)))
	step("provider sign-out", chromedp.Click(css(`button[type=submit]`)), chromedp.WaitVisible(css(`button[name=logout]`)))
	step("signed out", chromedp.Click(css(`button[name=logout]`)), chromedp.WaitVisible(css(`main h1`)))
	text, err := chromedp.Run(ctx, chromedp.Text(css(`main`)))
	if err != nil || !strings.Contains(text, "not signed in") {
		t.Errorf("after signing out: %q %v", text, err)
	}
}
