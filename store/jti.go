package store

import (
	"context"
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// JWT ids are recorded by one goroutine that commits them in groups.
//
// Badger with SyncWrites syncs its write-ahead log once per transaction,
// even when its writer batches several transactions together, so one synced
// transaction per client assertion caps the client_credentials grant at
// about one token per WAL sync (≈0.5 ms here), however many clients call at
// once. The jti writer takes every request waiting, checks and records
// them in one transaction, and answers each caller only after that
// transaction is synced: the same durability, one sync per group.

// jtiMaxBatch bounds one group transaction (Badger also bounds a
// transaction's size; a jti record is small).
const jtiMaxBatch = 512

// jtiWindow is how long the writer gathers requests after the first one
// before it commits. Without it, under load the writer committed batches
// of about one request, each sync taking about 1.1 ms and CPU with it, and
// the ES384 client_credentials benchmark reached 0.42 of its crypto-only
// bound; with 2 ms it reaches about 0.7 (go test -bench ClientCredentials).
// A caller waits at most this much longer.
const jtiWindow = 2 * time.Millisecond

// jtiRequest is one UseJTI call waiting for the writer.
type jtiRequest struct {
	id   string
	exp  time.Time
	done chan error
}

// errClosed is returned to callers when the DB closes under them.
var errClosed = errors.New("store: closed")

// UseJTI implements Store.
func (d *DB) UseJTI(ctx context.Context, issuer, jti string, exp time.Time) error {
	req := jtiRequest{id: HashID(issuer + "\x00" + jti), exp: exp, done: make(chan error, 1)}
	select {
	case d.jtiCh <- req:
	case <-d.stop:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued, the request is answered: wait for it even if ctx ends,
	// so that a caller never mistakes a recorded jti for an unrecorded one.
	// A request queued as the DB closed may find the writer gone.
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

// jtiWriter records queued JWT ids in groups until the DB closes.
func (d *DB) jtiWriter() {
	defer d.wg.Done()
	defer close(d.jtiDone)
	batch := make([]jtiRequest, 0, jtiMaxBatch)
	for {
		select {
		case <-d.stop:
			d.drainJTI()
			return
		case r := <-d.jtiCh:
			batch = append(batch[:0], r)
		}
		window := time.NewTimer(jtiWindow)
	fill:
		for len(batch) < jtiMaxBatch {
			select {
			case r := <-d.jtiCh:
				batch = append(batch, r)
			case <-window.C:
				break fill
			}
		}
		window.Stop()
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

// writeJTIs checks and records a group of JWT ids in one transaction.
// A jti already stored, or repeated earlier in the same group, is a
// replay; the others are recorded. Every caller gets its answer after the
// commit.
func (d *DB) writeJTIs(batch []jtiRequest) {
	results := make([]error, len(batch))
	err := d.update(func(txn *badger.Txn) error {
		seen := make(map[string]bool, len(batch))
		now := d.now()
		for i, r := range batch {
			results[i] = nil
			if seen[r.id] {
				results[i] = ErrReplayed
				continue
			}
			var v struct{}
			_, err := d.get(txn, kindJTI, r.id, &v)
			switch {
			case err == nil:
				results[i] = ErrReplayed
				continue
			case !errors.Is(err, ErrNotFound):
				return err
			}
			exp := r.exp
			if !exp.After(now) {
				exp = now.Add(time.Second)
			}
			if err := d.set(txn, kindJTI, r.id, struct{}{}, exp); err != nil {
				return err
			}
			seen[r.id] = true
		}
		return nil
	})
	for i, r := range batch {
		if err != nil {
			r.done <- err
			continue
		}
		r.done <- results[i]
	}
}
