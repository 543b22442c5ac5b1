package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Key prefixes of the long-lived records (the record kinds of export.go).
const (
	kindClient  = KindClient
	kindConsent = KindConsent
	kindKey     = KindKey
)

// PutClient implements Store.
func (d *DB) PutClient(_ context.Context, c *Client) error {
	if c.ID == "" {
		return errors.New("client without id")
	}
	return d.put(kindClient, c.ID, c, time.Time{})
}

// GetClient implements Store.
func (d *DB) GetClient(_ context.Context, id string) (*Client, error) {
	var c Client
	if err := d.read(kindClient, id, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// DeleteClient implements Store.
func (d *DB) DeleteClient(_ context.Context, id string) error {
	return d.del(kindClient, id)
}

// ListClients implements Store.
func (d *DB) ListClients(_ context.Context) ([]*Client, error) {
	return list[Client](d, kindClient)
}

// UpdateClient implements Store.
func (d *DB) UpdateClient(_ context.Context, id string, fn func(c *Client) (*Client, error)) error {
	return d.update(func(txn *badger.Txn) error {
		var cur Client
		if _, err := d.get(txn, kindClient, id, &cur); err != nil {
			return err
		}
		next, err := fn(&cur)
		switch {
		case err != nil:
			return err
		case next == nil:
			return txn.Delete(key(kindClient, id))
		case next.ID != id:
			return errors.New("UpdateClient cannot change a client's id")
		}
		return d.set(txn, kindClient, id, next, time.Time{})
	})
}

// RemoveClient implements Store. Of concurrent removals of one client
// exactly one succeeds; the others find it gone (ErrNotFound).
func (d *DB) RemoveClient(_ context.Context, id string, check func(c *Client) error, revokeUntil time.Time) error {
	return d.update(func(txn *badger.Txn) error {
		var cur Client
		if _, err := d.get(txn, kindClient, id, &cur); err != nil {
			return err
		}
		if check != nil {
			if err := check(&cur); err != nil {
				return err
			}
		}
		if err := d.revoke(txn, RevokedClient, id, revokeUntil); err != nil {
			return err
		}
		return txn.Delete(key(kindClient, id))
	})
}

// list decodes every live record of a kind.
func list[T any](d *DB, kind string) ([]*T, error) {
	var out []*T
	err := d.scan(kind, "", func(_ string, b []byte) error {
		v := new(T)
		if _, err := d.decode(b, v); err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			return err
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

func consentID(user, clientID string) string {
	return HashID(user + "\x00" + clientID)
}

// PutConsent implements Store.
func (d *DB) PutConsent(_ context.Context, rec *Consent, ttl time.Duration) error {
	return d.put(kindConsent, consentID(rec.User, rec.ClientID), rec, d.now().Add(ttl))
}

// GetConsent implements Store.
func (d *DB) GetConsent(_ context.Context, user, clientID string) (*Consent, error) {
	var rec Consent
	if err := d.read(kindConsent, consentID(user, clientID), &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// Keys implements Store.
func (d *DB) Keys(_ context.Context) ([]*KeyRecord, error) {
	return list[KeyRecord](d, kindKey)
}

// UpdateKeys implements Store.
func (d *DB) UpdateKeys(_ context.Context, fn func([]*KeyRecord) ([]*KeyRecord, error)) error {
	return d.update(func(txn *badger.Txn) error {
		// Badger detects conflicts only on keys a transaction read. Two
		// updates that both find no keys would both commit their
		// inserts; reading and writing one marker makes them conflict,
		// and the loser runs fn again on the winner's keys.
		marker := []byte("meta/keys-version")
		if _, err := txn.Get(marker); err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		if err := txn.Set(marker, []byte(d.now().UTC().Format(time.RFC3339Nano))); err != nil {
			return err
		}
		prefix := key(kindKey, "")
		var cur []*KeyRecord
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true})
		for it.Rewind(); it.ValidForPrefix(prefix); it.Next() {
			var k KeyRecord
			if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b[8:], &k) }); err != nil {
				it.Close()
				return err
			}
			cur = append(cur, &k)
		}
		it.Close()
		next, err := fn(cur)
		if err != nil {
			return err
		}
		keep := make(map[string]bool, len(next))
		for _, k := range next {
			keep[k.KID] = true
			if err := d.set(txn, kindKey, k.KID, k, time.Time{}); err != nil {
				return err
			}
		}
		for _, k := range cur {
			if !keep[k.KID] {
				if err := txn.Delete(key(kindKey, k.KID)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
