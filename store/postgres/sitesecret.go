package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/smartcaddy/smartauth/store"
)

// siteSecretName is the store_meta row holding the site secret, as the
// JSON of store.SiteSecret (the record Badger keeps, so that an imported
// one is copied as it is).
const siteSecretName = "site_secret"

// SiteSecret implements store.Store: it reads the site secret or, on
// first use, creates it. The creation is one INSERT … ON CONFLICT DO
// UPDATE … RETURNING that changes nothing when a row exists: of concurrent
// creators on any number of instances, the first inserts and every other
// waits for its row and gets its value.
func (d *DB) SiteSecret(ctx context.Context) ([]byte, error) {
	var v string
	err := d.q.QueryRow(ctx, `SELECT value FROM store_meta WHERE name = $1`, siteSecretName).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		fresh, merr := json.Marshal(store.SiteSecret{Secret: store.NewSiteSecret()})
		if merr != nil {
			return nil, merr
		}
		err = d.q.QueryRow(ctx, `INSERT INTO store_meta (name, value) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET value = store_meta.value RETURNING value`,
			siteSecretName, string(fresh)).Scan(&v)
	}
	if err != nil {
		return nil, err
	}
	return decodeSiteSecret([]byte(v))
}

// decodeSiteSecret reads a stored (or imported) site secret.
func decodeSiteSecret(b []byte) ([]byte, error) {
	var rec store.SiteSecret
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("postgres storage: reading the site secret: %w", err)
	}
	return store.CheckSiteSecret(rec.Secret)
}
