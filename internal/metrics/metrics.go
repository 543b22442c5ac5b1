// Package metrics is smart_auth's Prometheus instrumentation: the
// collectors, registered in Caddy's metrics registry (so they appear on
// Caddy's /metrics with Caddy's own), and the recorders the handlers call
// on their hot paths.
//
// The collectors are process-wide, as Caddy's own are: every config load
// gets a fresh registry from Caddy, and Register adds the same collectors
// to it, so counts go on across `caddy reload` and two smart_auth handlers
// in one config register them once (the registry's AlreadyRegisteredError
// is expected and ignored).
//
// Label sets are bounded: no token, patient or user id is ever a label;
// label values come from fixed lists (an unknown value counts as "other"),
// and client ids only for configured clients (every other client counts as
// "registered"). Label children are resolved once, on first use, and kept:
// recording allocates nothing.
//
// A nil recorder (*Set, *Tokens, *Guard) records nothing: metrics
// off costs one nil check.
package metrics

import (
	"errors"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// namespace prefixes every metric name.
const namespace = "smart_auth"

// labelOther is the value of a label whose input is not in its list.
const labelOther = "other"

// Set holds the process's collectors. Default returns the one every
// handler uses; tests may build their own with New.
type Set struct {
	tokens         *prometheus.CounterVec
	tokenDuration  *prometheus.HistogramVec
	guardDecisions *prometheus.CounterVec
	guardDuration  *prometheus.HistogramVec
	cacheEntries   prometheus.Gauge
	cacheHits      prometheus.Counter
	cacheMisses    prometheus.Counter
	revocationLag  prometheus.Histogram
	signIns        *prometheus.CounterVec
	registrations  *prometheus.CounterVec
	storeDuration  *prometheus.HistogramVec
	storeErrors    *prometheus.CounterVec
	auditDropped   *prometheus.CounterVec
	keys           *keyCollector

	// guard is the guard's recorder, shared by every guard of the
	// process (its label children are the Set's).
	guard atomic.Pointer[Guard]
	// storeOps are the store decorator's label children (store.go).
	storeOps storeCells
}

// latencyBuckets are the buckets of the latency histograms, in seconds:
// from a cached token check (tens of microseconds) to a slow store.
var latencyBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// lagBuckets are the buckets of the revocation lag, in seconds.
var lagBuckets = []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}

// New builds a Set of unregistered collectors.
func New() *Set {
	s := &Set{
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "tokens_total",
			Help: "Token requests answered by the token endpoint, by grant type, client (configured clients by id, others as \"registered\") and outcome (\"issued\" or the OAuth error code)."},
			[]string{"grant_type", "client", "outcome"}),
		tokenDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "token_request_duration_seconds",
			Help: "Time the token endpoint took to answer, by grant type.", Buckets: latencyBuckets}, []string{"grant_type"}),
		guardDecisions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "guard_decisions_total",
			Help: "Decisions of the guard in front of the FHIR API, by outcome (allowed, refused), FHIR interaction and reason class."},
			[]string{"outcome", "interaction", "reason"}),
		guardDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "guard_duration_seconds",
			Help: "Time the guard took to decide, by outcome (for answers checked against the patient compartment, including the upstream's answer).", Buckets: latencyBuckets},
			[]string{"outcome"}),
		cacheEntries: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "guard_token_cache_entries",
			Help: "Verified access tokens held in the guards' caches."}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "guard_token_cache_hits_total",
			Help: "Access tokens the guard found in its cache."}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "guard_token_cache_misses_total",
			Help: "Access tokens the guard had to verify in full (not cached, or revoked since)."}),
		revocationLag: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "guard_revocation_lag_seconds",
			Help: "Time from a revocation being recorded to a guard applying it to its cache.", Buckets: lagBuckets}),
		signIns: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "sign_ins_total",
			Help: "Sign-ins by method (password, trusted_identity) and outcome (ok, failed, throttled)."}, []string{"method", "outcome"}),
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "registrations_total",
			Help: "Dynamic client registrations by outcome (registered, or the RFC 7591 error code)."}, []string{"outcome"}),
		storeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "store_operation_duration_seconds",
			Help: "Time of the store's operations, by operation.", Buckets: latencyBuckets}, []string{"operation"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "store_errors_total",
			Help: "Store operations that failed, by operation and kind (unavailable, other); not-found, replayed and exists answers are not errors."},
			[]string{"operation", "kind"}),
		auditDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "audit_events_dropped_total",
			Help: "FHIR AuditEvents not delivered, by sink (file, fhir) and reason (queue_full, failed, closed)."}, []string{"sink", "reason"}),
		keys: newKeyCollector(),
	}
	s.storeOps.init(s)
	return s
}

