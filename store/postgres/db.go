// Package postgres implements store.Store on PostgreSQL, so that several
// smartauth instances share one authorization server's state.
//
// It behaves as the Badger store does (package store), record for record:
// the same record types, written as the same JSON; secrets stored only as
// store.HashID of them; every expiry decided by the clock in Options.Now,
// passed to each query as a parameter (never SQL now()), at nanosecond
// precision. Single-use records have exactly one winner among concurrent
// callers: each consumption is one conditional UPDATE or DELETE … RETURNING,
// or a transaction holding the row's lock (see the method comments).
//
// Open applies the embedded, versioned schema (migrations/*.sql) under an
// advisory lock and starts a sweeper that deletes expired rows, one
// instance at a time.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/store"
)

// Options tune how a DB is opened.
type Options struct {
	// Logger receives the store's messages. Nil: none.
	Logger *zap.Logger
	// Now is the clock every expiry is checked against. Nil: time.Now.
	Now func() time.Time
	// MaxConns bounds the connection pool. Zero: pool_max_conns in the
	// DSN, else DefaultMaxConns.
	MaxConns int32
	// SweepInterval is how often expired rows are deleted. Zero: every
	// five minutes.
	SweepInterval time.Duration
	// ForMigration opens the database to copy records into it (caddy
	// smart-auth migrate): it is not marked as serving (ServingSince),
	// and no sweeper runs.
	ForMigration bool
}

// DefaultMaxConns is the connection pool's size unless Options.MaxConns
// or the DSN's pool_max_conns says otherwise. pgx's own default, the
// larger of 4 and the number of CPUs, made the token endpoint's requests
// queue for a connection: with 32 concurrent refresh rotations on two
// cores, 4 connections cost about 600 µs of this process's CPU and 350 µs
// of the server's per rotation, 16 connections about 400 and 250 (the
// goroutines waiting in the pool, and commits that could not share a WAL
// flush), and 32 no less than 16. Sixteen per instance leave PostgreSQL's
// default max_connections (100) room for five instances and the tools.
const DefaultMaxConns = 16

// DB is the PostgreSQL implementation of store.Store.
type DB struct {
	pool   *pgxpool.Pool
	q      checkedPool // pool, reporting an unreachable database as store.ErrUnavailable
	now    func() time.Time
	logger *zap.Logger

	stop     chan struct{}
	cancel   context.CancelFunc // cancels bg
	bg       context.Context    // ends at Close: background work's context
	stopOnce sync.Once
	wg       sync.WaitGroup

	// jtis is the group commit of UseJTI (jti.go, store.JTIQueue).
	jtis *store.JTIQueue
}

// Open connects to the database named by dsn (a libpq URL or key=value
// string; TLS settings such as sslmode travel in it), applies the schema
// migrations this binary knows and starts the sweeper. The DSN is a
// secret: errors never repeat it.
func Open(ctx context.Context, dsn string, o Options) (*DB, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = 5 * time.Minute
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors redact the password; still, name only
		// what is wrong.
		return nil, errors.New("postgres storage: cannot parse the DSN (a postgres:// URL or key=value pairs)")
	}
	switch {
	case o.MaxConns > 0:
		cfg.MaxConns = o.MaxConns
	case !strings.Contains(dsn, "pool_max_conns"):
		cfg.MaxConns = DefaultMaxConns
	}
	// Durability: a write is answered only once committed to disk. A
	// server or database configured with synchronous_commit = off would
	// answer before that and lose acknowledged codes, rotations and
	// revocations in a crash, so such sessions are set back to on (the
	// stronger settings, remote_write and remote_apply, are kept).
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, `SELECT set_config('synchronous_commit', 'on', false)
			WHERE current_setting('synchronous_commit') = 'off'`)
		return err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres storage: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	d := &DB{pool: pool, q: checkedPool{pool}, now: o.Now, logger: o.Logger, stop: make(chan struct{})}
	d.bg, d.cancel = context.WithCancel(context.Background())
	d.jtis = store.NewJTIQueue(d.stop, errClosed)
	d.wg.Go(func() { d.jtis.Run(0, d.writeJTIs) })
	if o.ForMigration {
		return d, nil
	}
	if _, err := pool.Exec(ctx, `INSERT INTO store_meta (name, value) VALUES ('serving_since', $1)
		ON CONFLICT (name) DO NOTHING`, o.Now().UTC().Format(time.RFC3339Nano)); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres storage: marking the database as serving: %w", err)
	}
	d.wg.Add(1)
	go d.sweepLoop(o.SweepInterval)
	return d, nil
}

