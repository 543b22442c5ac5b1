package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Key prefixes of the short-lived records (the record kinds of export.go).
const (
	kindCode    = KindCode
	kindLaunch  = KindLaunch
	kindSession = KindSession
	kindRefresh = KindRefresh
	kindJTI     = KindJTI
	kindRevoked = KindRevocation
	kindRevLog  = KindRevocationLog
)

// SaveCode implements Store.
func (d *DB) SaveCode(_ context.Context, code string, rec *AuthCode, ttl time.Duration) error {
	return d.put(kindCode, HashID(code), rec, d.now().Add(ttl))
}

// RedeemCode implements Store.
func (d *DB) RedeemCode(_ context.Context, code string) (*AuthCode, error) {
	var rec AuthCode
	var replayed bool
	err := d.update(func(txn *badger.Txn) error {
		rec, replayed = AuthCode{}, false
		exp, err := d.get(txn, kindCode, HashID(code), &rec)
		if err != nil {
			return err
		}
		if rec.Used {
			replayed = true
			return nil
		}
		rec.Used = true
		return d.set(txn, kindCode, HashID(code), &rec, exp)
	})
	if err != nil {
		return nil, err
	}
	if replayed {
		return &rec, ErrReplayed
	}
	return &rec, nil
}

// SaveLaunch implements Store.
func (d *DB) SaveLaunch(_ context.Context, id string, rec *Launch, ttl time.Duration) error {
	return d.put(kindLaunch, HashID(id), rec, d.now().Add(ttl))
}

