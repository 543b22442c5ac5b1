package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smartcaddy/smartauth/store"
)

// clientLock is the advisory-lock key that orders a RevokedClient
// revocation of clientID against refresh rotations of its tokens: the
// revocation takes it exclusively before it reads the clock for its At,
// a rotation shares it before it reads the clock for the successor's
// IssuedAt. Whichever comes second sees the first: a rotation after the
// revocation finds it; a revocation after the rotation has an At at or
// after the successor's IssuedAt, and covers it. The key is the first 8
// bytes of SHA-256 of clientLockPrefix and the client id, big-endian, so
// that SQL can compute it from a row's client_id too (clientLockSQLOf): a
// rotation takes the lock in the same round trip that reads its token.
func clientLock(clientID string) int64 {
	h := sha256.Sum256([]byte(clientLockPrefix + clientID))
	return int64(binary.BigEndian.Uint64(h[:8]))
}

// clientLockPrefix starts every input of clientLock's hash.
const clientLockPrefix = "smartauth/client-revocation:"

// clientLockSQLOf is clientLock in SQL of a bytea expression (a column
// or a parameter, never input).
func clientLockSQLOf(expr string) string {
	return `('x' || encode(substr(sha256('` + clientLockPrefix + `'::bytea || ` + expr + `), 1, 8), 'hex'))::bit(64)::bigint`
}

// Revoke implements store.Store.
func (d *DB) Revoke(ctx context.Context, kind store.RevocationKind, id string, until time.Time) error {
	return d.inTx(ctx, func(tx pgx.Tx) error { return d.revoke(ctx, tx, kind, id, until) })
}

// revoke records a revocation inside tx and appends it to the revocation
// log, with the rules the Badger store shares (store.RevocationUntil,
// store.MergeRevocation); one that adds nothing writes nothing. The identifier's
// row is locked (SELECT … FOR UPDATE, or the INSERT that creates it), so
// concurrent revocations of one identifier apply one after the other.
func (d *DB) revoke(ctx context.Context, tx querier, kind store.RevocationKind, id string, until time.Time) error {
	if kind == store.RevokedClient {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, clientLock(id)); err != nil {
			return err
		}
	}
	now := d.now()
	until = store.RevocationUntil(until, now)
	var at time.Time
	for attempt := 0; ; attempt++ {
		var atNS, untilNS int64
		err := tx.QueryRow(ctx, `SELECT at_ns, until_ns FROM revocations WHERE kind = $1 AND id = $2 FOR UPDATE`,
			string(kind), []byte(id)).Scan(&atNS, &untilNS)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			at = now
			tag, err := tx.Exec(ctx, `INSERT INTO revocations (kind, id, at_ns, until_ns) VALUES ($1, $2, $3, $4)
				ON CONFLICT (kind, id) DO NOTHING`, string(kind), []byte(id), ns(at), ns(until))
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				// Created meanwhile by a concurrent revocation that
				// has committed: lock and merge with it.
				if attempt < 3 {
					continue
				}
				return store.ErrContended
			}
		case err != nil:
			return err
		default:
			var prev *store.Revocation
			if untilNS > ns(now) {
				// A live revocation: merge.
				prev = &store.Revocation{Kind: kind, ID: id, At: fromNS(atNS), Until: fromNS(untilNS)}
			}
			var write bool
			if at, until, write = store.MergeRevocation(prev, kind, now, until); !write {
				return nil
			}
			if _, err := tx.Exec(ctx, `UPDATE revocations SET at_ns = $3, until_ns = $4 WHERE kind = $1 AND id = $2`,
				string(kind), []byte(id), ns(at), ns(until)); err != nil {
				return err
			}
		}
		break
	}
	_, err := tx.Exec(ctx, `INSERT INTO revocation_log (recorded_ns, kind, id, at_ns, until_ns) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (recorded_ns, kind, id) DO UPDATE SET at_ns = EXCLUDED.at_ns, until_ns = EXCLUDED.until_ns`,
		ns(now), string(kind), []byte(id), ns(at), ns(until))
	return err
}

// IsRevoked implements store.Store.
func (d *DB) IsRevoked(ctx context.Context, kind store.RevocationKind, id string) (bool, error) {
	_, err := d.Revocation(ctx, kind, id)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Revocation implements store.Store.
func (d *DB) Revocation(ctx context.Context, kind store.RevocationKind, id string) (*store.Revocation, error) {
	if id == "" {
		return nil, store.ErrNotFound
	}
	var atNS, untilNS int64
	err := d.q.QueryRow(ctx, `SELECT at_ns, until_ns FROM revocations WHERE kind = $1 AND id = $2 AND until_ns > $3`,
		string(kind), []byte(id), ns(d.now())).Scan(&atNS, &untilNS)
	if err != nil {
		return nil, notFound(err)
	}
	return &store.Revocation{Kind: kind, ID: id, At: fromNS(atNS), Until: fromNS(untilNS)}, nil
}

// RevokedSince implements store.Store: the log rows recorded at or after
// since that are still live, oldest first (then by kind:id, the Badger
// key order).
func (d *DB) RevokedSince(ctx context.Context, since time.Time) ([]store.Revocation, error) {
	rows, err := d.q.Query(ctx, `SELECT kind, id, at_ns, until_ns FROM revocation_log
		WHERE recorded_ns >= $1 AND until_ns > $2
		ORDER BY recorded_ns, convert_to(kind || ':', 'UTF8') || id`, ns(since), ns(d.now()))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Revocation
	for rows.Next() {
		var kind string
		var id []byte
		var atNS, untilNS int64
		if err := rows.Scan(&kind, &id, &atNS, &untilNS); err != nil {
			return nil, err
		}
		out = append(out, store.Revocation{Kind: store.RevocationKind(kind), ID: string(id), At: fromNS(atNS), Until: fromNS(untilNS)})
	}
	return out, rows.Err()
}

// revokedRefresh tells whether a refresh token is revoked, as the Badger
// store decides it: its family has a live revocation, or its client has a
// live RevokedClient revocation recorded at or after the token's issue (a
// token without an issue time counts as issued before any).
func (d *DB) revokedRefresh(ctx context.Context, q querier, rec *store.RefreshToken, now time.Time) (bool, error) {
	var family bool
	var clientAt *int64
	err := q.QueryRow(ctx, `SELECT
		EXISTS (SELECT 1 FROM revocations WHERE kind = $6 AND id = $1 AND $3 AND until_ns > $5),
		(SELECT at_ns FROM revocations WHERE kind = $7 AND id = $2 AND $4 AND until_ns > $5)`,
		[]byte(rec.FamilyID), []byte(rec.ClientID), rec.FamilyID != "", rec.ClientID != "", ns(now),
		string(store.RevokedFamily), string(store.RevokedClient)).Scan(&family, &clientAt)
	if err != nil {
		return false, err
	}
	return refreshRevoked(rec, family, clientAt), nil
}

// refreshRevoked decides revokedRefresh from what the database said:
// whether the token's family has a live revocation, and the At of its
// client's live RevokedClient revocation (nil without one).
func refreshRevoked(rec *store.RefreshToken, family bool, clientAt *int64) bool {
	return family || clientAt != nil && !rec.IssuedAt.After(fromNS(*clientAt))
}
