package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// expiring lists the tables with an expiry column, and that column. Reads
// ignore expired rows already; Sweep reclaims their space.
var expiring = []struct{ table, column string }{
	{"auth_codes", "expires_ns"},
	{"launches", "expires_ns"},
	{"sessions", "expires_ns"},
	{"refresh_tokens", "expires_ns"},
	{"used_jtis", "expires_ns"},
	{"consents", "expires_ns"},
	{"revocations", "until_ns"},
	{"revocation_log", "until_ns"},
}

// Sweep deletes every expired row, as of the store's clock, and returns
// how many it deleted. One instance sweeps at a time: Sweep takes a
// transaction-level advisory lock without waiting, and returns 0 at once
// when another instance holds it.
func (d *DB) Sweep(ctx context.Context) (int64, error) {
	var total int64
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		total = 0
		var mine bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(hashtextextended('smartauth/sweep', 0))`).Scan(&mine); err != nil || !mine {
			return err
		}
		now := ns(d.now())
		for _, e := range expiring {
			tag, err := tx.Exec(ctx, `DELETE FROM `+e.table+` WHERE `+e.column+` <= $1`, now)
			if err != nil {
				return err
			}
			total += tag.RowsAffected()
		}
		return nil
	})
	return total, unavailable(err)
}

// sweepLoop runs Sweep every interval until Close.
func (d *DB) sweepLoop(every time.Duration) {
	defer d.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(d.bg, every)
			n, err := d.Sweep(ctx)
			cancel()
			switch {
			case err != nil:
				d.logger.Warn("store: sweeping expired records", zap.Error(err))
			case n > 0:
				d.logger.Debug("store: swept expired records", zap.Int64("deleted", n))
			}
		}
	}
}
