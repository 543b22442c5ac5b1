package integration

import (
	"context"
	"fmt"
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

// chromiumPath finds Debian's chromium. The test fails, never skips,
// without it: .ci/run installs it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	t.Fatal("chromium not found: run `apt-get install -y chromium` (Debian; .ci/run does)")
	return ""
}

// TestBrowserStandaloneLaunch performs a standalone launch in headless
// Chromium by filling the real sign-in, patient-picker and consent pages,
// and saves a PNG screenshot of each in screenshots/.
func TestBrowserStandaloneLaunch(t *testing.T) {
	s := startFlowSite(t, "")
	got := catchAppCode(t, s.redirect)
	shots := "screenshots"
	ctx := newBrowserTab(t).ctx

	cfg := s.oauth("public-app", "", "openid", "fhirUser", "launch/patient", "patient/*.rs", "offline_access")
	verifier := oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL("browser-state", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", s.fhirBase()))

	shot := func() []byte {
		t.Helper()
		img, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		return img
	}
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	step("open the authorization URL", chromedp.Navigate(authURL), chromedp.WaitVisible(css(`input[name=username]`)))
	login := shot()
	step("sign in",
		chromedp.SendKeys(css(`input[name=username]`), "alice"),
		chromedp.SendKeys(css(`input[name=password]`), "alice-pw"),
		chromedp.Submit(css(`input[name=password]`)),
		chromedp.WaitVisible(css(`input[name=patient]`)))
	picker := shot()
	step("pick a patient",
		chromedp.Click(css(`input[name=patient][value=p1]`)),
		chromedp.Submit(css(`input[name=patient][value=p1]`)),
		chromedp.WaitVisible(css(`input[name=scope]`)))
	consent := shot()
	// Wait for the app's own page: the consent page has paragraphs too, and
	// a screenshot taken while the browser is between the two documents
	// fails ("0 width").
	step("allow", chromedp.Click(css(`button[name=decision][value=allow]`)), chromedp.WaitVisible(css(`#app-received`)))
	done := shot()
	for name, img := range map[string][]byte{"1-login": login, "2-picker": picker, "3-consent": consent, "4-app": done} {
		if err := os.WriteFile(filepath.Join(shots, name+".png"), img, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var q url.Values
	select {
	case q = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the app never received the redirect")
	}
	if q.Get("state") != "browser-state" || q.Get("code") == "" {
		t.Fatalf("redirect: %v", q)
	}
	tok, err := cfg.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if tok.Extra("patient") != "p1" || !strings.Contains(fmt.Sprint(tok.Extra("scope")), "patient/*.rs") {
		t.Errorf("token: patient=%v scope=%v", tok.Extra("patient"), tok.Extra("scope"))
	}

	// The management page lists the app; its button revokes it.
	step("open the management page", chromedp.Navigate(s.issuer()+"/manage"),
		chromedp.WaitReady(css(`input[name=client_id][value=public-app]`)), chromedp.WaitVisible(css(`form button[type=submit]`)))
	manage := shot()
	step("revoke the app", chromedp.Click(css(`form button[type=submit]`)), chromedp.WaitVisible(css(`p[role=status]`)))
	left, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('input[name=client_id]').length`))
	if err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d apps still listed after revoking", left)
	}
	if err := os.WriteFile(filepath.Join(shots, "5-manage.png"), manage, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := refresh(t, s, tok.RefreshToken, "public-app"); r["error"] != "invalid_grant" {
		t.Errorf("refresh after revoking in the browser: %v", r)
	}
}
