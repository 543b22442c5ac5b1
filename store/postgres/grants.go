package postgres

import (
	"context"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/smartcaddy/smartauth/store"
)

// SaveCode implements store.Store.
func (d *DB) SaveCode(ctx context.Context, code string, rec *store.AuthCode, ttl time.Duration) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_, err = d.q.Exec(ctx, `INSERT INTO auth_codes (id_hash, used, expires_ns, record) VALUES ($1, $2, $3, $4)
		ON CONFLICT (id_hash) DO UPDATE SET used = EXCLUDED.used, expires_ns = EXCLUDED.expires_ns, record = EXCLUDED.record`,
		store.HashID(code), rec.Used, ns(d.now().Add(ttl)), b)
	return err
}

// RedeemCode implements store.Store. The redemption is one statement,
// UPDATE … SET used = true WHERE NOT used … RETURNING: concurrent
// redemptions queue on the row's lock, and each one after the first
// re-checks the condition on the updated row and matches nothing. Those
// then read the (used) record and get it with ErrReplayed.
func (d *DB) RedeemCode(ctx context.Context, code string) (*store.AuthCode, error) {
	id := store.HashID(code)
	now := ns(d.now())
	var b []byte
	err := d.q.QueryRow(ctx, `UPDATE auth_codes SET used = true
		WHERE id_hash = $1 AND expires_ns > $2 AND NOT used RETURNING record`, id, now).Scan(&b)
	if err == nil {
		var rec store.AuthCode
		if err := json.Unmarshal(b, &rec); err != nil {
			return nil, err
		}
		rec.Used = true
		return &rec, nil
	}
	if err := notFound(err); err != store.ErrNotFound {
		return nil, err
	}
	var used bool
	if err := d.q.QueryRow(ctx, `SELECT used, record FROM auth_codes WHERE id_hash = $1 AND expires_ns > $2`,
		id, now).Scan(&used, &b); err != nil {
		return nil, notFound(err)
	}
	if !used {
		// Saved again between the two statements: not a replay, and
		// not this caller's redemption either.
		return nil, store.ErrNotFound
	}
	var rec store.AuthCode
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, err
	}
	rec.Used = true
	return &rec, store.ErrReplayed
}

// SaveLaunch implements store.Store.
func (d *DB) SaveLaunch(ctx context.Context, id string, rec *store.Launch, ttl time.Duration) error {
	return d.putExpiring(ctx, "launches", store.HashID(id), rec, ttl)
}

// GetLaunch implements store.Store.
func (d *DB) GetLaunch(ctx context.Context, id string) (*store.Launch, error) {
	return getExpiring[store.Launch](ctx, d, "launches", store.HashID(id))
}

// ConsumeLaunch implements store.Store. DELETE … RETURNING of a live row:
// of concurrent callers the one whose delete runs first gets the record;
// the others find no row (ErrNotFound).
func (d *DB) ConsumeLaunch(ctx context.Context, id string) (*store.Launch, error) {
	var b []byte
	err := d.q.QueryRow(ctx, `DELETE FROM launches WHERE id_hash = $1 AND expires_ns > $2 RETURNING record`,
		store.HashID(id), ns(d.now())).Scan(&b)
	if err != nil {
		return nil, notFound(err)
	}
	var rec store.Launch
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// SaveSession implements store.Store.
func (d *DB) SaveSession(ctx context.Context, id string, rec *store.Session, ttl time.Duration) error {
	return d.putExpiring(ctx, "sessions", store.HashID(id), rec, ttl)
}

// GetSession implements store.Store.
func (d *DB) GetSession(ctx context.Context, id string) (*store.Session, error) {
	return d.GetSessionByHash(ctx, store.HashID(id))
}

// GetSessionByHash implements store.Store.
func (d *DB) GetSessionByHash(ctx context.Context, hash string) (*store.Session, error) {
	if !utf8.ValidString(hash) || strings.ContainsRune(hash, 0) {
		// Not a HashID, and not storable in a text column: no such
		// session (rather than a database error).
		return nil, store.ErrNotFound
	}
	return getExpiring[store.Session](ctx, d, "sessions", hash)
}

// DeleteSession implements store.Store.
func (d *DB) DeleteSession(ctx context.Context, id string) error {
	_, err := d.q.Exec(ctx, `DELETE FROM sessions WHERE id_hash = $1`, store.HashID(id))
	return err
}

// putExpiring creates or replaces a record of a table keyed by id_hash
// with an expiry (launches, sessions). table is one of this package's
// constants, never input.
func (d *DB) putExpiring(ctx context.Context, table, idHash string, rec any, ttl time.Duration) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_, err = d.q.Exec(ctx, `INSERT INTO `+table+` (id_hash, expires_ns, record) VALUES ($1, $2, $3)
		ON CONFLICT (id_hash) DO UPDATE SET expires_ns = EXCLUDED.expires_ns, record = EXCLUDED.record`,
		idHash, ns(d.now().Add(ttl)), b)
	return err
}

// getExpiring reads a live record of a table keyed by id_hash.
func getExpiring[T any](ctx context.Context, d *DB, table, idHash string) (*T, error) {
	var b []byte
	err := d.q.QueryRow(ctx, `SELECT record FROM `+table+` WHERE id_hash = $1 AND expires_ns > $2`,
		idHash, ns(d.now())).Scan(&b)
	if err != nil {
		return nil, notFound(err)
	}
	v := new(T)
	if err := json.Unmarshal(b, v); err != nil {
		return nil, err
	}
	return v, nil
}

// PutConsent implements store.Store.
func (d *DB) PutConsent(ctx context.Context, rec *store.Consent, ttl time.Duration) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_, err = d.q.Exec(ctx, `INSERT INTO consents (user_name, client_id, expires_ns, record) VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_name, client_id) DO UPDATE SET expires_ns = EXCLUDED.expires_ns, record = EXCLUDED.record`,
		[]byte(rec.User), []byte(rec.ClientID), ns(d.now().Add(ttl)), b)
	return err
}

// GetConsent implements store.Store.
func (d *DB) GetConsent(ctx context.Context, user, clientID string) (*store.Consent, error) {
	var b []byte
	err := d.q.QueryRow(ctx, `SELECT record FROM consents WHERE user_name = $1 AND client_id = $2 AND expires_ns > $3`,
		[]byte(user), []byte(clientID), ns(d.now())).Scan(&b)
	if err != nil {
		return nil, notFound(err)
	}
	var rec store.Consent
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// DeleteConsent implements store.Store.
func (d *DB) DeleteConsent(ctx context.Context, user, clientID string) error {
	_, err := d.q.Exec(ctx, `DELETE FROM consents WHERE user_name = $1 AND client_id = $2`, []byte(user), []byte(clientID))
	return err
}
