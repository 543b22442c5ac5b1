package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationFiles is the schema, one file per version: NNNN_name.sql,
// applied in order, never edited once released (a change is a new file).
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one schema version.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in version order. Versions
// must be 1, 2, 3… without gaps.
func migrations() ([]migration, error) {
	entries, err := migrationFiles.ReadDir("migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("postgres storage: migration file %s is not named NNNN_name.sql", e.Name())
		}
		b, err := migrationFiles.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("postgres storage: migration %s out of sequence (want version %d)", m.name, i+1)
		}
	}
	return out, nil
}

// SchemaVersion is the newest schema version this binary knows.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

// migrate brings the database to the newest schema version, in one
// transaction holding a transaction-level advisory lock, so that instances
// starting at once apply each migration exactly once: the others wait for
// the lock and then find the work done. A database at a newer version than
// this binary knows is refused, and left untouched.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	latest := ms[len(ms)-1].version
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('smartauth/schema', 0))`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
			version    integer PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return err
		}
		var cur int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&cur); err != nil {
			return err
		}
		if cur > latest {
			return &NewerSchemaError{Database: cur, Binary: latest}
		}
		for _, m := range ms[cur:] {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("applying %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version) VALUES ($1)`, m.version); err != nil {
				return err
			}
		}
		return nil
	})
	var newer *NewerSchemaError
	if err != nil && !errors.As(err, &newer) {
		err = fmt.Errorf("postgres storage: migrating the schema: %w", err)
	}
	return err
}

// NewerSchemaError refuses a database whose schema a newer release
// migrated: this binary would misread it.
type NewerSchemaError struct {
	// Database is the schema version of the database, Binary the newest
	// this binary knows.
	Database, Binary int
}

// Error implements error.
func (e *NewerSchemaError) Error() string {
	return fmt.Sprintf("postgres storage: the database schema is version %d, newer than this smartauth knows (version %d): "+
		"a newer release migrated it; run that release (or a later one)", e.Database, e.Binary)
}
