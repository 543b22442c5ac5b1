package postgres

import (
	"context"
	"errors"
	"sync"
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

// jtiMaxBatch bounds one group statement.
const jtiMaxBatch = 512

// jtiWriters is how many groups may be in flight at once. One: with two
// or four writers the groups were smaller and PostgreSQL spent more CPU
// per jti (50–80 µs against 30–40 µs with one, RS384 client_credentials
// benchmark with 32 clients), and on two cores that CPU is what bounds
// the grant, not the wait for a commit.
const jtiWriters = 1

// jtiTimeout bounds one group statement, so that a database that stops
// answering fails the waiting callers (as ErrUnavailable) instead of
// holding them.
const jtiTimeout = 30 * time.Second

// jtiRequest is one UseJTI call waiting for a writer.
type jtiRequest struct {
	id   string // store.HashID(issuer NUL jti)
	exp  time.Time
	done chan error
}

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

// UseJTI implements store.Store. The call is queued for a jti writer and
// answered after the group it joined is committed: nil when this call
// recorded the id, ErrReplayed when the id was recorded and live already
// (or recorded by an earlier call in the same group).
func (d *DB) UseJTI(ctx context.Context, issuer, jti string, exp time.Time) error {
	req := jtiRequest{id: store.HashID(issuer + "\x00" + jti), exp: exp, done: make(chan error, 1)}
	select {
	case d.jtiCh <- req:
	case <-d.stop:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued, the request is answered: wait for it even if ctx ends,
	// so that a caller never mistakes a recorded jti for an unrecorded
	// one. A request queued as the DB closed may find the writers gone.
	select {
	case err := <-req.done:
		return err
	case <-d.jtiDone:
		select {
		case err := <-req.done:
			return err
		default:
			return errClosed
		}
	}
}

// startJTIWriters starts the jti writers; jtiDone closes when they have
// all stopped (at Close).
func (d *DB) startJTIWriters() {
	d.jtiCh = make(chan jtiRequest, jtiMaxBatch)
	d.jtiDone = make(chan struct{})
	var writers sync.WaitGroup
	for range jtiWriters {
		writers.Go(d.jtiWriter)
	}
	d.wg.Go(func() {
		writers.Wait()
		close(d.jtiDone)
	})
}

// jtiWriter records queued JWT ids in groups until the DB closes, then
// refuses what is still queued.
func (d *DB) jtiWriter() {
	batch := make([]jtiRequest, 0, jtiMaxBatch)
	for {
		select {
		case <-d.stop:
			d.drainJTI()
			return
		case r := <-d.jtiCh:
			batch = append(batch[:0], r)
		}
	more:
		for len(batch) < jtiMaxBatch {
			select {
			case r := <-d.jtiCh:
				batch = append(batch, r)
			default:
				break more
			}
		}
		d.writeJTIs(batch)
	}
}

// drainJTI refuses requests still queued at Close.
func (d *DB) drainJTI() {
	for {
		select {
		case r := <-d.jtiCh:
			r.done <- errClosed
		default:
			return
		}
	}
}

// writeJTIs records a group of JWT ids in one statement, retried after a
// deadlock or a serialization failure, and answers every caller.
func (d *DB) writeJTIs(batch []jtiRequest) {
	now := d.now()
	// The first request for an id in the group speaks for it; later
	// ones are replays whatever the database says.
	first := make(map[string]int, len(batch))
	ids := make([]string, 0, len(batch))
	exps := make([]int64, 0, len(batch))
	for i, r := range batch {
		if _, dup := first[r.id]; dup {
			continue
		}
		first[r.id] = i
		exp := r.exp
		if !exp.After(now) {
			exp = now.Add(time.Second)
		}
		ids = append(ids, r.id)
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
			r.done <- err
		case first[r.id] == i && recorded[r.id]:
			r.done <- nil
		default:
			r.done <- store.ErrReplayed
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
