package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/smartcaddy/smartauth/store"
)

// unavailable returns err wrapped as store.ErrUnavailable when it says the
// database cannot be reached now: a connection could not be made (refused,
// timed out, or the server would not accept it), an open one was lost, or
// the server reported a connection exception (SQLSTATE class 08), a
// shutdown (57P01, 57P02), that it cannot accept connections yet (57P03),
// or too many connections (53300). The cause stays in the chain for the
// logs. Any other error, and nil, is returned unchanged.
func unavailable(err error) error {
	if err == nil || errors.Is(err, store.ErrUnavailable) || !connectionLevel(err) {
		return err
	}
	return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
}

// connectionLevel tells whether err is a connection-level failure (see
// unavailable).
func connectionLevel(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", pe.Code == "53300":
			return true
		}
		// A server error that reached us inside a ConnectError (such as
		// "database is not accepting connections") is still a refusal
		// to connect: fall through.
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	if errors.Is(err, context.Canceled) {
		// The caller gave up (a client went away): not the store's fault.
		return false
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	if pgconn.Timeout(err) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	// A pooled connection found closed before anything was sent.
	return pgconn.SafeToRetry(err)
}

// checkedPool is the connection pool as a querier whose errors pass through
// unavailable, so that every store method reports an unreachable database
// as store.ErrUnavailable.
type checkedPool struct{ p *pgxpool.Pool }

// Exec implements querier.
func (q checkedPool) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := q.p.Exec(ctx, sql, args...)
	return tag, unavailable(err)
}

// QueryRow implements querier.
func (q checkedPool) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return row{q.p.QueryRow(ctx, sql, args...)}
}

// Query implements querier.
func (q checkedPool) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	r, err := q.p.Query(ctx, sql, args...)
	if err != nil {
		return r, unavailable(err)
	}
	return rows{r}, nil
}

// row maps the errors of a pgx.Row through unavailable.
type row struct{ pgx.Row }

// Scan implements pgx.Row.
func (r row) Scan(dest ...any) error { return unavailable(r.Row.Scan(dest...)) }

// rows maps the errors of pgx.Rows through unavailable.
type rows struct{ pgx.Rows }

// Scan implements pgx.Rows.
func (r rows) Scan(dest ...any) error { return unavailable(r.Rows.Scan(dest...)) }

// Err implements pgx.Rows.
func (r rows) Err() error { return unavailable(r.Rows.Err()) }

// Interface guards
var _ querier = checkedPool{}
