package store

import (
	"fmt"
	"path/filepath"

	"github.com/caddyserver/caddy/v2"
)

// pool shares one open DB per absolute directory across Caddy configs.
// Badger locks its directory, and Caddy provisions a new config before it
// cleans up the old one, so a reload that reopened the directory would fail.
var pool = caddy.NewUsagePool()

// pooled makes a DB a caddy.Destructor: the pool closes it when the last
// user releases it.
type pooled struct{ db *DB }

// Destruct implements caddy.Destructor.
func (p pooled) Destruct() error { return p.db.Close() }

// Canonical returns the key a directory is shared under: its absolute,
// cleaned path.
func Canonical(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("storage directory %q: %w", dir, err)
	}
	return filepath.Clean(abs), nil
}

// Acquire returns the DB for dir, opening it on first use and sharing it
// with every other holder of the same directory. Every successful Acquire
// must be matched by exactly one Release; the last Release closes the DB.
// Options apply only when this call opens the database.
func Acquire(dir string, o Options) (*DB, error) {
	key, err := Canonical(dir)
	if err != nil {
		return nil, err
	}
	v, _, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
		db, err := Open(key, o)
		if err != nil {
			return nil, err
		}
		return pooled{db}, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(pooled).db, nil
}

// Release gives back one Acquire of dir.
func Release(dir string) error {
	key, err := Canonical(dir)
	if err != nil {
		return err
	}
	_, err = pool.Delete(key)
	return err
}

// Interface guards
var _ caddy.Destructor = pooled{}
