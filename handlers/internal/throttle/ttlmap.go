// Package throttle holds the in-memory bookkeeping of smartauth's
// handlers: a map whose entries expire and whose size is bounded (pending
// authorization requests), and a per-key attempt limiter over a fixed
// window (failed sign-ins, open registrations).
//
// Nothing here survives a restart; a caller that must survive a Caddy
// config reload keeps its values in a caddy.UsagePool (handlers/state.go).
package throttle

import (
	"sync"
	"time"
)

// Map is a small in-memory map whose entries expire and whose size is
// bounded: when full, expired entries are swept, then the entry closest to
// expiry is evicted. It is safe for concurrent use. Every method takes the
// current time, so that tests need no clock.
type Map[V any] struct {
	mu      sync.Mutex
	max     int
	entries map[string]*entry[V]
}

// entry is a value of a Map and when it expires.
type entry[V any] struct {
	val V
	exp time.Time
}

// NewMap returns an empty Map of at most maxEntries entries (at least
// one).
func NewMap[V any](maxEntries int) *Map[V] {
	return &Map[V]{max: max(maxEntries, 1), entries: make(map[string]*entry[V])}
}

// Get returns a live entry.
func (m *Map[V]) Get(key string, now time.Time) (V, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[key]
	if !ok || !now.Before(e.exp) {
		var zero V
		return zero, false
	}
	return e.val, true
}

// Set stores an entry until exp.
func (m *Map[V]) Set(key string, val V, exp, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.setLocked(key, val, exp, now)
}

// setLocked is Set with m.mu held: it makes room for a new key first.
func (m *Map[V]) setLocked(key string, val V, exp, now time.Time) {
	if _, ok := m.entries[key]; !ok && len(m.entries) >= m.max {
		for k, e := range m.entries {
			if !now.Before(e.exp) {
				delete(m.entries, k)
			}
		}
		if len(m.entries) >= m.max {
			var victim string
			var soonest time.Time
			first := true
			for k, e := range m.entries {
				if first || e.exp.Before(soonest) {
					victim, soonest, first = k, e.exp, false
				}
			}
			delete(m.entries, victim)
		}
	}
	m.entries[key] = &entry[V]{val: val, exp: exp}
}

// Update runs fn on the live entry (or the zero value when there is none)
// and stores what it returns until the expiry it returns; keep false
// deletes the entry. It returns what fn returned, atomically with the
// read.
func (m *Map[V]) Update(key string, now time.Time, fn func(cur V, found bool) (next V, exp time.Time, keep bool)) V {
	m.mu.Lock()
	defer m.mu.Unlock()
	var cur V
	e, found := m.entries[key]
	if found && now.Before(e.exp) {
		cur = e.val
	} else {
		found = false
	}
	next, exp, keep := fn(cur, found)
	if keep {
		m.setLocked(key, next, exp, now)
	} else {
		delete(m.entries, key)
	}
	return next
}

// Take returns a live entry and deletes it, exactly once.
func (m *Map[V]) Take(key string, now time.Time) (V, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[key]
	delete(m.entries, key)
	if !ok || !now.Before(e.exp) {
		var zero V
		return zero, false
	}
	return e.val, true
}

// Remove deletes an entry.
func (m *Map[V]) Remove(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, key)
}

// Len is the number of entries held, expired ones included until they
// are swept.
func (m *Map[V]) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}
