package integration

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/smartcaddy/smartauth/internal/pgtest"
)

// TestMultiInstance runs two Caddy processes on one PostgreSQL database
// (issue 12's tests that need no failure) as subtests sharing the pair:
// starting the processes is the expensive part. key_rotation is short so
// that the key subtest can rotate; no rotation takes effect in the others,
// since a successor signs only keyPublishAhead (5 minutes) after it is
// made.
func TestMultiInstance(t *testing.T) {
	m := startInstances(t, pgtest.DSN(t), "key_rotation 1s")
	t.Run("StandaloneLaunchAlternating", func(t *testing.T) { m.withT(t).standaloneAlternating() })
	t.Run("EHRLaunchAcrossInstances", func(t *testing.T) { m.withT(t).ehrLaunchAcross() })
	t.Run("CodeRedeemedOnceAcrossInstances", func(t *testing.T) { m.withT(t).codeRace() })
	t.Run("RefreshReuseRevokesFamilyOnBoth", func(t *testing.T) { m.withT(t).refreshReuse() })
	t.Run("RevocationLag", func(t *testing.T) { m.withT(t).revocationLag() })
	t.Run("KeyRotationWhileBothServe", func(t *testing.T) { m.withT(t).keyRotation() })
}

// withT is the pair with a subtest's t, for its failures.
func (m *instances) withT(t *testing.T) *instances {
	c := *m
	c.t = t
	return &c
}

// standaloneAlternating runs a standalone launch with a patient picker in
// which every request lands on the other instance than the one before:
// authorize on A, the sign-in page on B, its POST on A, and so on, then
// the code exchange and a read through the guard, still alternating.
func (m *instances) standaloneAlternating() {
	t := m.t
	cfg := &oauth2.Config{ClientID: "multi-app", RedirectURL: m.redirect,
		Scopes:   []string{"openid", "fhirUser", "launch/patient", "patient/*.rs", "offline_access"},
		Endpoint: oauth2.Endpoint{AuthURL: m.issuer() + "/authorize"}}
	verifier, state := oauth2.GenerateVerifier(), randomString(t)
	b := m.browser()
	q, steps := m.walk(b, cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("aud", m.fhirBase())), func(n int) int { return n % 2 })
	t.Logf("browser steps: %v; pages %q", steps, b.pages)
	if q.Get("state") != state || q.Get("code") == "" {
		t.Fatalf("redirect to the app: %v", q)
	}
	if len(b.pages) < 3 {
		t.Errorf("pages %q: want the sign-in page, the patient picker and the consent page", b.pages)
	}
	next := len(steps) % 2
	a := m.post(next, "/token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {m.redirect}, "code_verifier": {verifier}, "client_id": {"multi-app"}}, false)
	tok := m.mustTokens(a, true, "code exchange on "+instanceNames[next])
	var extra struct {
		Patient string `json:"patient"`
		IDToken string `json:"id_token"`
	}
	_ = json.Unmarshal(a.body, &extra)
	if extra.Patient != "pat-1" || extra.IDToken == "" {
		t.Errorf("token response: patient %q, id_token %t", extra.Patient, extra.IDToken != "")
	}
	m.mustRead(1-next, tok.Access, "the access token of the alternating launch")
	a = m.post(next, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.Refresh},
		"client_id": {"multi-app"}}, false)
	m.mustTokens(a, true, "refresh on "+instanceNames[next])
}

// ehrLaunchAcross creates an EHR launch on A and completes it on B.
func (m *instances) ehrLaunchAcross() {
	t := m.t
	req, _ := http.NewRequest(http.MethodPost, m.base[0]+"/auth/launch",
		strings.NewReader(`{"patient":"pat-2","encounter":"e1","client_id":"multi-conf"}`))
	req.SetBasicAuth("multi-ehr", ehrSecret)
	req.Header.Set("Content-Type", "application/json")
	a := send(m.c, req)
	var created struct {
		Launch string `json:"launch"`
	}
	if a.err != nil || a.status != http.StatusCreated || json.Unmarshal(a.body, &created) != nil || created.Launch == "" {
		t.Fatalf("launch created on A: %d %v %.300s", a.status, a.err, a.body)
	}
	cfg := &oauth2.Config{ClientID: "multi-conf", RedirectURL: m.redirect,
		Scopes:   []string{"launch", "openid", "fhirUser", "patient/*.rs"},
		Endpoint: oauth2.Endpoint{AuthURL: m.issuer() + "/authorize"}}
	verifier := oauth2.GenerateVerifier()
	q, steps := m.walk(m.browser(), cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("aud", m.fhirBase()), oauth2.SetAuthURLParam("launch", created.Launch)),
		func(int) int { return 1 })
	if q.Get("code") == "" {
		t.Fatalf("the launch created on A, authorized on B (%v): %v", steps, q)
	}
	a = m.exchange(1, q.Get("code"), verifier)
	tok := m.mustTokens(a, false, "code exchange on B")
	var ctx struct {
		Patient   string `json:"patient"`
		Encounter string `json:"encounter"`
	}
	_ = json.Unmarshal(a.body, &ctx)
	if ctx.Patient != "pat-2" || ctx.Encounter != "e1" {
		t.Errorf("the launch context of A's launch, in B's token response: %+v", ctx)
	}
	// The launch id is used up on both.
	for i := range 2 {
		q, _ := m.walk(m.browser(), cfg.AuthCodeURL("st2", oauth2.S256ChallengeOption(verifier),
			oauth2.SetAuthURLParam("aud", m.fhirBase()), oauth2.SetAuthURLParam("launch", created.Launch)),
			func(int) int { return i })
		if q.Get("error") == "" || q.Get("code") != "" {
			t.Errorf("the used launch id again on %s: %v", instanceNames[i], q)
		}
	}
	_ = tok
}

