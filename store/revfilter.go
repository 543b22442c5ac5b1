package store

import (
	"encoding/binary"
	"strings"
	"sync"
	"time"
)

// Bounds of the revocation filter.
const (
	// revFilterMax bounds the identifiers the filter holds; past it the
	// filter gives up (every question goes to Badger) until Close.
	revFilterMax = 1 << 20
	// revFilterMargin is how long after its Until an identifier stays in
	// the filter: pruning never depends on a clock that could step back
	// by less than this.
	revFilterMargin = time.Hour
)

// revFilter is the in-memory list of every identifier (kind and id) this
// DB holds a revocation of, so that TokenRevoked answers the common case
// (nothing about the token is revoked) without a read transaction.
//
// It is sound because this process is the only writer of the directory
// (Badger locks it) and every revocation is written by DB.revoke, which
// adds the identifier here before its transaction commits: a revocation a
// read could see is in the filter, so an identifier absent from it has no
// revocation. An identifier present (or a filter that gave up) sends the
// question to Badger, which decides; a transaction that adds an identifier
// and then fails leaves only a harmless false positive. Entries are
// dropped revFilterMargin after their Until (the record's own expiry,
// never earlier than it: the filter keeps the latest Until written).
type revFilter struct {
	mu      sync.RWMutex
	until   map[revKey]time.Time // identifier → latest Until written
	full    bool                 // gave up: every question goes to Badger
	pruneAt time.Time            // the next time pruning may drop something
	max     int                  // revFilterMax (smaller in tests)
}

// newRevFilter builds an empty filter.
func newRevFilter() *revFilter {
	return &revFilter{until: map[revKey]time.Time{}, pruneAt: farFutureFilter, max: revFilterMax}
}

// farFutureFilter is pruneAt while nothing can be pruned.
var farFutureFilter = time.Unix(1<<62, 0)

// add records a revocation of kind and id lasting until until; now is the
// store's clock.
func (f *revFilter) add(kind RevocationKind, id string, until, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.full {
		return
	}
	k := revKey{kind, id}
	if prev, ok := f.until[k]; !ok || until.After(prev) {
		f.until[k] = until
	}
	if drop := until.Add(revFilterMargin); drop.Before(f.pruneAt) {
		f.pruneAt = drop
	}
	if len(f.until) >= f.max {
		f.pruneLocked(now)
		if len(f.until) >= f.max {
			f.full, f.until = true, nil
		}
	} else if now.After(f.pruneAt) {
		f.pruneLocked(now)
	}
}

// pruneLocked drops the identifiers whose Until lies more than
// revFilterMargin before now; f.mu is held for writing.
func (f *revFilter) pruneLocked(now time.Time) {
	f.pruneAt = farFutureFilter
	for k, until := range f.until {
		switch drop := until.Add(revFilterMargin); {
		case now.After(drop):
			delete(f.until, k)
		case drop.Before(f.pruneAt):
			f.pruneAt = drop
		}
	}
}

// mayRevoke tells whether any identifier of q may have a revocation: false
// only when none of them is in the filter (and the filter has not given
// up), so that q's token is certainly not revoked.
func (f *revFilter) mayRevoke(q *TokenRevocationQuery) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.full {
		return true
	}
	for _, k := range [...]revKey{{RevokedToken, q.JTI}, {RevokedFamily, q.Family}, {RevokedClient, q.Client}, {RevokedUser, q.User}} {
		if k.id == "" {
			continue
		}
		if _, ok := f.until[k]; ok {
			return true
		}
	}
	return false
}

// revKey is the filter's key of an identifier: a struct, so that a
// lookup builds no string.
type revKey struct {
	kind RevocationKind
	id   string
}

// loadRevFilter fills the filter with the revocations stored in d (at
// Open, before any other use of d).
func (d *DB) loadRevFilter() error {
	f := newRevFilter()
	now := d.now()
	err := d.scan(kindRevoked, "", func(id string, b []byte) error {
		kind, rest, ok := strings.Cut(id, ":")
		if !ok || len(b) < 8 {
			// Unreadable: Badger decides every question.
			f.full = true
			return nil
		}
		until := farFutureFilter
		if n := binary.BigEndian.Uint64(b[:8]); n != 0 {
			until = time.Unix(0, int64(n))
		}
		f.add(RevocationKind(kind), rest, until, now)
		return nil
	})
	d.revs = f
	return err
}
