package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// The metrics' names (README "Metrics").
const (
	mTokens        = "smart_auth_tokens_total"
	mDecisions     = "smart_auth_guard_decisions_total"
	mCacheHits     = "smart_auth_guard_token_cache_hits_total"
	mCacheMisses   = "smart_auth_guard_token_cache_misses_total"
	mCacheEntries  = "smart_auth_guard_token_cache_entries"
	mLagCount      = "smart_auth_guard_revocation_lag_seconds_count"
	mSignIns       = "smart_auth_sign_ins_total"
	mRegistrations = "smart_auth_registrations_total"
	mStoreCount    = "smart_auth_store_operation_duration_seconds_count"
	mKeyAge        = "smart_auth_signing_key_age_seconds"
	mKeyNext       = "smart_auth_signing_key_next_rotation_seconds"
)

// TestMetricsCountAScriptedWorkload runs a known workload through a real
// Caddy and reads Caddy's /metrics before and after: every count grows by
// exactly what the workload did, the metrics sit in Caddy's exposition
// next to Caddy's own, and 50 dynamically registered clients add no
// client label value.
func TestMetricsCountAScriptedWorkload(t *testing.T) {
	s := newMetricsSite(t, "")
	startCaddyfile(t, s.caddyfile())
	before, _ := scrapeMetrics(t, s)

	// Token endpoint: 3 successes and 2 refusals of the backend client.
	var access string
	for range 3 {
		access = secretToken(t, s.flowSite, metricsBackendSecret, true)
	}
	for range 2 {
		secretToken(t, s.flowSite, "not-the-secret", false)
	}
	// Guard: 4 allowed searches (1 verification, then 3 cache hits),
	// 2 requests without a token, 1 with a token that is not one.
	for range 4 {
		if resp, body := fetch(t, "GET", s.fhirBase()+"/Observation?code=1", http.Header{"Authorization": {"Bearer " + access}}); resp.StatusCode != http.StatusOK {
			t.Fatalf("guarded search: %d %s", resp.StatusCode, body)
		}
	}
	for range 2 {
		if resp, _ := fetch(t, "GET", s.fhirBase()+"/Observation", nil); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("without a token: %d", resp.StatusCode)
		}
	}
	if resp, _ := fetch(t, "GET", s.fhirBase()+"/Observation", http.Header{"Authorization": {"Bearer not.a.token"}}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a bad token: %d", resp.StatusCode)
	}
	// Sign-ins: one failed; one that works, in a launch of the public
	// app (its consent, and its code exchanged).
	failedSignIn(t, s.flowSite, "wrong-password")
	appToken(t, s.flowSite, "public-app", "launch/patient", "patient/*.rs")
	// 50 registrations, and a token request of each registered client.
	ids := registerClients(t, s.flowSite, 50)
	for _, id := range ids {
		r := postForm(t, s.issuer()+"/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {id}}, nil)
		if r.status == http.StatusOK {
			t.Fatalf("client_credentials for a public registered client: %s", r.raw)
		}
	}
	after, body := scrapeMetrics(t, s)

	cc := "client_credentials"
	expectDeltas(t, before, after, map[string]float64{
		series(mTokens, "grant_type", cc, "client", metricsBackend, "outcome", "issued"):                 3,
		series(mTokens, "grant_type", cc, "client", metricsBackend, "outcome", "invalid_client"):         2,
		series(mTokens, "grant_type", "authorization_code", "client", "public-app", "outcome", "issued"): 1,
		series(mDecisions, "outcome", "allowed", "interaction", "search-type", "reason", "allowed"):      4,
		series(mDecisions, "outcome", "refused", "interaction", "none", "reason", "missing_token"):       2,
		series(mDecisions, "outcome", "refused", "interaction", "none", "reason", "invalid_token"):       1,
		mCacheHits:   3,
		mCacheMisses: 2,
		series(mSignIns, "method", "password", "outcome", "failed"): 1,
		series(mSignIns, "method", "password", "outcome", "ok"):     1,
		series(mRegistrations, "outcome", "registered"):             50,
		series(mStoreCount, "operation", "put_client"):              50,
		series(mStoreCount, "operation", "redeem_code"):             1,
	})
	var registered float64
	for k, v := range after {
		if strings.HasPrefix(k, mTokens+"{") && strings.Contains(k, `client="registered"`) {
			registered += v - before[k]
		}
	}
	if registered != 50 {
		t.Errorf("token requests of registered clients counted under client=\"registered\": %v, want 50", registered)
	}
	// Bounded labels: the configured clients, "registered" and "none"
	// (in the series this test changed: other tests' configured clients
	// are in the process's collectors too); no registered client id
	// anywhere in the exposition.
	allowed := []string{"confidential-app", "ehr", "none", "public-app", "registered", metricsBackend}
	for _, c := range after.changedLabelValues(before, mTokens, "client") {
		if !slices.Contains(allowed, c) {
			t.Errorf("client label value %q", c)
		}
	}
	for _, id := range ids {
		if strings.Contains(body, id) {
			t.Fatalf("the exposition names the registered client %s", id)
		}
	}
	// Caddy's own metrics in the same exposition; the key ring's.
	if !strings.Contains(body, "caddy_admin_http_requests_total") && !strings.Contains(body, "go_goroutines") {
		t.Error("Caddy's own metrics are not in the exposition")
	}
	for _, m := range []string{mKeyAge, mKeyNext} {
		if _, ok := after[series(m, "alg", "ES256", "issuer", s.issuer())]; !ok {
			t.Errorf("%s for ES256 of %s is missing", m, s.issuer())
		}
	}
	if after[mCacheEntries] < 1 {
		t.Errorf("%s = %v with a cached token", mCacheEntries, after[mCacheEntries])
	}

	// A revocation at the revocation endpoint: the guard applies it (its
	// lag is observed once) and refuses the token.
	r := postForm(t, s.issuer()+"/revoke", url.Values{"token": {access}}, basic(metricsBackend, metricsBackendSecret))
	if r.status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.status, r.raw)
	}
	guardRefusesWithin(t, s.flowSite, access, time.Now(), 10*time.Second)
	revoked, _ := scrapeMetrics(t, s)
	expectDeltas(t, after, revoked, map[string]float64{mLagCount: 1})
}

