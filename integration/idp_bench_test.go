package integration

import (
	"fmt"
	"net/url"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"golang.org/x/oauth2"
)

// BenchmarkIDPSignIn measures one complete sign-in through the test OP
// (authorize, the OP's sign-in page and form, the callback with the code
// exchange and id_token verification, consent, the app's code) with a new
// browser each time, all in this process; it reports the size of the
// sealed state cookie. go test -run '^$' -bench IDPSignIn ./integration
func BenchmarkIDPSignIn(b *testing.B) {
	op := newTestOP(b)
	b.Setenv("SMARTAUTH_TEST_IDP_SECRET", opClientSecret)
	s := newFlowSite(b, "sign_in identity_provider"+fmt.Sprintf(idpBlock, op.issuer, opClientID, ""))
	op.register(s.issuer()+"/login/idp/callback", s.issuer()+"/logout")
	op.start(b)
	js, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(caddyfile.Format([]byte(s.caddyfile())), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		b.Fatal(err)
	}
	if err := caddy.Load(js, true); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = caddy.Stop() })
	site := idpSite{flowSite: s, op: op}
	cfg := s.oauth("public-app", "", "openid", "fhirUser", "launch/patient", "patient/*.rs")
	cookieBytes := 0
	b.ResetTimer()
	for b.Loop() {
		br := newBrowser(b)
		r := runIDP(b, br, site.authURL(cfg, oauth2.GenerateVerifier()), s.redirect, func(u *url.URL) {
			if site.toCallback(u) {
				for _, c := range br.c.Jar.Cookies(u) {
					cookieBytes = max(cookieBytes, len(c.Name)+len(c.Value))
				}
			}
		})
		if r.app.Get("code") == "" {
			b.Fatalf("sign-in: %+v", r)
		}
	}
	b.ReportMetric(float64(cookieBytes), "state-cookie-bytes")
}
