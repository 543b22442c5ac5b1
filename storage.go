package smartauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/store"
	"github.com/smartcaddy/smartauth/store/postgres"
)

// This file opens the store the configuration names: a Badger directory
// (storage) or a PostgreSQL database (storage_postgres). Provision in
// smartauth.go calls acquireStore, Cleanup releaseStore.

// pgPool shares one open PostgreSQL store per resolved DSN across Caddy
// configs, as store's pool does per Badger directory: Caddy provisions a
// new config before it cleans up the old one, so a reload reuses the open
// connection pool instead of opening (and migrating) a second one. Keys are
// hashes of the DSN, so that the secret is not kept as a map key.
var pgPool = caddy.NewUsagePool()

// pgOpenTimeout bounds how long Provision waits for PostgreSQL: connecting
// and applying the migrations (which may wait for another instance's).
const pgOpenTimeout = time.Minute

// pooledPG makes a PostgreSQL store a caddy.Destructor: the pool closes it
// when the last user releases it.
type pooledPG struct{ db *postgres.DB }

// Destruct implements caddy.Destructor.
func (p pooledPG) Destruct() error { return p.db.Close() }

// acquireStore opens (or shares) the configured store and records what
// Cleanup must release.
func (s *SmartAuth) acquireStore(ctx caddy.Context) (store.Store, error) {
	if s.StoragePostgres != "" {
		dsn, err := s.resolveDSN()
		if err != nil {
			return nil, err
		}
		key := dsnKey(dsn)
		v, loaded, err := pgPool.LoadOrNew(key, func() (caddy.Destructor, error) {
			octx, cancel := context.WithTimeout(context.Background(), pgOpenTimeout)
			defer cancel()
			// Provisioning abandoned (Caddy stopping): stop waiting.
			stop := context.AfterFunc(ctx, cancel)
			defer stop()
			db, err := postgres.Open(octx, dsn, postgres.Options{Logger: s.logger.Named("store")})
			if err != nil {
				return nil, err
			}
			return pooledPG{db}, nil
		})
		if err != nil {
			// postgres.Open's errors never repeat the DSN; they start
			// with "postgres storage: ", said here as the option.
			return nil, errors.New("storage postgres: " + strings.TrimPrefix(err.Error(), "postgres storage: "))
		}
		s.pgKey = key
		s.logger.Debug("postgres store acquired", zap.Bool("shared", loaded))
		return v.(pooledPG).db, nil
	}
	dir, err := expandPath("storage", s.Storage)
	if err != nil {
		return nil, err
	}
	if dir == "" {
		dir = filepath.Join(caddy.AppDataDir(), "smart_auth")
	}
	db, err := store.Acquire(dir, store.Options{Logger: s.logger.Named("store")})
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	s.storageDir = dir
	s.logger.Debug("store acquired", zap.String("db_dir", db.Dir()))
	return db, nil
}

// releaseStore gives back what acquireStore took, once.
func (s *SmartAuth) releaseStore() error {
	if s.pgKey != "" {
		key := s.pgKey
		s.pgKey = ""
		if _, err := pgPool.Delete(key); err != nil {
			return fmt.Errorf("releasing storage postgres: %w", err)
		}
		return nil
	}
	if s.storageDir == "" {
		return nil
	}
	dir := s.storageDir
	s.storageDir = ""
	if err := store.Release(dir); err != nil {
		return fmt.Errorf("releasing storage %s: %w", dir, err)
	}
	return nil
}

// dsnKey is the pool key of a resolved DSN: its SHA-256, in hex.
func dsnKey(dsn string) string {
	sum := sha256.Sum256([]byte(dsn))
	return "postgres:" + hex.EncodeToString(sum[:])
}

// singlePlaceholder matches a value that is one placeholder and nothing
// else, such as {env.SMART_AUTH_DSN}: its name can be told in an error
// without telling anything of the secret.
var singlePlaceholder = regexp.MustCompile(`^\{[^{}]+\}$`)

// resolveDSN resolves the placeholders of StoragePostgres ({env.*},
// {file.*}). Errors never contain the DSN, nor a part of it, unless the
// configured value is a single placeholder, whose name they give. A literal
// DSN with a password is accepted, with a warning that does not print it.
func (s *SmartAuth) resolveDSN() (string, error) {
	raw := s.StoragePostgres
	dsn, err := caddy.NewReplacer().ReplaceOrErr(raw, true, true)
	if err != nil {
		if singlePlaceholder.MatchString(strings.TrimSpace(raw)) {
			return "", fmt.Errorf("storage postgres: the DSN placeholder %s is unset, empty or unknown", strings.TrimSpace(raw))
		}
		return "", errors.New("storage postgres: a placeholder in the DSN is unset, empty or unknown (use {env.NAME} or {file.path})")
	}
	dsn = strings.TrimSpace(dsn)
	if dsn == "" {
		return "", errors.New("storage postgres: the DSN resolves to an empty value")
	}
	if dsn == strings.TrimSpace(raw) && dsnHasPassword(dsn) {
		s.logger.Warn("storage postgres: a password is written in the configuration; " +
			"give the DSN as a placeholder ({env.SMART_AUTH_DSN} or {file./run/secrets/dsn}) so that it stays out of the JSON config")
	}
	return dsn, nil
}

// looksLikeDSN tells whether a storage directory is in fact a PostgreSQL
// URL, given where a directory is expected.
func looksLikeDSN(v string) bool {
	v = strings.ToLower(strings.TrimSpace(v))
	return strings.HasPrefix(v, "postgres://") || strings.HasPrefix(v, "postgresql://")
}

// kvPassword finds a password keyword in a keyword/value DSN.
var kvPassword = regexp.MustCompile(`(?i)(^|\s)password\s*=`)

// dsnHasPassword tells whether a DSN (URL or keyword/value form) carries a
// password.
func dsnHasPassword(dsn string) bool {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return true // unparsable: assume the worst
		}
		_, set := u.User.Password()
		return set || u.Query().Has("password")
	}
	return kvPassword.MatchString(dsn)
}

// Interface guards
var _ caddy.Destructor = pooledPG{}
