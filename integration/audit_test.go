package integration

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// auditEntry is an audit trail entry of the Caddy log (logger
// http.handlers.smart_auth.audit).
type auditEntry map[string]any

// str reads a string field.
func (e auditEntry) str(k string) string { s, _ := e[k].(string); return s }

// auditEntries reads the audit entries of a Caddy log file.
func auditEntries(t *testing.T, logFile string) []auditEntry {
	t.Helper()
	f, err := os.Open(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []auditEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e auditEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.str("logger") == "http.handlers.smart_auth.audit" {
			out = append(out, e)
		}
	}
	return out
}

// readAuditEvents waits (at most 10s: the sink writes asynchronously)
// until the AuditEvent file holds n lines, and decodes them.
func readAuditEvents(t *testing.T, path string, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		raw, _ := os.ReadFile(path)
		lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
		if len(raw) > 0 && len(lines) >= n {
			var out []map[string]any
			for _, l := range lines {
				var ev map[string]any
				if err := json.Unmarshal([]byte(l), &ev); err != nil {
					t.Fatalf("AuditEvent line %q: %v", l, err)
				}
				out = append(out, ev)
			}
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d AuditEvents in the file, want %d", len(lines), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkAuditEvent checks the elements FHIR R4 requires of an AuditEvent
// (type, recorded, agent with requestor, source with observer) and the
// codes' shapes (action, outcome, codings with a system).
func checkAuditEvent(t *testing.T, ev map[string]any) {
	t.Helper()
	fail := func(why string) { t.Helper(); b, _ := json.Marshal(ev); t.Errorf("AuditEvent %s: %s", why, b) }
	if ev["resourceType"] != "AuditEvent" {
		fail("resourceType")
	}
	if typ, _ := ev["type"].(map[string]any); typ["system"] == nil || typ["code"] == nil {
		fail("type needs a system and a code")
	}
	if rec, _ := ev["recorded"].(string); rec == "" {
		fail("recorded is required")
	} else if _, err := time.Parse(time.RFC3339Nano, rec); err != nil {
		fail("recorded is not an instant")
	}
	if a, _ := ev["action"].(string); !slices.Contains([]string{"C", "R", "U", "D", "E"}, a) {
		fail("action")
	}
	if o, _ := ev["outcome"].(string); !slices.Contains([]string{"0", "4", "8", "12"}, o) {
		fail("outcome")
	}
	agents, _ := ev["agent"].([]any)
	requestors := 0
	for _, a := range agents {
		am, _ := a.(map[string]any)
		r, ok := am["requestor"].(bool)
		if !ok {
			fail("agent.requestor is required")
		}
		if r {
			requestors++
		}
		if am["who"] == nil {
			fail("agent.who")
		}
	}
	if len(agents) == 0 || requestors != 1 {
		fail("one requesting agent is required")
	}
	src, _ := ev["source"].(map[string]any)
	if obs, _ := src["observer"].(map[string]any); len(obs) == 0 {
		fail("source.observer is required")
	}
}

// subtypeCode is the smart_auth action code among an AuditEvent's
// subtypes.
func subtypeCode(ev map[string]any) string {
	subs, _ := ev["subtype"].([]any)
	for _, s := range subs {
		m, _ := s.(map[string]any)
		if m["system"] == "urn:smartcaddy:smartauth:audit-action" {
			c, _ := m["code"].(string)
			return c
		}
	}
	return ""
}

// TestAuditTrail runs each audited action once through Caddy and checks
// its log entry (who, what, when, outcome) and its FHIR AuditEvent in the
// audit_events file (the same events, structurally valid R4).
func TestAuditTrail(t *testing.T) {
	dir := t.TempDir()
	events := filepath.Join(dir, "audit.ndjson")
	s := newMetricsSite(t, "audit_events file "+events)
	s.logFile = filepath.Join(dir, "caddy.log")
	startCaddyfile(t, s.caddyfile())

	failedSignIn(t, s.flowSite, "wrong-password")                           // sign-in refused
	appToken(t, s.flowSite, "public-app", "launch/patient", "patient/*.rs") // sign-in, consent, token issued
	access := secretToken(t, s.flowSite, metricsBackendSecret, true)        // token issued
	secretToken(t, s.flowSite, "not-the-secret", false)                     // token refused
	if r := postForm(t, s.issuer()+"/revoke", url.Values{"token": {access}}, basic(metricsBackend, metricsBackendSecret)); r.status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.status, r.raw)
	}
	d := dcr{t: t, s: s.flowSite}
	status, _, reg := d.call(http.MethodPost, s.issuer()+"/register", dcrToken, map[string]any{
		"redirect_uris": []string{s.redirect}, "token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code"}})
	dyn, _ := reg["client_id"].(string)
	uri, _ := reg["registration_client_uri"].(string)
	rat, _ := reg["registration_access_token"].(string)
	if status != http.StatusCreated {
		t.Fatalf("register: %d %v", status, reg)
	}
	if status, _, _ := d.call(http.MethodDelete, uri, rat, nil); status != http.StatusNoContent {
		t.Fatalf("RFC 7592 delete: %d", status)
	}
	s.admin(t, "POST", "clients/"+metricsBackend+"/revoke", nil).expect(t, "admin revocation", http.StatusOK)
	s.admin(t, "POST", "keys/rotate", nil).expect(t, "admin rotation", http.StatusOK)

	type want struct {
		action, outcome string
		fields          map[string]string
	}
	wants := []want{
		{"sign-in", "refused", map[string]string{"user": "alice", "detail": "password"}},
		{"sign-in", "success", map[string]string{"user": "alice", "detail": "password"}},
		{"consent", "success", map[string]string{"user": "alice", "client_id": "public-app", "patient": "p1"}},
		// x/oauth2 tries HTTP Basic first, which a public client may not use.
		{"token-refused", "refused", map[string]string{"client_id": "public-app", "detail": "authorization_code"}},
		{"token-issued", "success", map[string]string{"user": "alice", "client_id": "public-app", "detail": "authorization_code", "patient": "p1"}},
		{"token-issued", "success", map[string]string{"client_id": metricsBackend, "detail": "client_credentials", "scope": "system/*.rs"}},
		{"token-refused", "refused", map[string]string{"client_id": metricsBackend, "detail": "client_credentials"}},
		{"revocation", "success", map[string]string{"client_id": metricsBackend, "target": "access_token"}},
		{"registration", "success", map[string]string{"client_id": dyn}},
		{"revocation", "success", map[string]string{"client_id": dyn, "target": "client"}}, // RFC 7592 delete
		{"revocation", "success", map[string]string{"client_id": metricsBackend}},          // the admin's
		{"admin", "success", map[string]string{"detail": "signing keys rotated"}},
	}
	got := auditEntries(t, s.logFile)
	if len(got) != len(wants) {
		for _, e := range got {
			t.Logf("entry %v", e)
		}
		t.Fatalf("%d audit entries, want %d", len(got), len(wants))
	}
	for i, w := range wants {
		e := got[i]
		if e.str("action") != w.action || e.str("outcome") != w.outcome || e["at"] == nil || e.str("msg") != "audit" {
			t.Errorf("entry %d: %v, want %s %s", i, e, w.action, w.outcome)
		}
		for k, v := range w.fields {
			if e.str(k) != v {
				t.Errorf("entry %d (%s): %s = %q, want %q", i, w.action, k, e.str(k), v)
			}
		}
	}
	if adm := got[10]; !strings.Contains(adm.str("admin"), "remote_addr=") {
		t.Errorf("the admin's revocation does not say who: %v", adm)
	}
	if e := got[0]; e.str("remote") == "" || e.str("reason") == "" {
		t.Errorf("a refused sign-in without remote address or reason: %v", e)
	}

	evs := readAuditEvents(t, events, len(wants))
	if len(evs) != len(wants) {
		t.Fatalf("%d AuditEvents, want %d", len(evs), len(wants))
	}
	for i, ev := range evs {
		checkAuditEvent(t, ev)
		if code := subtypeCode(ev); code != wants[i].action {
			t.Errorf("AuditEvent %d: action %q, want %q", i, code, wants[i].action)
		}
	}
	if evs[0]["outcome"] != "4" || evs[1]["outcome"] != "0" {
		t.Errorf("sign-in outcomes %v %v, want 4 and 0", evs[0]["outcome"], evs[1]["outcome"])
	}
	if typ, _ := evs[1]["type"].(map[string]any); typ["code"] != "110114" {
		t.Errorf("a sign-in's type %v, want DICOM 110114 User Authentication", typ)
	}
	raw, _ := json.Marshal(evs[4]["entity"])
	if !strings.Contains(string(raw), `"reference":"Patient/p1"`) {
		t.Errorf("the token's AuditEvent does not name the patient: %s", raw)
	}
}

