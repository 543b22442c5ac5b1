package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The label values of smart_auth_guard_decisions_total.
var (
	decisionOutcomes = [...]string{"allowed", "refused"}
	// interactions are the guard's interaction names (handlers/guard's
	// interaction.go), "none" for a request refused before its
	// interaction was known.
	interactions = [...]string{"none", "capabilities", "read", "vread", "update", "patch", "delete", "history-instance",
		"history-type", "history-system", "create", "search-type", "search-system", "search-compartment",
		"conditional-create", "conditional-update", "conditional-patch", "conditional-delete", "batch", "operation", labelOther}
	// reasons are the reason classes: "allowed", or what kind of refusal.
	reasons = [...]string{"allowed", "missing_token", "invalid_token", "insufficient_scope", "forbidden",
		"invalid_request", "not_supported", "too_large", "unavailable", "upstream", labelOther}
)

// Reason classes of refusals (the label reason).
const (
	reasonAllowed      = 0
	reasonMissing      = 1
	reasonInvalidToken = 2
	reasonScope        = 3
	reasonForbidden    = 4
	reasonInvalid      = 5
	reasonNotSupported = 6
	reasonTooLarge     = 7
	reasonUnavailable  = 8
	reasonUpstream     = 9
	reasonOther        = 10
)

// Guard records the guards' decisions, token cache and revocation lag. One
// per Set, shared by every guard of the process (Set.Guard).
type Guard struct {
	set       *Set
	decisions [len(decisionOutcomes)][len(interactions)][len(reasons)]counterCell
	durations [len(decisionOutcomes)]prometheus.Observer
	hits      prometheus.Counter
	misses    prometheus.Counter
	entries   prometheus.Gauge
	lag       prometheus.Observer
}

// Guard returns the guards' recorder; nil (recording nothing) on a nil
// Set.
func (s *Set) Guard() *Guard {
	if s == nil {
		return nil
	}
	if g := s.guard.Load(); g != nil {
		return g
	}
	g := &Guard{set: s, hits: s.cacheHits, misses: s.cacheMisses, entries: s.cacheEntries, lag: s.revocationLag}
	for i, o := range decisionOutcomes {
		g.durations[i] = s.guardDuration.WithLabelValues(o)
	}
	s.guard.CompareAndSwap(nil, g)
	return s.guard.Load()
}

// Decision records one decision of the guard: allowed or refused with the
// refusal's HTTP status and OAuth error code, the FHIR interaction (""
// when unknown) and when the decision started (zero: not timed).
func (g *Guard) Decision(allowed bool, interaction string, status int, code string, start time.Time) {
	if g == nil {
		return
	}
	oi, ri := 0, reasonAllowed
	if !allowed {
		oi, ri = 1, reasonClass(status, code)
	}
	ii := 0
	if interaction != "" {
		ii = index(interactions[:], interaction)
	}
	g.decisions[oi][ii][ri].get(func() prometheus.Counter {
		return g.set.guardDecisions.WithLabelValues(decisionOutcomes[oi], interactions[ii], reasons[ri])
	}).Inc()
	if !start.IsZero() {
		g.durations[oi].Observe(time.Since(start).Seconds())
	}
}

// reasonClass is the reason class of a refusal's status and code.
func reasonClass(status int, code string) int {
	switch {
	case status == 401 && code == "":
		return reasonMissing
	case code == "invalid_token":
		return reasonInvalidToken
	case code == "insufficient_scope":
		return reasonScope
	case status == 403:
		return reasonForbidden
	case status == 400:
		return reasonInvalid
	case status == 405:
		return reasonNotSupported
	case status == 413:
		return reasonTooLarge
	case status == 503:
		return reasonUnavailable
	case status == 502:
		return reasonUpstream
	}
	return reasonOther
}

// CacheHit counts a token found in a guard's cache.
func (g *Guard) CacheHit() {
	if g != nil {
		g.hits.Inc()
	}
}

// CacheMiss counts a token verified in full.
func (g *Guard) CacheMiss() {
	if g != nil {
		g.misses.Inc()
	}
}

// CacheSize adds delta (negative when entries go) to the number of cached
// tokens.
func (g *Guard) CacheSize(delta int) {
	if g != nil && delta != 0 {
		g.entries.Add(float64(delta))
	}
}

// RevocationApplied records the lag of a revocation recorded at at that a
// guard has just applied.
func (g *Guard) RevocationApplied(at time.Time) {
	if g != nil {
		g.lag.Observe(max(time.Since(at), 0).Seconds())
	}
}