// ServingSince tells whether a smart_auth instance has served from the
// database (opened it without ForMigration), and since when.
func (d *DB) ServingSince(ctx context.Context) (time.Time, bool, error) {
	var v string
	err := d.q.QueryRow(ctx, `SELECT value FROM store_meta WHERE name = 'serving_since'`).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("postgres storage: %w", err)
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("postgres storage: serving_since %q: %w", v, err)
	}
	return t, true, nil
}

// Close stops the sweeper and closes the connection pool. It is safe to
// call more than once.
func (d *DB) Close() error {
	d.stopOnce.Do(func() {
		close(d.stop)
		d.cancel()
		d.wg.Wait()
		d.pool.Close()
	})
	return nil
}

// Transaction retries. Transactions here run at READ COMMITTED and take
// row locks (SELECT … FOR UPDATE), so concurrent updates of one record
// wait for each other instead of failing; a deadlock or a serialization
// failure is still possible in principle and is retried, bounded, after a
// short random pause.
const (
	// txAttempts bounds how often one operation runs.
	txAttempts = 20
	// backoffBase and backoffCap bound the random pause before attempt
	// n+1: uniform in [0, min(backoffCap, backoffBase·2ⁿ)).
	backoffBase = 100 * time.Microsecond
	backoffCap  = 10 * time.Millisecond
)

// inTx runs fn in a transaction and commits it, running it again (at most
// txAttempts times) after a serialization failure or a deadlock; then it
// gives up with store.ErrContended. fn must reset anything it sets, since
// it may run several times. An error from fn is returned unchanged, except
// that a connection-level failure is store.ErrUnavailable (see
// unavailable).
func (d *DB) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, d.pool, fn)
		if !retryable(err) {
			return unavailable(err)
		}
		if attempt >= txAttempts {
			d.logger.Warn("store: giving up after repeated transaction conflicts", zap.Int("attempts", attempt))
			return store.ErrContended
		}
		select {
		case <-time.After(backoff(attempt)):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// retryable tells whether err is a serialization failure or a deadlock.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// backoff is the random pause after the nth failed attempt.
func backoff(n int) time.Duration {
	limit := backoffCap
	if n < 16 && backoffBase<<n < backoffCap {
		limit = backoffBase << n
	}
	return rand.N(limit)
}

// Bounds of what Unix nanoseconds in an int64 can name.
var (
	minNS = time.Unix(0, math.MinInt64)
	maxNS = time.Unix(0, math.MaxInt64)
)

// ns converts t to Unix nanoseconds, clamped to int64 (years 1678–2262):
// the zero time (and anything earlier) is math.MinInt64.
func ns(t time.Time) int64 {
	switch {
	case !t.After(minNS):
		return math.MinInt64
	case !t.Before(maxNS):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// fromNS converts Unix nanoseconds back to a time.
func fromNS(n int64) time.Time { return time.Unix(0, n) }

// notFound maps "no rows" to store.ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

// querier is what both the pool and a transaction offer.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Interface guards
var (
	_ store.Store = (*DB)(nil)
	_ querier     = (*pgxpool.Pool)(nil)
	_ querier     = (pgx.Tx)(nil)
)