// defaultSet is the process's Set.
var defaultSet = New()

// Default returns the process-wide Set, whose collectors every handler
// records into and Register adds to each config's registry.
func Default() *Set { return defaultSet }

// collectors lists the Set's collectors.
func (s *Set) collectors() []prometheus.Collector {
	return []prometheus.Collector{s.tokens, s.tokenDuration, s.guardDecisions, s.guardDuration, s.cacheEntries,
		s.cacheHits, s.cacheMisses, s.revocationLag, s.signIns, s.registrations, s.storeDuration, s.storeErrors,
		s.auditDropped, s.keys}
}

// Register adds the Set's collectors to a registry (Caddy's, from
// caddy.Context.GetMetricsRegistry). Registering again in the same
// registry (a second smart_auth handler, a second Provision) is not an
// error.
func (s *Set) Register(reg prometheus.Registerer) error {
	if s == nil || reg == nil {
		return nil
	}
	for _, c := range s.collectors() {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if errors.As(err, &already) && already.ExistingCollector == c {
				continue
			}
			return err
		}
	}
	return nil
}

// cell is a label child resolved on first use and kept.
type cell[T any] struct{ p atomic.Pointer[T] }

// get returns the cell's child, resolving it with resolve the first time.
func (c *cell[T]) get(resolve func() T) T {
	if p := c.p.Load(); p != nil {
		return *p
	}
	v := resolve()
	c.p.CompareAndSwap(nil, &v)
	return *c.p.Load()
}

// counterCell is a counter child resolved on first use.
type counterCell = cell[prometheus.Counter]

// observerCell is a histogram child resolved on first use.
type observerCell = cell[prometheus.Observer]

// index returns the position of v in list, or the position of labelOther
// (the list's last entry) when it is not there.
func index(list []string, v string) int {
	for i, s := range list {
		if s == v {
			return i
		}
	}
	return len(list) - 1
}

// SignIn counts a sign-in: method is "password" or "trusted_identity",
// outcome "ok", "failed" or "throttled".
func (s *Set) SignIn(method, outcome string) {
	if s == nil {
		return
	}
	s.signIns.WithLabelValues(pick(signInMethods, method), pick(signInOutcomes, outcome)).Inc()
}

// Registration counts a dynamic client registration: outcome is
// "registered" or the RFC 7591 error code.
func (s *Set) Registration(outcome string) {
	if s == nil {
		return
	}
	s.registrations.WithLabelValues(pick(registrationOutcomes, outcome)).Inc()
}

// AuditDropped counts an AuditEvent a sink did not deliver: reason is
// "queue_full", "failed" or "closed".
func (s *Set) AuditDropped(sink, reason string) {
	if s == nil {
		return
	}
	s.auditDropped.WithLabelValues(pick(auditSinks, sink), pick(auditReasons, reason)).Inc()
}

// The label values of the rarer events (recorded with WithLabelValues:
// these are not hot paths).
var (
	signInMethods        = []string{"password", "trusted_identity", labelOther}
	signInOutcomes       = []string{"ok", "failed", "throttled", labelOther}
	registrationOutcomes = []string{"registered", "invalid_request", "invalid_redirect_uri", "invalid_client_metadata",
		"invalid_software_statement", "invalid_token", "temporarily_unavailable", "server_error", "throttled", labelOther}
	auditSinks   = []string{"file", "fhir", labelOther}
	auditReasons = []string{"queue_full", "failed", "closed", labelOther}
)

// pick returns v when it is in list, else labelOther.
func pick(list []string, v string) string {
	return list[index(list, v)]
}
