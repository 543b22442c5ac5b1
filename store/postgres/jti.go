package postgres

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/store"
)

// JWT ids are recorded in groups, as the Badger store records them
// (store/jti.go). One INSERT per client assertion costs PostgreSQL a
// statement, a commit and a WAL flush each, and that cost, not the
// signature check, bounded the client_credentials grant with RS384
// assertions (0.48 of Badger's rate). The jti writers take every UseJTI
// call waiting, record them with one INSERT … SELECT FROM unnest(…) in one
// commit, and answer each caller only after that commit: the same
// durability, one commit per group. No timer gathers a group: calls
// arriving while a group commits form the next one.

// One writer (store.JTIQueue.Run) and no gathering window: with two or
// four writers the groups were smaller and PostgreSQL spent more CPU per
// jti (50–80 µs against 30–40 µs with one, RS384 client_credentials
// benchmark with 32 clients), and on two cores that CPU is what bounds the
// grant, not the wait for a commit.

// jtiTimeout bounds one group statement, so that a database that stops
// answering fails the waiting callers (as ErrUnavailable) instead of
// holding them.
const jtiTimeout = 30 * time.Second

// errClosed is returned to callers when the DB closes under them.
var errClosed = errors.New("postgres storage: closed")

// jtiSQL records a group: the rows of ids not recorded yet are inserted,
// rows of expired ones are taken over, and a live row matches nothing.
// RETURNING names the ids this statement recorded: those callers were
// first. Concurrent statements (other writers, other instances) touching
// one id queue on its row or its unique-index entry, and only the first
// records it. The group is sorted so that two groups lock their common
// ids in the same order.
const jtiSQL = `INSERT INTO used_jtis (id_hash, expires_ns)
	SELECT id, exp FROM unnest($1::text[], $2::bigint[]) AS g(id, exp) ORDER BY id COLLATE "C"
	ON CONFLICT (id_hash) DO UPDATE SET expires_ns = EXCLUDED.expires_ns WHERE used_jtis.expires_ns <= $3
	RETURNING id_hash`

// UseJTI implements store.Store. The call is queued for the jti writer
// (store.JTIQueue) and answered after the group it joined is committed:
// nil when this call recorded the id, ErrReplayed when the id was recorded
// and live already (or recorded by an earlier call in the same group).
func (d *DB) UseJTI(ctx context.Context, issuer, jti string, exp time.Time) error {
	return d.jtis.Use(ctx, store.HashID(issuer+"\x00"+jti), exp)
}

// writeJTIs records a group of JWT ids in one statement, retried after a
// deadlock or a serialization failure, and answers every caller.
func (d *DB) writeJTIs(batch []store.JTIRequest) {
	now := d.now()
	// The first request for an id in the group speaks for it; later
	// ones are replays whatever the database says.
	first := make(map[string]int, len(batch))
	ids := make([]string, 0, len(batch))
	exps := make([]int64, 0, len(batch))
	for i, r := range batch {
		if _, dup := first[r.ID]; dup {
			continue
		}
		first[r.ID] = i
		exp := r.Exp
		if !exp.After(now) {
			exp = now.Add(time.Second)
		}
		ids = append(ids, r.ID)
		exps = append(exps, ns(exp))
	}
	recorded := make(map[string]bool, len(ids))
	err := d.retry(func() error {
		clear(recorded)
		// Not d.bg: a group in flight at Close is committed and
		// answered, not cancelled.
		ctx, cancel := context.WithTimeout(context.Background(), jtiTimeout)
		defer cancel()
		rows, err := d.pool.Query(ctx, jtiSQL, ids, exps, ns(now))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			recorded[id] = true
		}
		return rows.Err()
	})
	err = unavailable(err)
	for i, r := range batch {
		switch {
		case err != nil:
			r.Answer(err)
		case first[r.ID] == i && recorded[r.ID]:
			r.Answer(nil)
		default:
			r.Answer(store.ErrReplayed)
		}
	}
}

// retry runs fn, again after a serialization failure or a deadlock (at
// most txAttempts times, after a short random pause); then it gives up
// with store.ErrContended. Errors other than those are returned unchanged.
func (d *DB) retry(fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if !retryable(err) {
			return err
		}
		if attempt >= txAttempts {
			d.logger.Warn("store: giving up after repeated statement conflicts", zap.Int("attempts", attempt))
			return store.ErrContended
		}
		select {
		case <-time.After(backoff(attempt)):
		case <-d.stop:
			return errClosed
		}
	}
}
