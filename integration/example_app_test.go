package integration

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestExampleDemoAppEndToEnd runs the README's first command's demo in
// headless Chromium: example.Caddyfile as it is (moved to free ports), its
// launcher, sign-in, patient choice and consent pages, then the demo SMART
// app it serves (demo/app, fhirclient) showing the patient's name, their
// observations, what the token allows, the restriction the guard added to
// its search, and a refused write (403). axe-core checks every page at
// desktop and mobile width; screenshots/demo-*.png are the record.
func TestExampleDemoAppEndToEnd(t *testing.T) {
	cf, base := exampleCaddyfile(t)
	startCaddyfile(t, cf)
	b := newBrowserTab(t)
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }

	b.step("open the launcher", chromedp.Navigate(base+"/auth/launcher"), chromedp.WaitVisible(css(`input[name=username]`)))
	b.checkPage("demo-1-login")
	b.checkFocusRing("demo-1-login")
	b.step("sign in",
		chromedp.SendKeys(css(`input[name=username]`), "alice"),
		chromedp.SendKeys(css(`input[name=password]`), "alice-demo"),
		chromedp.Submit(css(`input[name=password]`)),
		chromedp.WaitVisible(css(`input[name=patient]`)))
	if n := b.evalInt(`document.querySelectorAll('input[name=patient]:checked').length`); n != 0 {
		t.Errorf("the launcher pre-selects %d patient(s) of several", n)
	}
	if got := b.text(`label[for=patient-1]`); !strings.Contains(got, "Amy Shaw") || !strings.Contains(got, "1980-01-01") {
		t.Errorf("the launcher names the second patient %q, not Amy Shaw, 1980-01-01", got)
	}
	if n := b.evalInt(`(() => { const i = document.querySelector("header.brand img"); return i && i.complete ? i.naturalWidth : -1 })()`); n <= 0 {
		t.Errorf("the logo of pages { logo } did not load (%d): the CSP or the route blocks it", n)
	}
	b.checkPage("demo-2-launcher")
	b.checkFocusRing("demo-2-launcher")
	b.step("launch the demo app for Amy Shaw",
		chromedp.Click(css(`input[name=patient][value=pat-2]`)),
		chromedp.Click(css(`input[name=client_id][value=demo-browser-app]`)),
		chromedp.Submit(css(`input[name=patient][value=pat-2]`)),
		chromedp.WaitVisible(css(`button[name=decision][value=allow]`)))
	if got := b.text(`main`); !strings.Contains(got, "Amy Shaw") || !strings.Contains(got, "this patient's") {
		t.Errorf("the consent page does not name the patient or speaks of \"your\" data to a practitioner:\n%s", got)
	}
	b.checkPage("demo-3-consent")
	b.checkFocusRing("demo-3-consent")
	b.step("allow", chromedp.Click(css(`button[name=decision][value=allow]`)),
		chromedp.WaitVisible(css(`#status[data-done]`)))
	b.checkPage("demo-4-app")
	if got := b.text(`#status`); !strings.HasPrefix(got, "Connected to ") {
		t.Fatalf("the demo app did not finish: %s", got)
	}
	if got := b.text(`#patient-name`); !strings.Contains(got, "Amy Shaw") || !strings.Contains(got, "1980-01-01") {
		t.Errorf("the app shows the patient as %q", got)
	}
	if n := b.evalInt(`document.querySelectorAll('#observations tr').length`); n != 3 {
		t.Errorf("the app shows %d observations, want Amy Shaw's 3", n)
	}
	if got := b.text(`#token`); !strings.Contains(got, "patient/*.rs") || !strings.Contains(got, "pat-2") {
		t.Errorf("the app does not show what its token allows: %s", got)
	}
	if got := b.text(`#obs-received`); !strings.Contains(got, "subject=Patient/pat-2") {
		t.Errorf("the app does not show the restriction the guard added: %q", got)
	}
	if got := b.text(`#obs-header`); got != "X-Smart-Patient: pat-2" {
		t.Errorf("the app does not show the guard's header: %q", got)
	}
	if got := b.text(`#conditions`) + b.text(`#medications`); !strings.Contains(got, "Asthma") || !strings.Contains(got, "Albuterol") {
		t.Errorf("the app does not list Amy Shaw's condition and medication: %q", got)
	}
	if got := b.text(`#refused`); !strings.Contains(got, "403") {
		t.Errorf("the refused write is not shown as a 403: %q", got)
	}

	// The remaining pages, each through axe-core at both widths: a
	// standalone launch's patient picker (the demo app's launch?iss=), the
	// management page and the sign-out page.
	app := regexp.MustCompile(`redirect_uri (http://localhost:\d+)/callback`).FindStringSubmatch(cf)
	if app == nil {
		t.Fatal("example.Caddyfile names no demo app redirect_uri")
	}
	b.step("a standalone launch of the demo app", chromedp.Navigate(app[1]+"/launch.html?iss="+base+"/fhir"),
		chromedp.WaitVisible(css(`input[name=patient]`)))
	if n := b.evalInt(`document.querySelectorAll('input[name=patient]:checked').length`); n != 0 {
		t.Errorf("the picker pre-selects %d patient(s) of several", n)
	}
	b.checkPage("demo-5-picker")
	b.checkFocusRing("demo-5-picker")
	b.step("the management page", chromedp.Navigate(base+"/auth/manage"), chromedp.WaitVisible(css(`h1`)))
	b.checkPage("demo-6-manage")
	b.step("the sign-out page", chromedp.Navigate(base+"/auth/logout"), chromedp.WaitVisible(css(`h1`)))
	if got := b.text(`main`); !strings.Contains(got, "Sign out") && !strings.Contains(got, "sign out") {
		t.Errorf("the sign-out page: %q", got)
	}
	b.checkPage("demo-7-logout")
}

// TestDemoAppVendoredClientIsThePinnedOne checks that demo/app's copy of
// fhirclient is byte for byte the file of the version pinned in
// interop/package.json (installed by `npm ci --prefix interop`).
func TestDemoAppVendoredClientIsThePinnedOne(t *testing.T) {
	const name = "fhir-client.pure.min.js"
	vendored, err := os.ReadFile(filepath.Join("..", "demo", "app", "vendor", name))
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := os.ReadFile(filepath.Join("..", "interop", "node_modules", "fhirclient", "build", name))
	if err != nil {
		t.Fatalf("fhirclient is not installed: run `npm ci --prefix interop` (.ci/run does): %v", err)
	}
	if !bytes.Equal(vendored, pinned) {
		t.Errorf("demo/app/vendor/%s differs from the pinned fhirclient's: copy it again", name)
	}
	pkg, err := os.ReadFile(filepath.Join("..", "interop", "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(pkg), `"fhirclient": "2.6.3"`) {
		t.Errorf("interop/package.json does not pin fhirclient 2.6.3 (demo/app/vendor/README.md says it does)")
	}
}