// auditUpstream is a FHIR server stand-in that counts the AuditEvents
// POSTed to it, answering status.
type auditUpstream struct {
	mu     sync.Mutex
	events []map[string]any
	bad    []string // what was wrong with requests
}

// start serves the upstream until the test ends.
func (u *auditUpstream) start(t *testing.T, status int) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev map[string]any
		u.mu.Lock()
		defer u.mu.Unlock()
		switch {
		case r.Method != http.MethodPost || r.URL.Path != "/fhir/AuditEvent":
			u.bad = append(u.bad, r.Method+" "+r.URL.Path)
		case r.Header.Get("Content-Type") != "application/fhir+json":
			u.bad = append(u.bad, "Content-Type "+r.Header.Get("Content-Type"))
		case json.Unmarshal(body, &ev) != nil:
			u.bad = append(u.bad, "not JSON: "+string(body))
		default:
			u.events = append(u.events, ev)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/fhir"
}

// waitFor waits (at most 10s) until n events arrived.
func (u *auditUpstream) waitFor(t *testing.T, n int) []map[string]any {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		u.mu.Lock()
		got, bad := slices.Clone(u.events), slices.Clone(u.bad)
		u.mu.Unlock()
		if len(bad) > 0 {
			t.Fatalf("bad AuditEvent requests: %v", bad)
		}
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
	}
}

