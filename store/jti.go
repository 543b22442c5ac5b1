package store

import (
	"context"
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// JWT ids are recorded by one goroutine that commits them in groups
// (JTIQueue, jtiqueue.go).
//
// Badger with SyncWrites syncs its write-ahead log once per transaction,
// even when its writer batches several transactions together, so one synced
// transaction per client assertion caps the client_credentials grant at
// about one token per WAL sync (≈0.5 ms here), however many clients call at
// once. The jti writer takes every request waiting, checks and records
// them in one transaction, and answers each caller only after that
// transaction is synced: the same durability, one sync per group.

// jtiWindow is how long the writer gathers requests after the first one
// before it commits. Without it, under load the writer committed batches
// of about one request, each sync taking about 1.1 ms and CPU with it, and
// the ES384 client_credentials benchmark reached 0.42 of its crypto-only
// bound; with 2 ms it reaches about 0.7 (go test -bench ClientCredentials).
// A caller waits at most this much longer.
const jtiWindow = 2 * time.Millisecond

// errClosed is returned to callers when the DB closes under them.
var errClosed = errors.New("store: closed")

// UseJTI implements Store: the call waits in the group commit (JTIQueue).
func (d *DB) UseJTI(ctx context.Context, issuer, jti string, exp time.Time) error {
	return d.jtis.Use(ctx, HashID(issuer+"\x00"+jti), exp)
}

// writeJTIs checks and records a group of JWT ids in one transaction.
// A jti already stored, or repeated earlier in the same group, is a
// replay; the others are recorded. Every caller gets its answer after the
// commit.
func (d *DB) writeJTIs(batch []JTIRequest) {
	results := make([]error, len(batch))
	err := d.update(func(txn *badger.Txn) error {
		seen := make(map[string]bool, len(batch))
		now := d.now()
		for i, r := range batch {
			results[i] = nil
			if seen[r.ID] {
				results[i] = ErrReplayed
				continue
			}
			var v struct{}
			_, err := d.get(txn, kindJTI, r.ID, &v)
			switch {
			case err == nil:
				results[i] = ErrReplayed
				continue
			case !errors.Is(err, ErrNotFound):
				return err
			}
			exp := r.Exp
			if !exp.After(now) {
				exp = now.Add(time.Second)
			}
			if err := d.set(txn, kindJTI, r.ID, struct{}{}, exp); err != nil {
				return err
			}
			seen[r.ID] = true
		}
		return nil
	})
	for i, r := range batch {
		if err != nil {
			r.Answer(err)
			continue
		}
		r.Answer(results[i])
	}
}
