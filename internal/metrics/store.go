package metrics

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartcaddy/smartauth/store"
)

// timedStore is a store.Store that records every operation's latency and
// errors (smart_auth_store_operation_duration_seconds,
// smart_auth_store_errors_total) around the store it wraps.
type timedStore struct {
	store.Store
	cells *storeCells
}

// storeCells are the store metrics' label children, by operation,
// resolved on first use.
type storeCells struct {
	set         *Set
	durations   [numStoreOps]observerCell
	unavailable [numStoreOps]counterCell
	other       [numStoreOps]counterCell
}

// init ties the cells to their Set.
func (c *storeCells) init(s *Set) { c.set = s }

// InstrumentStore wraps a store so that every operation is timed and its
// errors counted in s; on a nil Set it returns st unchanged.
func (s *Set) InstrumentStore(st store.Store) store.Store {
	if s == nil || st == nil {
		return st
	}
	return &timedStore{Store: st, cells: &s.storeOps}
}

// Unwrap returns the store a decorator wraps (for code that needs the
// concrete store, such as its directory), or st itself.
func Unwrap(st store.Store) store.Store {
	if t, ok := st.(*timedStore); ok {
		return t.Store
	}
	return st
}

// done records an operation that started at start and ended with err.
func (s *timedStore) done(op int, start time.Time, err error) {
	c := s.cells
	c.durations[op].get(func() prometheus.Observer {
		return c.set.storeDuration.WithLabelValues(storeOpNames[op])
	}).Observe(time.Since(start).Seconds())
	if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrReplayed) || errors.Is(err, store.ErrExists) {
		return
	}
	kind, cells := "other", &c.other
	if errors.Is(err, store.ErrUnavailable) {
		kind, cells = "unavailable", &c.unavailable
	}
	cells[op].get(func() prometheus.Counter {
		return c.set.storeErrors.WithLabelValues(storeOpNames[op], kind)
	}).Inc()
}
