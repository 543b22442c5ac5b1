package metrics

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/store"
)

// TestRegisterTwiceAndGather registers a Set twice in one pedantic
// registry (as two handlers, or a second Provision, do) and in a second
// one (a reloaded config), records every kind of metric and gathers: no
// error, and the samples are where they were recorded.
func TestRegisterTwiceAndGather(t *testing.T) {
	s := New()
	reg := prometheus.NewPedanticRegistry()
	for range 2 {
		if err := s.Register(reg); err != nil {
			t.Fatalf("register: %v", err)
		}
	}
	tok := s.Tokens([]string{"app"})
	tok.Token("client_credentials", "app", "issued", time.Millisecond)
	tok.Token("client_credentials", "dyn-123", "invalid_client", time.Millisecond)
	tok.Token("password", "", "unsupported_grant_type", time.Millisecond)
	g := s.Guard()
	g.Decision(true, "read", 0, "", time.Now())
	g.Decision(false, "", 401, "", time.Now())
	g.Decision(false, "frobnicate", 403, "insufficient_scope", time.Time{})
	g.CacheHit()
	g.CacheMiss()
	g.CacheSize(3)
	g.CacheSize(-1)
	g.RevocationApplied(time.Now().Add(-time.Second))
	s.SignIn("password", "failed")
	s.SignIn("magic", "ok")
	s.Registration("registered")
	s.AuditDropped("fhir", "queue_full")
	release := s.KeyRing("https://auth.example.org", fixedRing{})
	defer release()

	second := prometheus.NewPedanticRegistry()
	if err := s.Register(second); err != nil {
		t.Fatalf("register in a second registry: %v", err)
	}
	for _, r := range []*prometheus.Registry{reg, second} {
		if _, err := r.Gather(); err != nil {
			t.Fatalf("gather: %v", err)
		}
	}
	for series, want := range map[prometheus.Collector]float64{
		s.tokens.WithLabelValues("client_credentials", "app", "issued"):                    1,
		s.tokens.WithLabelValues("client_credentials", ClientRegistered, "invalid_client"): 1,
		s.tokens.WithLabelValues("other", ClientNone, "unsupported_grant_type"):            1,
		s.guardDecisions.WithLabelValues("allowed", "read", "allowed"):                     1,
		s.guardDecisions.WithLabelValues("refused", "none", "missing_token"):               1,
		s.guardDecisions.WithLabelValues("refused", "other", "insufficient_scope"):         1,
		s.cacheEntries:                           2,
		s.signIns.WithLabelValues("other", "ok"): 1,
	} {
		if got := testutil.ToFloat64(series); got != want {
			t.Errorf("%v: %v, want %v", series, got, want)
		}
	}
	if n := testutil.CollectAndCount(s.keys); n != 2 {
		t.Errorf("key metrics: %d series, want 2 (age and next rotation)", n)
	}
}

// fixedRing is a key ring status with one active ES256 key.
type fixedRing struct{}

// Status implements StatusSource.
func (fixedRing) Status() keys.Status {
	now := time.Now()
	return keys.Status{At: now, Keys: []keys.KeyStatus{{KID: "k", Alg: "ES256", State: keys.StateActive, ActiveFrom: now.Add(-time.Hour)}},
		NextRotation: map[string]time.Time{"ES256": now.Add(time.Hour)}}
}

// TestKeyRingReplacedOnReload: the newer registration of an issuer wins,
// and the older one's release leaves it in place.
func TestKeyRingReplacedOnReload(t *testing.T) {
	s := New()
	oldRelease := s.KeyRing("iss", fixedRing{})
	newRelease := s.KeyRing("iss", fixedRing{})
	oldRelease()
	if n := testutil.CollectAndCount(s.keys); n != 2 {
		t.Fatalf("after the old release: %d series, want 2", n)
	}
	newRelease()
	if n := testutil.CollectAndCount(s.keys); n != 0 {
		t.Fatalf("after both releases: %d series, want 0", n)
	}
}

// TestReasonClassesMatchTheirLabels ties the reason constants to the
// label values.
func TestReasonClassesMatchTheirLabels(t *testing.T) {
	for status, code := range map[int]string{401: "", 400: "invalid_request", 503: "temporarily_unavailable", 502: "", 413: "invalid_request", 405: "invalid_request"} {
		got := reasons[reasonClass(status, code)]
		want := map[int]string{401: "missing_token", 400: "invalid_request", 503: "unavailable", 502: "upstream", 413: "too_large", 405: "not_supported"}[status]
		if got != want {
			t.Errorf("%d %q: %s, want %s", status, code, got, want)
		}
	}
	if reasons[reasonClass(401, "invalid_token")] != "invalid_token" || reasons[reasonOther] != labelOther || reasons[reasonAllowed] != "allowed" {
		t.Error("reason constants and labels disagree")
	}
}

// TestRecordingAllocatesNothing: once a label child is resolved, the hot
// paths allocate nothing.
func TestRecordingAllocatesNothing(t *testing.T) {
	s := New()
	tok, g := s.Tokens([]string{"app"}), s.Guard()
	start := time.Now()
	record := func() {
		tok.Token("client_credentials", "app", "issued", time.Millisecond)
		g.Decision(true, "search-type", 0, "", start)
		g.Decision(false, "read", 403, "insufficient_scope", start)
		g.CacheHit()
	}
	record()
	if n := testing.AllocsPerRun(100, record); n != 0 {
		t.Errorf("%v allocations per recording, want 0", n)
	}
	var nilGuard *Guard
	var nilTokens *Tokens
	nilGuard.Decision(true, "read", 0, "", start) // metrics off: no-ops
	nilTokens.Token("x", "y", "z", 0)
}

// TestInstrumentedStore times a real Badger store's operations and counts
// its errors: not-found is an answer, not an error; a closed store's
// failure is.
func TestInstrumentedStore(t *testing.T) {
	db, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := New()
	st := s.InstrumentStore(db)
	if Unwrap(st) != store.Store(db) {
		t.Fatal("Unwrap does not return the wrapped store")
	}
	ctx := context.Background()
	if _, err := st.GetClient(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetClient: %v", err)
	}
	if err := st.PutClient(ctx, &store.Client{ID: "c1", Type: store.ClientPublic, RedirectURIs: []string{"https://a.example/cb"}}); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	if _, err := st.ListClients(ctx); err == nil {
		t.Fatal("a closed store listed clients")
	}
	if n := testutil.CollectAndCount(s.storeDuration); n != 3 {
		t.Errorf("%d operations timed, want 3", n)
	}
	if got := testutil.ToFloat64(s.storeErrors.WithLabelValues("get_client", "other")); got != 0 {
		t.Errorf("a not-found counted as an error")
	}
	out, err := testutil.CollectAndLint(s.storeErrors)
	if err != nil || len(out) > 0 {
		t.Errorf("lint: %v %v", err, out)
	}
	if !strings.Contains(fmtErrors(t, s), `operation="list_clients"`) {
		t.Errorf("the closed store's failure is not counted: %s", fmtErrors(t, s))
	}
}

// fmtErrors renders the store error counter's series.
func fmtErrors(t *testing.T, s *Set) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.storeErrors)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				b.WriteString(l.GetName() + "=\"" + l.GetValue() + "\" ")
			}
		}
	}
	return b.String()
}

// BenchmarkGuardRecording is what metrics add to one guarded request:
// a cache hit, a decision and its latency (the clock read included).
func BenchmarkGuardRecording(b *testing.B) {
	g := New().Guard()
	start := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		g.CacheHit()
		g.Decision(true, "search-type", 0, "", start)
	}
}
