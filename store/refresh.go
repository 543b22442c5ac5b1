package store

import (
	"context"
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Rotation is one exchange of a refresh token for its successor
// (RotateRefresh).
type Rotation struct {
	// Next is the successor token; it lives TTL.
	Next string
	TTL  time.Duration
	// Grace is the refresh grace period. For this long after a token was
	// first rotated, presenting it again (an app whose answer was lost)
	// rotates it again: Next replaces the successor issued before, which
	// is invalidated, provided that successor has not been used itself.
	// Outside that, a second presentation is reuse. Zero: strict
	// rotation, every second presentation is reuse.
	Grace time.Duration
	// Check, when not nil, sees the presented token's record inside the
	// transaction and returns the successor's (normally the same
	// record). Its error refuses the rotation, is returned unchanged and
	// leaves the store untouched; except when the presented token was
	// already rotated (a grace retry: old.Used), where an error that Is
	// ErrReplayed makes the presentation reuse.
	Check func(old *RefreshToken) (*RefreshToken, error)
}

// RotateRefresh implements Store.
func (d *DB) RotateRefresh(_ context.Context, token string, rot Rotation) (*RefreshToken, error) {
	var old RefreshToken
	var replayed bool
	var errCheck error
	err := d.update(func(txn *badger.Txn) error {
		old, replayed, errCheck = RefreshToken{}, false, nil
		now := d.now()
		exp, err := d.get(txn, kindRefresh, HashID(token), &old)
		if err != nil {
			return err
		}
		if revoked, err := d.refreshRevoked(txn, &old); err != nil || revoked {
			if err == nil {
				err = ErrNotFound
			}
			return err
		}
		// prev is the successor a grace retry replaces.
		var prev *RefreshToken
		var prevExp time.Time
		if old.Used {
			if prev, prevExp, err = d.graceSuccessor(txn, &old, rot, now); err != nil {
				return err
			}
			if prev == nil {
				replayed = true
				return d.revokeReusedFamily(txn, &old, exp, rot.TTL, now)
			}
		}
		successor := old
		if rot.Check != nil {
			s, err := rot.Check(&old)
			if err != nil {
				if old.Used && errors.Is(err, ErrReplayed) {
					replayed = true
					return d.revokeReusedFamily(txn, &old, exp, rot.TTL, now)
				}
				errCheck = err
				return err
			}
			successor = *s
		}
		if prev != nil {
			prev.Used, prev.Superseded, prev.UsedAt, prev.Successor = true, true, now, ""
			if err := d.set(txn, kindRefresh, old.Successor, prev, prevExp); err != nil {
				return err
			}
		}
		used := old
		used.Used = true
		if used.UsedAt.IsZero() {
			// The grace period runs from the first rotation: retries
			// never extend it.
			used.UsedAt = now
		}
		used.Successor = HashID(rot.Next)
		if err := d.set(txn, kindRefresh, HashID(token), &used, exp); err != nil {
			return err
		}
		successor.Used, successor.Superseded, successor.UsedAt, successor.Successor = false, false, time.Time{}, ""
		successor.FamilyID = old.FamilyID
		successor.IssuedAt = now
		return d.set(txn, kindRefresh, HashID(rot.Next), &successor, now.Add(rot.TTL))
	})
	if errCheck != nil {
		return nil, errCheck
	}
	if err != nil {
		return nil, err
	}
	if replayed {
		return &old, ErrReplayed
	}
	return &old, nil
}

// graceSuccessor returns the successor a second presentation of the
// rotated token old would replace, with its expiry: when grace is on, old
// was first rotated less than grace ago, and its successor is live and
// unused. Otherwise it returns nil: the presentation is reuse.
func (d *DB) graceSuccessor(txn *badger.Txn, old *RefreshToken, rot Rotation, now time.Time) (*RefreshToken, time.Time, error) {
	if !rot.InGrace(old, now) {
		return nil, time.Time{}, nil
	}
	var next RefreshToken
	exp, err := d.get(txn, kindRefresh, old.Successor, &next)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, time.Time{}, nil
	case err != nil:
		return nil, time.Time{}, err
	case next.Used:
		// The chain moved on: the successor was rotated itself (or
		// superseded, which cannot happen to the one old names).
		return nil, time.Time{}, nil
	}
	return &next, exp, nil
}

// revokeReusedFamily revokes the family of a reused refresh token until
// ReusedFamilyUntil.
func (d *DB) revokeReusedFamily(txn *badger.Txn, old *RefreshToken, exp time.Time, ttl time.Duration, now time.Time) error {
	return d.revoke(txn, RevokedFamily, old.FamilyID, ReusedFamilyUntil(exp, ttl, now))
}