// TestAuditEventsPostedToFHIR points audit_events at a FHIR server: each
// audited action is POSTed there once as an AuditEvent; a server that
// refuses them has every event counted as dropped, and requests are
// served all the same.
func TestAuditEventsPostedToFHIR(t *testing.T) {
	for _, status := range []int{http.StatusCreated, http.StatusInternalServerError} {
		up := &auditUpstream{}
		s := newMetricsSite(t, "audit_events fhir "+up.start(t, status))
		startCaddyfile(t, s.caddyfile())
		dropped := series("smart_auth_audit_events_dropped_total", "reason", "failed", "sink", "fhir")
		before, _ := scrapeMetrics(t, s)
		for range 3 {
			secretToken(t, s.flowSite, metricsBackendSecret, true)
		}
		for range 2 {
			secretToken(t, s.flowSite, "not-the-secret", false)
		}
		evs := up.waitFor(t, 5)
		if len(evs) != 5 {
			t.Fatalf("answering %d: %d AuditEvents arrived, want 5", status, len(evs))
		}
		outcomes := map[string]int{}
		for _, ev := range evs {
			checkAuditEvent(t, ev)
			outcomes[subtypeCode(ev)+" "+ev["outcome"].(string)]++
		}
		if outcomes["token-issued 0"] != 3 || outcomes["token-refused 4"] != 2 {
			t.Errorf("answering %d: AuditEvents %v", status, outcomes)
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			after, _ := scrapeMetrics(t, s)
			want := 0.0
			if status >= 300 {
				want = 5
			}
			if got := after[dropped] - before[dropped]; got == want {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("answering %d: %s grew by %v, want %v", status, dropped, got, want)
			}
		}
		if got := up.waitFor(t, 0); len(got) != 5 {
			t.Errorf("answering %d: %d AuditEvents in the end, want 5", status, len(got))
		}
	}
}
