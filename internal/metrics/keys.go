package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartcaddy/smartauth/keys"
)

// keyCollector reports, at each scrape, the age of every issuer's active
// signing keys and the time to their next rotation, from the key rings'
// snapshots (keys.Ring.Status: no store read).
type keyCollector struct {
	age  *prometheus.Desc
	next *prometheus.Desc

	mu    sync.Mutex
	rings map[string]*ringEntry // by issuer
}

// ringEntry is an issuer's registered key ring; its address tells
// registrations of the same issuer apart (during a reload the newest one
// wins).
type ringEntry struct {
	ring StatusSource
}

// StatusSource is what the collector reads of a key ring; *keys.Ring is
// one.
type StatusSource interface {
	Status() keys.Status
}

// newKeyCollector builds the empty collector.
func newKeyCollector() *keyCollector {
	return &keyCollector{
		age: prometheus.NewDesc(namespace+"_signing_key_age_seconds",
			"Time since the issuer's active signing key of an algorithm started signing.", []string{"issuer", "alg"}, nil),
		next: prometheus.NewDesc(namespace+"_signing_key_next_rotation_seconds",
			"Time until the next signing key of an algorithm starts signing (absent for a key from a file, or with rotation off and no successor pending).",
			[]string{"issuer", "alg"}, nil),
		rings: map[string]*ringEntry{},
	}
}

// Describe implements prometheus.Collector.
func (c *keyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.age
	ch <- c.next
}

// Collect implements prometheus.Collector.
func (c *keyCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	rings := make(map[string]StatusSource, len(c.rings))
	for iss, e := range c.rings {
		rings[iss] = e.ring
	}
	c.mu.Unlock()
	for iss, r := range rings {
		st := r.Status()
		for _, k := range st.Keys {
			if k.State == keys.StateActive {
				ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, st.At.Sub(k.ActiveFrom).Seconds(), iss, k.Alg)
			}
		}
		for alg, at := range st.NextRotation {
			ch <- prometheus.MustNewConstMetric(c.next, prometheus.GaugeValue, at.Sub(st.At).Seconds(), iss, alg)
		}
	}
}

// KeyRing reports an issuer's key ring in the signing-key metrics until
// the returned function is called (by the handler's Cleanup). A later
// registration of the same issuer (the reloaded config's) replaces it, and
// the earlier one's release then leaves it alone.
func (s *Set) KeyRing(issuer string, ring StatusSource) (release func()) {
	if s == nil {
		return func() {}
	}
	c := s.keys
	e := &ringEntry{ring: ring}
	c.mu.Lock()
	c.rings[issuer] = e
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.rings[issuer] == e {
			delete(c.rings, issuer)
		}
	}
}