// codeRace redeems one code 50 times at once, half on each instance.
func (m *instances) codeRace() {
	t := m.t
	code, verifier := m.codeFlow(m.browser(), 0, "patient/*.rs", "launch/patient")
	const n = 50
	answers := make([]answer, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for k := range n {
		req := m.postRequest(k%2, "/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
			"redirect_uri": {m.redirect}, "code_verifier": {verifier}}, true)
		wg.Go(func() {
			<-start
			answers[k] = send(m.c, req)
		})
	}
	close(start)
	wg.Wait()
	var won []int
	for k, a := range answers {
		switch {
		case a.err == nil && a.status == http.StatusOK && tokenAnswer(a).Access != "":
			won = append(won, k)
		case a.err == nil && a.status == http.StatusBadRequest && oauthError(a) == "invalid_grant":
		default:
			t.Errorf("redemption %d on %s: %d %v %.300s", k, instanceNames[k%2], a.status, a.err, a.body)
		}
	}
	if len(won) != 1 {
		t.Fatalf("%d redemptions of one code succeeded (%v), want exactly one", len(won), won)
	}
	t.Logf("the one success was on %s", instanceNames[won[0]%2])
}

// refreshReuse rotates a refresh token on A, then presents the rotated
// one on B: the family is revoked on both.
func (m *instances) refreshReuse() {
	t := m.t
	code, verifier := m.codeFlow(m.browser(), 0, "patient/*.rs", "launch/patient", "offline_access")
	first := m.mustTokens(m.exchange(0, code, verifier), true, "code exchange on A")
	second := m.mustTokens(m.refresh(0, first.Refresh), true, "refresh on A")
	// Both guards have seen (and cached) both access tokens.
	for i := range 2 {
		m.mustRead(i, first.Access, "the first access token")
		m.mustRead(i, second.Access, "the refreshed access token")
	}
	if a := m.refresh(1, first.Refresh); a.status != http.StatusBadRequest || oauthError(a) != "invalid_grant" {
		t.Fatalf("the rotated refresh token reused on B: %d %v %.300s", a.status, a.err, a.body)
	}
	for i := range 2 {
		if a := m.refresh(i, second.Refresh); a.status != http.StatusBadRequest || oauthError(a) != "invalid_grant" {
			t.Errorf("the family's newest refresh token on %s after the reuse: %d %v %.300s", instanceNames[i], a.status, a.err, a.body)
		}
	}
	time.Sleep(revocationBound)
	for i := range 2 {
		for name, access := range map[string]string{"first": first.Access, "refreshed": second.Access} {
			a := m.read(i, access)
			if a.status != http.StatusUnauthorized || !strings.Contains(a.header.Get("WWW-Authenticate"), "revoked") {
				t.Errorf("the %s access token of the revoked family at %s's guard %s after the reuse: %d %q",
					name, instanceNames[i], revocationBound, a.status, a.header.Get("WWW-Authenticate"))
			}
		}
	}
}

// revocationPoll mirrors the guard's revocation poll interval
// (revocationPoll in handlers/guard/guard_cache.go).
const revocationPoll = 250 * time.Millisecond

// revocationRounds is how many revocations the lag is measured over.
const revocationRounds = 20

// revocationLag revokes access tokens on A (RFC 7009) that B's guard has
// cached, and measures how long after A's answer B refuses them.
func (m *instances) revocationLag() {
	t := m.t
	code, verifier := m.codeFlow(m.browser(), 0, "patient/*.rs", "launch/patient", "offline_access")
	rt := m.mustTokens(m.exchange(0, code, verifier), true, "code exchange on A").Refresh
	var lags []time.Duration
	for r := range revocationRounds {
		tok := m.mustTokens(m.refresh(0, rt), true, "refresh on A")
		rt = tok.Refresh
		m.mustRead(1, tok.Access, "an access token before its revocation")
		// A random pause, so that the revocations do not fall in step
		// with B's polls (each round ends right after one).
		time.Sleep(rand.N(revocationPoll))
		a := m.post(0, "/revoke", url.Values{"token": {tok.Access}, "token_type_hint": {"access_token"}}, true)
		answered := time.Now()
		if a.err != nil || a.status != http.StatusOK {
			t.Fatalf("revocation %d on A: %d %v %.300s", r, a.status, a.err, a.body)
		}
		for {
			b := m.read(1, tok.Access)
			lag := time.Since(answered)
			if b.status == http.StatusUnauthorized {
				lags = append(lags, lag)
				break
			}
			if b.err != nil || b.status != http.StatusOK {
				t.Fatalf("revocation %d: B's guard answered %d %v %.300s", r, b.status, b.err, b.body)
			}
			if lag > 3*revocationBound {
				t.Fatalf("revocation %d on A: B's guard still accepts the token %s later", r, lag)
			}
			time.Sleep(3 * time.Millisecond)
		}
	}
	sorted := slices.Clone(lags)
	slices.Sort(sorted)
	t.Logf("revocation on A to refusal by B's guard, %d revocations: min %s, median %s, max %s (all: %v)",
		len(sorted), sorted[0], sorted[len(sorted)/2], sorted[len(sorted)-1], roundAll(lags))
	if sorted[len(sorted)-1] > revocationBound {
		t.Errorf("a revocation took %s to reach B's guard; the README promises under %s", sorted[len(sorted)-1], revocationBound)
	}
}

// roundAll rounds durations to the millisecond, for logging.
func roundAll(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.Round(time.Millisecond).String()
	}
	return fmt.Sprint(parts)
}