// TestMetricsSurviveReload reloads the config under counted traffic: the
// reload succeeds (the collectors are registered again in the new
// config's registry without error), nothing is exposed twice, the
// counters go on from where they were, the replaced guard's cache leaves
// the cache gauge, and one key ring per issuer is reported.
func TestMetricsSurviveReload(t *testing.T) {
	s := newMetricsSite(t, "")
	js := adapt(t, s.caddyfile())
	load(t, js)
	access := secretToken(t, s.flowSite, metricsBackendSecret, true)
	if resp, body := fetch(t, "GET", s.fhirBase()+"/Observation", http.Header{"Authorization": {"Bearer " + access}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("guarded search: %d %s", resp.StatusCode, body)
	}
	issued := series(mTokens, "grant_type", "client_credentials", "client", metricsBackend, "outcome", "issued")
	a, _ := scrapeMetrics(t, s)
	for range 2 {
		load(t, js) // forced: the handler is provisioned again
	}
	// A reload closes the old server's keep-alive connections: start anew.
	client.CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
	b, _ := scrapeMetrics(t, s)
	if b[issued] != a[issued] {
		t.Errorf("%s: %v after the reloads, %v before", issued, b[issued], a[issued])
	}
	if a[mCacheEntries]-b[mCacheEntries] != 1 {
		t.Errorf("%s: %v before the reloads, %v after: the replaced guard's one cached token must leave it", mCacheEntries, a[mCacheEntries], b[mCacheEntries])
	}
	secretToken(t, s.flowSite, metricsBackendSecret, true)
	c, _ := scrapeMetrics(t, s)
	expectDeltas(t, b, c, map[string]float64{issued: 1})
	if got := c.labelValues(mKeyAge, "issuer"); !slices.Contains(got, s.issuer()) {
		t.Errorf("issuers of %s: %v", mKeyAge, got)
	}
}

// TestMetricsCountThrottledSignIns: five wrong passwords for a user are
// counted as failed, the sixth attempt is throttled (429) and counted so.
func TestMetricsCountThrottledSignIns(t *testing.T) {
	s := newMetricsSite(t, "")
	startCaddyfile(t, s.caddyfile())
	before, _ := scrapeMetrics(t, s)
	for range 5 {
		failedSignIn(t, s.flowSite, "wrong-password")
	}
	if status, _ := submitSignIn(t, s.flowSite, "alice-pw"); status != http.StatusTooManyRequests {
		t.Fatalf("the sixth sign-in: %d, want 429", status)
	}
	after, _ := scrapeMetrics(t, s)
	expectDeltas(t, before, after, map[string]float64{
		series(mSignIns, "method", "password", "outcome", "failed"):    5,
		series(mSignIns, "method", "password", "outcome", "throttled"): 1,
		series(mSignIns, "method", "password", "outcome", "ok"):        0,
	})
}

// TestMetricsCountTrustedIdentitySignIns: with sign_in trusted_identity
// behind Caddy's basic_auth, each new session from {http.auth.user.id}
// counts as an ok trusted_identity sign-in, and an identity that names no
// configured user as a failed one.
func TestMetricsCountTrustedIdentitySignIns(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("basic-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	s := newMetricsSite(t, "sign_in password trusted_identity")
	s.after = fmt.Sprintf("basic_auth /auth/login {\n alice %s\n mallory %s\n }\n respond /fhir/* \"upstream\" 200", hash, hash)
	startCaddyfile(t, s.caddyfile())
	before, _ := scrapeMetrics(t, s)
	for _, user := range []string{"alice", "alice", "mallory"} {
		req, _ := http.NewRequest("GET", s.issuer()+"/login", nil)
		req.SetBasicAuth(user, "basic-pw")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	after, _ := scrapeMetrics(t, s)
	expectDeltas(t, before, after, map[string]float64{
		series(mSignIns, "method", "trusted_identity", "outcome", "ok"):     2,
		series(mSignIns, "method", "trusted_identity", "outcome", "failed"): 1,
	})
}
