package integration

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// TestManageRevokesAnApp runs a standalone launch with offline_access and
// a remembered consent, then revokes the app on the management page: the
// refresh token and the access token stop working, the app disappears
// from the page, and the next launch asks for consent again.
func TestManageRevokesAnApp(t *testing.T) {
	s := startFlowSite(t, "remember_consent 1h")
	ctx := context.Background()
	cfg := s.oauth("public-app", "", "openid", "fhirUser", "launch/patient", "patient/*.rs", "offline_access")
	verifier := oauth2.GenerateVerifier()
	launch := func(b *browser) url.Values {
		return b.run(cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", s.fhirBase())), s.redirect)
	}
	b := newBrowser(t)
	q := launch(b)
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	consentShown := func() bool {
		return slices.ContainsFunc(b.pages, func(title string) bool { return strings.HasPrefix(title, "Allow access") })
	}
	if !consentShown() {
		t.Fatalf("first launch pages: %v", b.pages)
	}
	// The consent is remembered: a second launch skips it.
	b.pages = nil
	launch(b)
	if consentShown() {
		t.Fatalf("the remembered consent was asked again: %v", b.pages)
	}

	// The discovery document names the page.
	_, doc := fetch(t, "GET", s.fhirBase()+"/.well-known/smart-configuration", nil)
	if !strings.Contains(doc, `"management_endpoint": "`+s.issuer()+`/manage"`) {
		t.Fatalf("smart-configuration lacks management_endpoint:\n%s", doc)
	}

	page := func() (*http.Response, string) {
		resp, err := b.c.Get(s.issuer() + "/manage")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(body)
	}
	resp, body := page()
	if resp.StatusCode != 200 || !strings.Contains(body, "public-app") || !strings.Contains(body, `name="client_id" value="public-app"`) {
		t.Fatalf("manage page: %d\n%s", resp.StatusCode, body)
	}
	if !strings.Contains(body, "keep access while you are away") || !strings.Contains(body, "does not ask again") {
		t.Errorf("the page does not say the app holds offline access and a remembered consent:\n%s", body)
	}
	// It says which patient the access is for (named by id here: the site
	// has no FHIR server to read names from).
	if want := `For <span class="patient">` + b.choose["patient"] + `</span>.`; b.choose["patient"] == "" || !strings.Contains(body, want) {
		t.Errorf("the page does not name the patient (%q):\n%s", want, body)
	}

	// Without a session the page sends the browser to sign in.
	anon, _ := fetch(t, "GET", s.issuer()+"/manage", nil)
	if anon.StatusCode != http.StatusSeeOther || !strings.Contains(anon.Header.Get("Location"), "/login?return=manage") {
		t.Fatalf("anonymous manage: %d %s", anon.StatusCode, anon.Header.Get("Location"))
	}
	// A post without the CSRF token changes nothing.
	forged, err := b.c.PostForm(s.issuer()+"/manage", map[string][]string{"client_id": {"public-app"}})
	if err != nil {
		t.Fatal(err)
	}
	forged.Body.Close()
	if forged.StatusCode != http.StatusForbidden {
		t.Fatalf("forged revoke: %d", forged.StatusCode)
	}
	if r := refresh(t, s, tok.RefreshToken, "public-app"); r["access_token"] == nil {
		t.Fatalf("the forged post revoked access: %v", r)
	} else {
		tok.RefreshToken = r["refresh_token"].(string)
		tok.AccessToken = r["access_token"].(string)
	}

	// Revoke through the page's form.
	revoke, err := b.c.Do(b.submit(resp.Request.URL, body))
	if err != nil {
		t.Fatal(err)
	}
	after, _ := io.ReadAll(revoke.Body)
	revoke.Body.Close()
	if revoke.StatusCode != 200 || !strings.Contains(string(after), "was revoked") || strings.Contains(string(after), `value="public-app"`) {
		t.Fatalf("revoke: %d\n%s", revoke.StatusCode, after)
	}
	if r := refresh(t, s, tok.RefreshToken, "public-app"); r["error"] != "invalid_grant" {
		t.Fatalf("refresh after revocation: %v", r)
	}
	ui, _ := fetch(t, "GET", s.issuer()+"/userinfo", http.Header{"Authorization": {"Bearer " + tok.AccessToken}})
	if ui.StatusCode != http.StatusUnauthorized {
		t.Fatalf("userinfo with a revoked access token: %d", ui.StatusCode)
	}

	// The consent is no longer remembered: the next launch shows it.
	b.pages = nil
	launch(b)
	if !consentShown() {
		t.Fatalf("the next launch skipped the consent page: %v", b.pages)
	}
}
