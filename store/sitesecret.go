package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The site secret is 32 random bytes that one store (one authorization
// server, however many instances serve it) keeps forever: the instances
// derive from it, with HKDF and a purpose label each, the keys that seal
// what a browser carries between them (pending authorization requests,
// the sign-in form's CSRF token). It is made by the first caller and never
// changes; copying a store (Export, caddy smart-auth migrate) carries it,
// so that requests in flight survive the move.
const (
	// SiteSecretSize is the length of the site secret in bytes.
	SiteSecretSize = 32
	// siteSecretID is the key of the site secret within KindSiteSecret.
	siteSecretID = "secret"
)

// SiteSecret is the stored form of the site secret (KindSiteSecret's
// value).
type SiteSecret struct {
	// Secret is the secret itself, SiteSecretSize bytes (base64 in
	// JSON).
	Secret []byte `json:"secret"`
}

// NewSiteSecret returns SiteSecretSize fresh random bytes.
func NewSiteSecret() []byte {
	b := make([]byte, SiteSecretSize)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return b
}

// CheckSiteSecret refuses a stored site secret of the wrong size (a
// corrupt or foreign record).
func CheckSiteSecret(b []byte) ([]byte, error) {
	if len(b) != SiteSecretSize {
		return nil, fmt.Errorf("store: the stored site secret has %d bytes, want %d", len(b), SiteSecretSize)
	}
	return b, nil
}

// SiteSecret implements Store: it reads the site secret or, on first use,
// creates it. Concurrent creators conflict on the key (Badger's
// transactions are serializable): the losers run again and read the
// winner's.
func (d *DB) SiteSecret(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []byte
	err := d.update(func(txn *badger.Txn) error {
		var rec SiteSecret
		_, err := d.get(txn, KindSiteSecret, siteSecretID, &rec)
		switch {
		case err == nil:
			out = rec.Secret
			return nil
		case !errors.Is(err, ErrNotFound):
			return err
		}
		out = NewSiteSecret()
		return d.set(txn, KindSiteSecret, siteSecretID, SiteSecret{Secret: out}, time.Time{})
	})
	if err != nil {
		return nil, err
	}
	return CheckSiteSecret(out)
}
