package postgres

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	"github.com/smartcaddy/smartauth/store"
)

// refreshUpsertSQL creates or replaces a refresh token's row; its
// arguments are refreshArgs.
const refreshUpsertSQL = `INSERT INTO refresh_tokens (id_hash, family, client_id, subject, used, expires_ns, record)
	VALUES ($1, $2, $3, $4, $5, $6, $7)
	ON CONFLICT (id_hash) DO UPDATE SET family = EXCLUDED.family, client_id = EXCLUDED.client_id,
		subject = EXCLUDED.subject, used = EXCLUDED.used, expires_ns = EXCLUDED.expires_ns, record = EXCLUDED.record`

// refreshArgs are refreshUpsertSQL's arguments for a refresh token's row
// (idHash is store.HashID of the token) until exp.
func refreshArgs(idHash string, rec *store.RefreshToken, exp time.Time) ([]any, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	return []any{idHash, []byte(rec.FamilyID), []byte(rec.ClientID), []byte(rec.Subject), rec.Used, ns(exp), b}, nil
}

// putRefresh creates or replaces a refresh token's row (idHash is
// store.HashID of the token) until exp.
func putRefresh(ctx context.Context, q querier, idHash string, rec *store.RefreshToken, exp time.Time) error {
	args, err := refreshArgs(idHash, rec, exp)
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, refreshUpsertSQL, args...)
	return err
}

// getRefresh reads a live refresh token's record and expiry; lock is ""
// or a locking clause (FOR UPDATE).
func getRefresh(ctx context.Context, q querier, idHash string, now time.Time, lock string) (*store.RefreshToken, time.Time, error) {
	var b []byte
	var exp int64
	err := q.QueryRow(ctx, `SELECT record, expires_ns FROM refresh_tokens WHERE id_hash = $1 AND expires_ns > $2 `+lock,
		idHash, ns(now)).Scan(&b, &exp)
	if err != nil {
		return nil, time.Time{}, notFound(err)
	}
	var rec store.RefreshToken
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, time.Time{}, err
	}
	return &rec, fromNS(exp), nil
}

// SaveRefresh implements store.Store. A record without an issue time gets
// the store's clock: RevokedClient revocations compare against it.
func (d *DB) SaveRefresh(ctx context.Context, token string, rec *store.RefreshToken, ttl time.Duration) error {
	now := d.now()
	if rec.IssuedAt.IsZero() {
		c := *rec
		c.IssuedAt = now
		rec = &c
	}
	return putRefresh(ctx, d.q, store.HashID(token), rec, now.Add(ttl))
}

// GetRefresh implements store.Store.
func (d *DB) GetRefresh(ctx context.Context, token string) (*store.RefreshToken, error) {
	now := d.now()
	rec, _, err := getRefresh(ctx, d.q, store.HashID(token), now, "")
	if err != nil {
		return nil, err
	}
	if rec.Used {
		return nil, store.ErrNotFound
	}
	revoked, err := d.revokedRefresh(ctx, d.q, rec, now)
	switch {
	case err != nil:
		return nil, err
	case revoked:
		return nil, store.ErrNotFound
	}
	return rec, nil
}

// UserGrants implements store.Store: the user's live, unused, unrevoked
// refresh tokens grouped by client, and the user's live consents.
func (d *DB) UserGrants(ctx context.Context, user string) ([]store.UserGrant, error) {
	now := d.now()
	by := map[string]*store.UserGrant{}
	grant := func(client string) *store.UserGrant {
		g := by[client]
		if g == nil {
			g = &store.UserGrant{ClientID: client}
			by[client] = g
		}
		return g
	}
	toks, err := list[store.RefreshToken](ctx, d.q, `SELECT record FROM refresh_tokens
		WHERE subject = $1 AND NOT used AND expires_ns > $2 ORDER BY id_hash COLLATE "C"`, []byte(user), ns(now))
	if err != nil {
		return nil, err
	}
	for _, rec := range toks {
		revoked, err := d.revokedRefresh(ctx, d.q, rec, now)
		if err != nil {
			return nil, err
		}
		if revoked {
			continue
		}
		grant(rec.ClientID).AddFamily(rec)
	}
	consents, err := list[store.Consent](ctx, d.q, `SELECT record FROM consents
		WHERE user_name = $1 AND expires_ns > $2 ORDER BY client_id`, []byte(user), ns(now))
	if err != nil {
		return nil, err
	}
	for _, c := range consents {
		g := grant(c.ClientID)
		g.Remembered = c.Scopes
		if c.GrantedAt.After(g.AuthTime) {
			g.AuthTime = c.GrantedAt
		}
	}
	out := make([]store.UserGrant, 0, len(by))
	for _, g := range by {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ClientID < out[j].ClientID })
	return out, nil
}
