package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/smartcaddy/smartauth/store"
)

// A refresh rotation is one transaction in two round trips. The first
// sends, pipelined, BEGIN, the presented token's SELECT … FOR UPDATE, the
// shared advisory lock of its client (clientLockSQLOf, keyed on the row's
// client_id) and the revocation check of its family and client; the
// second, after the rules run in Go (store.Rotation.Check, grace), sends
// the writes and COMMIT. Before, each of those statements was a round trip
// of its own (seven per rotation), and on two cores the context switches
// and per-round-trip work, not the commit, set the refresh grant's rate.
//
// Pipelining keeps the order the rules need. PostgreSQL runs the
// statements one after the other, and at READ COMMITTED each takes its
// snapshot when it starts: the revocation check starts only once the
// advisory lock is held, so it sees every RevokedClient revocation that
// held the lock before. Only a grace retry (which also locks the
// successor) and a replay (which revokes the family) take more round
// trips.

// rotateReadSQL are the first round trip's statements after BEGIN: the
// token's row, locked; the client's advisory lock, shared; and whether
// its family is revoked and since when its client is, as of $3 (each
// with the token's row's columns, so that no value has to come back
// first).
var rotateReadSQL = [...]string{
	`SELECT record, expires_ns FROM refresh_tokens WHERE id_hash = $1 AND expires_ns > $2 FOR UPDATE`,
	`SELECT pg_advisory_xact_lock_shared(` + clientLockSQLOf("client_id") + `)
		FROM refresh_tokens WHERE id_hash = $1 AND expires_ns > $2`,
	`SELECT
		EXISTS (SELECT 1 FROM revocations v WHERE v.kind = $4 AND v.id = r.family AND r.family <> ''::bytea AND v.until_ns > $3),
		(SELECT v.at_ns FROM revocations v WHERE v.kind = $5 AND v.id = r.client_id AND r.client_id <> ''::bytea AND v.until_ns > $3)
		FROM refresh_tokens r WHERE r.id_hash = $1 AND r.expires_ns > $2`,
}

// RotateRefresh implements store.Store, in one transaction with the Badger
// store's rules. The presented token's row is locked first (SELECT … FOR
// UPDATE): concurrent presentations of one token run one after the other,
// and each later one sees the earlier one's result (the token used), so
// it is a grace retry or a replay, never a second rotation. A grace retry
// also locks the successor it replaces. A replay revokes the family in the
// same transaction. The client's revocation lock is shared before the
// clock is read for the successor's IssuedAt (see clientLock).
func (d *DB) RotateRefresh(ctx context.Context, token string, rot store.Rotation) (*store.RefreshToken, error) {
	var old store.RefreshToken
	var replayed bool
	var errCheck error
	id := store.HashID(token)
	err := d.retry(func() error {
		old, replayed, errCheck = store.RefreshToken{}, false, nil
		return d.inPipelinedTx(ctx, func(c *pgxpool.Conn) (*pgx.Batch, error) {
			rec, exp, revoked, err := d.rotateRead(ctx, c, id)
			if err != nil {
				return nil, err
			}
			old = *rec
			if revoked {
				return nil, store.ErrNotFound
			}
			now := d.now()
			var w *pgx.Batch
			w, replayed, errCheck, err = d.rotateWrites(ctx, c, id, &old, exp, rot, now)
			return w, err
		})
	})
	switch {
	case errCheck != nil:
		return nil, errCheck
	case err != nil:
		return nil, unavailable(err)
	case replayed:
		return &old, store.ErrReplayed
	}
	return &old, nil
}

// rotateRead runs the rotation's first round trip on c (BEGIN and
// rotateReadSQL) and returns the presented token's record, its expiry and
// whether it is revoked. A token that is not live is ErrNotFound.
func (d *DB) rotateRead(ctx context.Context, c *pgxpool.Conn, id string) (*store.RefreshToken, time.Time, bool, error) {
	now := ns(d.now())
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(rotateReadSQL[0], id, now)
	b.Queue(rotateReadSQL[1], id, now)
	b.Queue(rotateReadSQL[2], id, now, now, string(store.RevokedFamily), string(store.RevokedClient))
	br := c.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, time.Time{}, false, err
	}
	var raw []byte
	var exp int64
	if err := br.QueryRow().Scan(&raw, &exp); err != nil {
		return nil, time.Time{}, false, notFound(err)
	}
	if _, err := br.Exec(); err != nil {
		return nil, time.Time{}, false, err
	}
	var family bool
	var clientAt *int64
	if err := br.QueryRow().Scan(&family, &clientAt); err != nil {
		return nil, time.Time{}, false, err
	}
	if err := br.Close(); err != nil {
		return nil, time.Time{}, false, err
	}
	var rec store.RefreshToken
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, time.Time{}, false, err
	}
	return &rec, fromNS(exp), refreshRevoked(&rec, family, clientAt), nil
}

