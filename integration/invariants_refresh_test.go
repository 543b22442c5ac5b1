package integration

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/smartcaddy/smartauth/scopes"
)

// TestInvariantRefreshAndRevocation: refresh never widens a grant (each
// rotation's scope is covered by the original grant, with or without a
// scope parameter, narrower, wider or junk, and holds no system/ scope
// and nothing the client or user may not have), and revoking a family
// (RFC 7009 on its current refresh token, or the replay of a rotated one)
// reaches every token of it: the access tokens of every rotation are
// refused at the guard, cached there or not, and the refresh token is dead.
func TestInvariantRefreshAndRevocation(t *testing.T) {
	s := startInvSite(t, 6)
	rapid.Check(t, func(rt *rapid.T) {
		f, _ := s.genFlow(rt, false)
		f.scope = append(f.scope, "offline_access")
		if v := s.refreshViolation(rt, f); v != "" {
			s.failf(rt, "client %s (scopes %q), user %s, requested %q: %s", f.client.id, f.client.scopes, f.user.name, f.scope, v)
		}
	})
}

// refreshViolation runs a flow, rotates its refresh token a few times,
// revokes the family and checks every step; it returns what is wrong, or "".
func (s *invSite) refreshViolation(rt *rapid.T, f invFlow) string {
	out := s.run(rt, f)
	refresh, _ := out.token["refresh_token"].(string)
	if out.tokStatus != 200 || refresh == "" {
		return ""
	}
	original := scopes.Split(fmt.Sprint(out.token["scope"]))
	access := []string{fmt.Sprint(out.token["access_token"])}
	var rotated []string
	for range rapid.IntRange(1, 4).Draw(rt, "rotations") {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}
		switch rapid.IntRange(0, 3).Draw(rt, "narrow") {
		case 1:
			var subset []string
			for _, sc := range original {
				if rapid.Bool().Draw(rt, "keep") {
					subset = append(subset, sc)
				}
			}
			form.Set("scope", strings.Join(append(subset, original[0]), " "))
		case 2:
			form.Set("scope", strings.Join(genScopeList(genScope(), 1, 4).Draw(rt, "other"), " "))
		case 3:
			form.Set("scope", strings.Join(append(slices.Clone(original), genScope().Draw(rt, "wider")), " "))
		}
		status, resp := s.oauthPost(rt, "token", f.client, form)
		if status != 200 {
			continue
		}
		got := scopes.Split(fmt.Sprint(resp["scope"]))
		claims := jwtClaims(fmt.Sprint(resp["access_token"]))
		switch {
		case !scopes.Covers(original, got):
			return fmt.Sprintf("refresh with scope %q granted %q, wider than the original grant %q", form.Get("scope"), got, original)
		case fmt.Sprint(claims["scope"]) != fmt.Sprint(resp["scope"]):
			return fmt.Sprintf("the refreshed access token carries %q, the answer says %q", claims["scope"], resp["scope"])
		}
		if v := grantViolation(f, invOutcome{token: resp, tokStatus: status}, false); v != "" {
			return fmt.Sprintf("refresh with scope %q: %s", form.Get("scope"), v)
		}
		rotated = append(rotated, refresh)
		refresh = fmt.Sprint(resp["refresh_token"])
		access = append(access, fmt.Sprint(resp["access_token"]))
	}
	// Some access tokens are cached by the guard before the family is
	// revoked; the others are first seen after it.
	probe := invRequest{Method: "GET", Path: "Observation?code=1234"}
	for _, a := range access {
		if rapid.Bool().Draw(rt, "cache") {
			s.fhir(rt, a, probe)
		}
	}
	how := "revocation of the current refresh token"
	if len(rotated) > 0 && rapid.Bool().Draw(rt, "replay") {
		how = "replay of a rotated refresh token"
		old := rapid.SampledFrom(rotated).Draw(rt, "rotated")
		if status, resp := s.oauthPost(rt, "token", f.client, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {old}}); status != 400 {
			return fmt.Sprintf("the replay of a rotated refresh token answered %d %v", status, resp)
		}
	} else if status, resp := s.oauthPost(rt, "revoke", f.client, url.Values{"token": {refresh}, "token_type_hint": {"refresh_token"}}); status != 200 {
		return fmt.Sprintf("revocation answered %d %v", status, resp)
	}
	if status, resp := s.oauthPost(rt, "token", f.client, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}); status != 400 {
		return fmt.Sprintf("after the %s the refresh token still works: %d %v", how, status, resp)
	}
	for i, a := range access {
		if status := s.awaitRefused(rt, a, probe); status != 401 {
			return fmt.Sprintf("after the %s the access token of rotation %d still passes the guard (%d)", how, i, status)
		}
	}
	return ""
}

// awaitRefused sends a request with a token until the guard refuses it
// with 401 or 5 seconds have passed (a revocation reaches cached tokens
// within the guard's revocation poll, 250 ms); it returns the last status.
func (s *invSite) awaitRefused(rt *rapid.T, token string, r invRequest) int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		status, _, _, _ := s.fhir(rt, token, r)
		if status == 401 || time.Now().After(deadline) {
			return status
		}
		time.Sleep(25 * time.Millisecond)
	}
}
