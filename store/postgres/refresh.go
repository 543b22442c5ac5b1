package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smartcaddy/smartauth/store"
)

// putRefresh creates or replaces a refresh token's row (idHash is
// store.HashID of the token) until exp.
func putRefresh(ctx context.Context, q querier, idHash string, rec *store.RefreshToken, exp time.Time) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, `INSERT INTO refresh_tokens (id_hash, family, client_id, subject, used, expires_ns, record)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (id_hash) DO UPDATE SET family = EXCLUDED.family, client_id = EXCLUDED.client_id,
			subject = EXCLUDED.subject, used = EXCLUDED.used, expires_ns = EXCLUDED.expires_ns, record = EXCLUDED.record`,
		idHash, []byte(rec.FamilyID), []byte(rec.ClientID), []byte(rec.Subject), rec.Used, ns(exp), b)
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

// RotateRefresh implements store.Store, in one transaction with the Badger
// store's rules. The presented token's row is locked first (SELECT … FOR
// UPDATE): concurrent presentations of one token run one after the other,
// and each later one sees the earlier one's result (the token used), so
// it is a grace retry or a replay, never a second rotation. A grace retry
// also locks the successor it replaces. A replay revokes the family in the
// same transaction.
func (d *DB) RotateRefresh(ctx context.Context, token string, rot store.Rotation) (*store.RefreshToken, error) {
	var old store.RefreshToken
	var replayed bool
	var errCheck error
	id := store.HashID(token)
	err := d.inTx(ctx, func(tx pgx.Tx) error {
		old, replayed, errCheck = store.RefreshToken{}, false, nil
		rec, exp, err := getRefresh(ctx, tx, id, d.now(), "FOR UPDATE")
		if err != nil {
			return err
		}
		old = *rec
		// Order this rotation against a RevokedClient revocation of
		// the client (clientLock), then read the clock.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock_shared($1)`, clientLock(old.ClientID)); err != nil {
			return err
		}
		now := d.now()
		if revoked, err := d.revokedRefresh(ctx, tx, &old, now); err != nil || revoked {
			if err == nil {
				err = store.ErrNotFound
			}
			return err
		}
		// prev is the successor a grace retry replaces.
		var prev *store.RefreshToken
		var prevExp time.Time
		if old.Used {
			if prev, prevExp, err = graceSuccessor(ctx, tx, &old, rot, now); err != nil {
				return err
			}
			if prev == nil {
				replayed = true
				return d.revokeReusedFamily(ctx, tx, &old, exp, rot.TTL, now)
			}
		}
		successor := old
		if rot.Check != nil {
			s, err := rot.Check(&old)
			if err != nil {
				if old.Used && errors.Is(err, store.ErrReplayed) {
					replayed = true
					return d.revokeReusedFamily(ctx, tx, &old, exp, rot.TTL, now)
				}
				errCheck = err
				return err
			}
			successor = *s
		}
		if prev != nil {
			prev.Used, prev.Superseded, prev.UsedAt, prev.Successor = true, true, now, ""
			if err := putRefresh(ctx, tx, old.Successor, prev, prevExp); err != nil {
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
		used.Successor = store.HashID(rot.Next)
		if err := putRefresh(ctx, tx, id, &used, exp); err != nil {
			return err
		}
		successor.Used, successor.Superseded, successor.UsedAt, successor.Successor = false, false, time.Time{}, ""
		successor.FamilyID = old.FamilyID
		successor.IssuedAt = now
		return putRefresh(ctx, tx, store.HashID(rot.Next), &successor, now.Add(rot.TTL))
	})
	if errCheck != nil {
		return nil, errCheck
	}
	if err != nil {
		return nil, err
	}
	if replayed {
		return &old, store.ErrReplayed
	}
	return &old, nil
}

// graceSuccessor returns, locked, the successor a second presentation of
// the rotated token old would replace, with its expiry: when grace is on,
// old was first rotated less than grace ago, and its successor is live
// and unused. Otherwise it returns nil: the presentation is reuse.
func graceSuccessor(ctx context.Context, tx pgx.Tx, old *store.RefreshToken, rot store.Rotation, now time.Time) (*store.RefreshToken, time.Time, error) {
	if !rot.InGrace(old, now) {
		return nil, time.Time{}, nil
	}
	next, exp, err := getRefresh(ctx, tx, old.Successor, now, "FOR UPDATE")
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, time.Time{}, nil
	case err != nil:
		return nil, time.Time{}, err
	case next.Used:
		// The chain moved on: the successor was rotated itself.
		return nil, time.Time{}, nil
	}
	return next, exp, nil
}

// revokeReusedFamily revokes the family of a reused refresh token until
// store.ReusedFamilyUntil.
func (d *DB) revokeReusedFamily(ctx context.Context, tx pgx.Tx, old *store.RefreshToken, exp time.Time, ttl time.Duration, now time.Time) error {
	return d.revoke(ctx, tx, store.RevokedFamily, old.FamilyID, store.ReusedFamilyUntil(exp, ttl, now))
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
		g := grant(rec.ClientID)
		g.Families = append(g.Families, rec.FamilyID)
		if rec.IssuedAt.After(g.IssuedAt) {
			g.IssuedAt, g.Scope = rec.IssuedAt, rec.Scope
		}
		if rec.AuthTime.After(g.AuthTime) {
			g.AuthTime = rec.AuthTime
		}
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