// rotateWrites applies the rotation rules to old, the presented token's
// record (locked, live, not revoked) expiring at exp, and returns the
// writes that complete the rotation. A replay has its family revoked on
// c before (replayed true, and the batch commits that); an error from
// rot.Check is returned as errCheck.
func (d *DB) rotateWrites(ctx context.Context, c *pgxpool.Conn, id string, old *store.RefreshToken, exp time.Time, rot store.Rotation, now time.Time) (w *pgx.Batch, replayed bool, errCheck, err error) {
	w = &pgx.Batch{}
	// prev is the successor a grace retry replaces.
	var prev *store.RefreshToken
	var prevExp time.Time
	if old.Used {
		if prev, prevExp, err = graceSuccessor(ctx, c, old, rot, now); err != nil {
			return nil, false, nil, err
		}
		if prev == nil {
			return w, true, nil, d.revokeReusedFamily(ctx, c, old, exp, rot.TTL, now)
		}
	}
	successor := *old
	if rot.Check != nil {
		s, err := rot.Check(old)
		if err != nil {
			if old.Used && errors.Is(err, store.ErrReplayed) {
				return w, true, nil, d.revokeReusedFamily(ctx, c, old, exp, rot.TTL, now)
			}
			return nil, false, err, err
		}
		successor = *s
	}
	queue := func(idHash string, rec *store.RefreshToken, exp time.Time) error {
		args, err := refreshArgs(idHash, rec, exp)
		if err == nil {
			w.Queue(refreshUpsertSQL, args...)
		}
		return err
	}
	if prev != nil {
		prev.Used, prev.Superseded, prev.UsedAt, prev.Successor = true, true, now, ""
		if err := queue(old.Successor, prev, prevExp); err != nil {
			return nil, false, nil, err
		}
	}
	used := *old
	used.Used = true
	if used.UsedAt.IsZero() {
		// The grace period runs from the first rotation: retries never
		// extend it.
		used.UsedAt = now
	}
	used.Successor = store.HashID(rot.Next)
	usedJSON, err := json.Marshal(&used)
	if err != nil {
		return nil, false, nil, err
	}
	successor.Used, successor.Superseded, successor.UsedAt, successor.Successor = false, false, time.Time{}, ""
	successor.FamilyID = old.FamilyID
	successor.IssuedAt = now
	args, err := refreshArgs(store.HashID(rot.Next), &successor, now.Add(rot.TTL))
	if err != nil {
		return nil, false, nil, err
	}
	w.Queue(rotateWriteSQL, append(args, id, usedJSON)...)
	return w, false, nil, nil
}

// rotateWriteSQL marks the presented token used (its row is locked, and
// only used and record change) and stores its successor, in one
// statement: refreshUpsertSQL's arguments for the successor, then the
// presented token's id hash and its new record.
const rotateWriteSQL = `WITH used AS (UPDATE refresh_tokens SET used = true, record = $9 WHERE id_hash = $8)
	` + refreshUpsertSQL

// inPipelinedTx runs a transaction on one pooled connection: fn sends
// BEGIN and whatever it reads (pipelined as it likes) and returns the
// writes, which are sent with COMMIT in one more round trip. A failure
// anywhere rolls the transaction back (a connection left inside a
// transaction is closed by the pool on release, never reused).
func (d *DB) inPipelinedTx(ctx context.Context, fn func(c *pgxpool.Conn) (*pgx.Batch, error)) (err error) {
	c, err := d.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if c.Conn().PgConn().TxStatus() != 'I' {
			// Bounded, and not ctx: ctx may be what ended the
			// transaction.
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, _ = c.Exec(rctx, "ROLLBACK")
			cancel()
		}
		c.Release()
	}()
	w, err := fn(c)
	if err != nil {
		return err
	}
	w.Queue("COMMIT")
	br := c.SendBatch(ctx, w)
	defer br.Close()
	for range w.Len() - 1 {
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	tag, err := br.Exec()
	if err != nil {
		return err
	}
	if tag.String() != "COMMIT" {
		// COMMIT of a failed transaction answers ROLLBACK.
		return errors.New("postgres storage: the rotation's transaction was rolled back")
	}
	// Committed, and so answered as done. What still follows (the
	// server saying it is ready for the next query) may fail: a server
	// shutting down ends the connection after the COMMIT it was
	// flushing, before that message. Reporting that as a failure would
	// have the client present the token again, as reuse.
	_ = br.Close()
	return nil
}

// graceSuccessor returns, locked, the successor a second presentation of
// the rotated token old would replace, with its expiry: when grace is on,
// old was first rotated less than grace ago, and its successor is live
// and unused. Otherwise it returns nil: the presentation is reuse.
func graceSuccessor(ctx context.Context, q querier, old *store.RefreshToken, rot store.Rotation, now time.Time) (*store.RefreshToken, time.Time, error) {
	if !rot.InGrace(old, now) {
		return nil, time.Time{}, nil
	}
	next, exp, err := getRefresh(ctx, q, old.Successor, now, "FOR UPDATE")
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
func (d *DB) revokeReusedFamily(ctx context.Context, q querier, old *store.RefreshToken, exp time.Time, ttl time.Duration, now time.Time) error {
	return d.revoke(ctx, q, store.RevokedFamily, old.FamilyID, store.ReusedFamilyUntil(exp, ttl, now))
}
