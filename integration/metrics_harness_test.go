package integration

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The metrics site's backend client (client_credentials with a secret).
const (
	metricsBackend       = "sym-backend"
	metricsBackendSecret = "sym-backend-secret-for-metrics-tests"
)

// metricsExtra adds to the flow site a backend client and registration by
// initial access token (not throttled, unlike open registration).
const metricsExtra = `
		client sym-backend {
			secret {env.SMARTAUTH_TEST_SYM_BACKEND}
			grant_types client_credentials
			allow_secret_for_client_credentials
			scopes system/*.rs
		}
		registration {
			initial_access_token {env.SMARTAUTH_TEST_DCR_TOKEN}
		}`

// newMetricsSite builds (without starting) an admin site (the admin
// endpoint serves Caddy's /metrics) with metricsExtra and more options.
func newMetricsSite(t *testing.T, more string) adminSite {
	t.Helper()
	t.Setenv("SMARTAUTH_TEST_SYM_BACKEND", metricsBackendSecret)
	t.Setenv("SMARTAUTH_TEST_DCR_TOKEN", dcrToken)
	return newAdminSite(t, newFlowSite(t, metricsExtra+"\n"+more))
}

// samples are the samples of a Prometheus text exposition, by series:
// name{label="value",…} with the labels in the exposition's order (sorted
// by name).
type samples map[string]float64

// scrapeMetrics reads Caddy's /metrics from the admin endpoint and fails
// the test on a series given twice (a double registration shows so).
func scrapeMetrics(t *testing.T, s adminSite) (samples, string) {
	t.Helper()
	resp, body := fetch(t, "GET", "http://"+s.adminAddr()+"/metrics", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	out := samples{}
	for line := range strings.SplitSeq(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("unparsable sample %q", line)
		}
		if _, dup := out[line[:i]]; dup {
			t.Fatalf("series %s exposed twice", line[:i])
		}
		out[line[:i]] = v
	}
	return out, body
}

// series names a series: metric name and label pairs (name, value, …),
// sorted by label name as the exposition writes them.
func series(name string, kv ...string) string {
	if len(kv) == 0 {
		return name
	}
	pairs := make([]string, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		pairs = append(pairs, fmt.Sprintf("%s=%q", kv[i], kv[i+1]))
	}
	slices.Sort(pairs)
	return name + "{" + strings.Join(pairs, ",") + "}"
}

// labelValues lists the values a label takes in a metric's series.
func (m samples) labelValues(metric, label string) []string {
	return m.changedLabelValues(nil, metric, label)
}

// changedLabelValues lists the values a label takes in the metric's
// series that differ from before (every series, when before is nil): the
// collectors are the process's, so other tests' series are there too.
func (m samples) changedLabelValues(before samples, metric, label string) []string {
	var out []string
	for k, v := range m {
		if !strings.HasPrefix(k, metric+"{") || (before != nil && before[k] == v) {
			continue
		}
		for p := range strings.SplitSeq(strings.TrimSuffix(strings.TrimPrefix(k, metric+"{"), "}"), ",") {
			if v, ok := strings.CutPrefix(p, label+"="); ok {
				if uq, err := strconv.Unquote(v); err == nil && !slices.Contains(out, uq) {
					out = append(out, uq)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// expectDeltas fails the test unless each series grew by exactly its
// count from before to after.
func expectDeltas(t *testing.T, before, after samples, want map[string]float64) {
	t.Helper()
	for k, d := range want {
		if got := after[k] - before[k]; got != d {
			t.Errorf("%s: grew by %v, want %v", k, got, d)
		}
	}
}

// basic is an Authorization header with client credentials.
func basic(id, secret string) http.Header {
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))}}
}

// secretToken runs client_credentials for the backend client with a
// secret; ok tells whether a token is expected.
func secretToken(t *testing.T, s flowSite, secret string, ok bool) string {
	t.Helper()
	r := postForm(t, s.issuer()+"/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"system/*.rs"}},
		basic(metricsBackend, secret))
	if (r.status == http.StatusOK) != ok {
		t.Fatalf("client_credentials: %d %s", r.status, r.raw)
	}
	return r.str("access_token")
}

// failedSignIn submits the sign-in form with a wrong password and expects
// the form again.
func failedSignIn(t *testing.T, s flowSite, password string) {
	t.Helper()
	if status, page := submitSignIn(t, s, password); status != http.StatusOK || !strings.Contains(page, "password") {
		t.Fatalf("failed sign-in: %d %s", status, page)
	}
}

// submitSignIn submits alice's sign-in form with a password and returns
// the answer's status and page.
func submitSignIn(t *testing.T, s flowSite, password string) (int, string) {
	t.Helper()
	b := newBrowser(t)
	resp, err := b.c.Get(s.issuer() + "/login")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	b.choose["password"] = password
	if resp, err = b.c.Do(b.submit(resp.Request.URL, string(body))); err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(page)
}

// registerClients registers n public clients through the registration
// endpoint and returns their ids.
func registerClients(t *testing.T, s flowSite, n int) []string {
	t.Helper()
	d := dcr{t: t, s: s}
	ids := make([]string, 0, n)
	for i := range n {
		status, _, reg := d.call(http.MethodPost, s.issuer()+"/register", dcrToken, map[string]any{
			"client_name": fmt.Sprintf("App %d", i), "redirect_uris": []string{s.redirect},
			"token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code"},
			"scope": "launch/patient patient/*.rs",
		})
		id, _ := reg["client_id"].(string)
		if status != http.StatusCreated || id == "" {
			t.Fatalf("register %d: %d %v", i, status, reg)
		}
		ids = append(ids, id)
	}
	return ids
}