// GetLaunch implements Store.
func (d *DB) GetLaunch(_ context.Context, id string) (*Launch, error) {
	var rec Launch
	if err := d.read(kindLaunch, HashID(id), &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// ConsumeLaunch implements Store.
func (d *DB) ConsumeLaunch(_ context.Context, id string) (*Launch, error) {
	return consume[Launch](d, kindLaunch, HashID(id))
}

// consume reads a record and deletes it in one transaction. Of concurrent
// callers exactly one gets the record; the others see ErrNotFound.
func consume[T any](d *DB, kind, id string) (*T, error) {
	var rec T
	err := d.update(func(txn *badger.Txn) error {
		if _, err := d.get(txn, kind, id, &rec); err != nil {
			return err
		}
		return txn.Delete(key(kind, id))
	})
	if err != nil {
		return nil, err
	}
	return &rec, nil
}

// SaveSession implements Store.
func (d *DB) SaveSession(_ context.Context, id string, rec *Session, ttl time.Duration) error {
	return d.put(kindSession, HashID(id), rec, d.now().Add(ttl))
}

// GetSession implements Store.
func (d *DB) GetSession(ctx context.Context, id string) (*Session, error) {
	return d.GetSessionByHash(ctx, HashID(id))
}

// GetSessionByHash implements Store.
func (d *DB) GetSessionByHash(_ context.Context, hash string) (*Session, error) {
	var rec Session
	if err := d.read(kindSession, hash, &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// DeleteSession implements Store.
func (d *DB) DeleteSession(_ context.Context, id string) error {
	return d.del(kindSession, HashID(id))
}

// SaveRefresh implements Store. A record without an issue time gets the
// store's clock: RevokedClient revocations compare against it.
func (d *DB) SaveRefresh(_ context.Context, token string, rec *RefreshToken, ttl time.Duration) error {
	if rec.IssuedAt.IsZero() {
		c := *rec
		c.IssuedAt = d.now()
		rec = &c
	}
	return d.put(kindRefresh, HashID(token), rec, d.now().Add(ttl))
}

// refreshRevoked tells whether a refresh token is revoked: its family, or
// every token of its client issued at or before a RevokedClient
// revocation. A record without an issue time counts as issued before any
// revocation.
func (d *DB) refreshRevoked(txn *badger.Txn, rec *RefreshToken) (bool, error) {
	if revoked, err := d.isRevoked(txn, RevokedFamily, rec.FamilyID); err != nil || revoked {
		return revoked, err
	}
	return d.revokedAtOrAfter(txn, RevokedClient, rec.ClientID, &TokenRevocationQuery{IssuedAt: rec.IssuedAt})
}

// revokedAtOrAfter tells whether a token of q is covered by a revocation
// by issue time (RevokedClient, RevokedUser) of id: a live one recorded at
// or after the token's issue (TokenRevocationQuery.IssuedBy). The empty id
// names nothing.
func (d *DB) revokedAtOrAfter(txn *badger.Txn, kind RevocationKind, id string, q *TokenRevocationQuery) (bool, error) {
	rev, err := d.revocation(txn, kind, id)
	switch {
	case errors.Is(err, ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return q.IssuedBy(rev.At), nil
}

// GetRefresh implements Store.
func (d *DB) GetRefresh(_ context.Context, token string) (*RefreshToken, error) {
	var rec RefreshToken
	err := d.db.View(func(txn *badger.Txn) error {
		if _, err := d.get(txn, kindRefresh, HashID(token), &rec); err != nil {
			return err
		}
		if rec.Used {
			return ErrNotFound
		}
		revoked, err := d.refreshRevoked(txn, &rec)
		if err == nil && revoked {
			return ErrNotFound
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &rec, nil
}

// Revoke implements Store.
func (d *DB) Revoke(_ context.Context, kind RevocationKind, id string, until time.Time) error {
	return d.update(func(txn *badger.Txn) error { return d.revoke(txn, kind, id, until) })
}

// revoke records a revocation and appends it to the revocation log, which
// is keyed by time so that RevokedSince reads only what is new.
func (d *DB) revoke(txn *badger.Txn, kind RevocationKind, id string, until time.Time) error {
	now := d.now()
	until = RevocationUntil(until, now)
	prev, err := d.revocation(txn, kind, id)
	switch {
	case errors.Is(err, ErrNotFound):
		prev = nil
	case err != nil:
		return err
	}
	at, until, write := MergeRevocation(prev, kind, now, until)
	if !write {
		return nil
	}
	rev := Revocation{Kind: kind, ID: id, At: at, Until: until}
	// Before the commit: a revocation a read can see is in the filter.
	d.revs.add(kind, id, until, now)
	if err := d.set(txn, kindRevoked, string(kind)+":"+id, &rev, until); err != nil {
		return err
	}
	return d.set(txn, kindRevLog, fmt.Sprintf("%020d/%s:%s", now.UnixNano(), kind, id), &rev, until)
}

// IsRevoked implements Store.
func (d *DB) IsRevoked(_ context.Context, kind RevocationKind, id string) (bool, error) {
	var revoked bool
	err := d.db.View(func(txn *badger.Txn) error {
		var err error
		revoked, err = d.isRevoked(txn, kind, id)
		return err
	})
	return revoked, err
}

func (d *DB) isRevoked(txn *badger.Txn, kind RevocationKind, id string) (bool, error) {
	_, err := d.revocation(txn, kind, id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Revocation implements Store.
func (d *DB) Revocation(_ context.Context, kind RevocationKind, id string) (*Revocation, error) {
	var rev *Revocation
	err := d.db.View(func(txn *badger.Txn) error {
		var err error
		rev, err = d.revocation(txn, kind, id)
		return err
	})
	return rev, err
}

// revocation reads the live revocation of an identifier inside txn (as
// get does, treating an expired record as absent). It is on the path of
// every access token's first use (TokenRevoked), where the identifier is
// usually not revoked: a miss allocates only its key.
func (d *DB) revocation(txn *badger.Txn, kind RevocationKind, id string) (*Revocation, error) {
	if id == "" {
		return nil, ErrNotFound
	}
	item, err := txn.Get(revocationKey(kind, id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	rev := new(Revocation)
	if err := item.Value(func(b []byte) error { _, err := d.decode(b, rev); return err }); err != nil {
		return nil, err
	}
	return rev, nil
}

// revocationKey is key(kindRevoked, kind+":"+id), built in one
// allocation.
func revocationKey(kind RevocationKind, id string) []byte {
	k := make([]byte, 0, len(kindRevoked)+1+len(kind)+1+len(id))
	k = append(k, kindRevoked...)
	k = append(k, '/')
	k = append(k, kind...)
	k = append(k, ':')
	return append(k, id...)
}

// RevokedSince implements Store.
func (d *DB) RevokedSince(_ context.Context, since time.Time) ([]Revocation, error) {
	var out []Revocation
	err := d.scan(kindRevLog, fmt.Sprintf("%020d", since.UnixNano()), func(_ string, b []byte) error {
		var rev Revocation
		if _, err := d.decode(b, &rev); err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			return err
		}
		out = append(out, rev)
		return nil
	})
	return out, err
}
