package integration

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// Refresh-token rotation through a real Caddy (issue 10 §5): strict by
// default, and with refresh_grace_period a retry of a just-rotated token
// gets a fresh successor while the one it replaces dies.

// refreshOK refreshes as public-app and expects a new pair.
func refreshOK(t *testing.T, s flowSite, token string) (access, next string) {
	t.Helper()
	r := refresh(t, s, token, "public-app")
	access, next = str(r, "access_token"), str(r, "refresh_token")
	if access == "" || next == "" {
		t.Fatalf("refresh: %v", r)
	}
	return access, next
}

// expectFamilyRevoked checks that refresh tokens are refused and access
// tokens no longer work.
func expectFamilyRevoked(t *testing.T, s flowSite, refreshTokens, accessTokens []string) {
	t.Helper()
	for i, rt := range refreshTokens {
		if r := refresh(t, s, rt, "public-app"); r["error"] != "invalid_grant" {
			t.Errorf("refresh token %d of the revoked family: %v", i, r)
		}
	}
	for i, at := range accessTokens {
		if st := userinfoStatus(t, s, at); st != http.StatusUnauthorized {
			t.Errorf("access token %d of the revoked family: userinfo %d", i, st)
		}
	}
}

// expectReuse presents a refresh token that must count as reuse.
func expectReuse(t *testing.T, s flowSite, token string) {
	t.Helper()
	if r := refresh(t, s, token, "public-app"); r["error"] != "invalid_grant" {
		t.Fatalf("reuse: %v, want invalid_grant", r)
	}
}

func TestRefreshRotationStrictThroughCaddy(t *testing.T) {
	s := startFlowSite(t, "")
	at0, rt0 := codeFlowTokens(t, s)
	at1, rt1 := refreshOK(t, s, rt0)
	// The answer was lost and the app retries: without a grace period
	// that is reuse, and the whole family goes.
	expectReuse(t, s, rt0)
	expectFamilyRevoked(t, s, []string{rt1}, []string{at0, at1})
}

func TestRefreshGracePeriodThroughCaddy(t *testing.T) {
	s := startFlowSite(t, "refresh_grace_period 5m")

	t.Run("retry within the period", func(t *testing.T) {
		at0, rt0 := codeFlowTokens(t, s)
		at1, lost := refreshOK(t, s, rt0)
		r := refresh(t, s, rt0, "public-app")
		at2, rt2 := str(r, "access_token"), str(r, "refresh_token")
		if at2 == "" || rt2 == "" || rt2 == lost {
			t.Fatalf("retry within the grace period: %v", r)
		}
		if str(r, "patient") != "p1" || str(r, "scope") != "launch/patient patient/*.rs offline_access" {
			t.Errorf("the retry's grant differs from the original: %v", r)
		}
		// The fresh successor works and rotates on.
		at3, rt3 := refreshOK(t, s, rt2)
		if resp, body := fetch(t, "GET", s.fhirBase()+"/Patient/p1", http.Header{"Authorization": {"Bearer " + at3}}); resp.StatusCode != http.StatusOK {
			t.Fatalf("a read with the chain's access token: %d %s", resp.StatusCode, body)
		}
		// The successor it replaced is refused; presenting it is reuse.
		expectReuse(t, s, lost)
		expectFamilyRevoked(t, s, []string{rt3}, []string{at0, at1, at2, at3})
	})

	t.Run("retry after the successor was used", func(t *testing.T) {
		_, rt0 := codeFlowTokens(t, s)
		_, rt1 := refreshOK(t, s, rt0)
		at2, rt2 := refreshOK(t, s, rt1)
		expectReuse(t, s, rt0)
		expectFamilyRevoked(t, s, []string{rt2}, []string{at2})
	})

	t.Run("50 concurrent refreshes", func(t *testing.T) {
		cfg := s.oauth("confidential-app", confSecret, "launch/patient", "patient/*.rs", "offline_access")
		verifier := oauth2.GenerateVerifier()
		q := newBrowser(t).run(cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", s.fhirBase())), s.redirect)
		tok, err := cfg.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil || tok.RefreshToken == "" {
			t.Fatalf("exchange: %v", err)
		}
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
		answers := race(func() (*http.Request, error) {
			r, err := formPost(s.issuer()+"/token", form)
			if err == nil {
				r.SetBasicAuth("confidential-app", confSecret)
			}
			return r, err
		})
		// Each retry replaces the previous successor: all succeed, and
		// exactly one of the successors is left alive.
		var issued []string
		for _, a := range answers {
			if a.err != nil || a.status != http.StatusOK {
				t.Fatalf("a concurrent refresh within the grace period: %v %d %v (%s)", a.err, a.status, a.body, formatTally(tally(answers)))
			}
			issued = append(issued, str(a.body, "refresh_token"))
		}
		active := 0
		for _, rt := range issued {
			r := postForm(t, s.issuer()+"/introspect", url.Values{"token": {rt}},
				http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("confidential-app:"+confSecret))}})
			if r.status != http.StatusOK {
				t.Fatalf("introspection: %d %s", r.status, r.raw)
			}
			if r.body["active"] == true {
				active++
			}
		}
		if active != 1 {
			t.Fatalf("%d of %d successors are active, want exactly 1", active, len(issued))
		}
	})

	// A second site whose grace period the test can outwait.
	short := startFlowSite(t, "refresh_grace_period 1s")
	t.Run("retry after the period", func(t *testing.T) {
		at0, rt0 := codeFlowTokens(t, short)
		at1, rt1 := refreshOK(t, short, rt0)
		time.Sleep(1100 * time.Millisecond) // the token was rotated before the answer came
		expectReuse(t, short, rt0)
		expectFamilyRevoked(t, short, []string{rt1}, []string{at0, at1})
	})
}
