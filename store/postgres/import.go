package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smartcaddy/smartauth/store"
)

// Import writes records exported from another store (store.DB.Export) by
// their hashed keys, in one transaction: nothing is hashed again, so a
// code, refresh token, session id or launch id issued by the other store
// works here unchanged.
//
// Importing is idempotent and never undoes what this database knows: a
// record already present is kept as it is, except that it can only become
// more used or more revoked. A code or refresh token present unused takes
// the imported record when that one is used (rotated or redeemed since
// the last import); a revocation keeps the later At and the later Until of
// the two; a used JWT id keeps the later expiry. Importing the same
// records again therefore changes nothing. Records deleted here after an
// earlier import (a signed-out session, a consumed launch, a removed
// client) come back if imported again: import before this database serves.
func (d *DB) Import(ctx context.Context, recs ...store.RawRecord) error {
	if len(recs) == 0 {
		return nil
	}
	return d.inTx(ctx, func(tx pgx.Tx) error {
		var b pgx.Batch
		for _, r := range recs {
			if err := queueImport(&b, r); err != nil {
				return err
			}
		}
		return tx.SendBatch(ctx, &b).Close()
	})
}

// queueImport adds the statement that imports r to b.
func queueImport(b *pgx.Batch, r store.RawRecord) error {
	exp := expiresNS(r.Expires)
	switch r.Kind {
	case store.KindClient:
		b.Queue(`INSERT INTO clients (id, record) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`,
			[]byte(r.Key), r.Value)
	case store.KindCode:
		var rec store.AuthCode
		if err := decode(r, &rec); err != nil {
			return err
		}
		b.Queue(`INSERT INTO auth_codes (id_hash, used, expires_ns, record) VALUES ($1, $2, $3, $4)
			ON CONFLICT (id_hash) DO UPDATE SET used = true, record = EXCLUDED.record
			WHERE EXCLUDED.used AND NOT auth_codes.used`, r.Key, rec.Used, exp, r.Value)
	case store.KindLaunch:
		b.Queue(`INSERT INTO launches (id_hash, expires_ns, record) VALUES ($1, $2, $3)
			ON CONFLICT (id_hash) DO NOTHING`, r.Key, exp, r.Value)
	case store.KindSession:
		b.Queue(`INSERT INTO sessions (id_hash, expires_ns, record) VALUES ($1, $2, $3)
			ON CONFLICT (id_hash) DO NOTHING`, r.Key, exp, r.Value)
	case store.KindRefresh:
		var rec store.RefreshToken
		if err := decode(r, &rec); err != nil {
			return err
		}
		b.Queue(`INSERT INTO refresh_tokens (id_hash, family, client_id, subject, used, expires_ns, record)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (id_hash) DO UPDATE SET used = true, record = EXCLUDED.record
			WHERE EXCLUDED.used AND NOT refresh_tokens.used`,
			r.Key, []byte(rec.FamilyID), []byte(rec.ClientID), []byte(rec.Subject), rec.Used, exp, r.Value)
	case store.KindJTI:
		b.Queue(`INSERT INTO used_jtis (id_hash, expires_ns) VALUES ($1, $2)
			ON CONFLICT (id_hash) DO UPDATE SET expires_ns = EXCLUDED.expires_ns
			WHERE EXCLUDED.expires_ns > used_jtis.expires_ns`, r.Key, exp)
	case store.KindConsent:
		var rec store.Consent
		if err := decode(r, &rec); err != nil {
			return err
		}
		b.Queue(`INSERT INTO consents (user_name, client_id, expires_ns, record) VALUES ($1, $2, $3, $4)
			ON CONFLICT (user_name, client_id) DO NOTHING`, []byte(rec.User), []byte(rec.ClientID), exp, r.Value)
	case store.KindRevocation:
		var rec store.Revocation
		if err := decode(r, &rec); err != nil {
			return err
		}
		b.Queue(`INSERT INTO revocations (kind, id, at_ns, until_ns) VALUES ($1, $2, $3, $4)
			ON CONFLICT (kind, id) DO UPDATE SET at_ns = GREATEST(revocations.at_ns, EXCLUDED.at_ns),
				until_ns = GREATEST(revocations.until_ns, EXCLUDED.until_ns)
			WHERE EXCLUDED.at_ns > revocations.at_ns OR EXCLUDED.until_ns > revocations.until_ns`,
			string(rec.Kind), []byte(rec.ID), ns(rec.At), ns(rec.Until))
	case store.KindRevocationLog:
		var rec store.Revocation
		if err := decode(r, &rec); err != nil {
			return err
		}
		recorded, err := r.Recorded()
		if err != nil {
			return err
		}
		b.Queue(`INSERT INTO revocation_log (recorded_ns, kind, id, at_ns, until_ns) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (recorded_ns, kind, id) DO NOTHING`,
			ns(recorded), string(rec.Kind), []byte(rec.ID), ns(rec.At), ns(rec.Until))
	case store.KindKey:
		b.Queue(`INSERT INTO signing_keys (kid, record) VALUES ($1, $2) ON CONFLICT (kid) DO NOTHING`,
			[]byte(r.Key), r.Value)
	case store.KindSiteSecret:
		// The database's own secret, if it has one already, is kept:
		// it seals what is in flight on the instances serving it.
		if _, err := decodeSiteSecret(r.Value); err != nil {
			return err
		}
		b.Queue(`INSERT INTO store_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`,
			siteSecretName, string(r.Value))
	default:
		return fmt.Errorf("postgres storage: cannot import records of kind %q", r.Kind)
	}
	return nil
}

// decode reads a raw record's JSON into v.
func decode(r store.RawRecord, v any) error {
	if err := json.Unmarshal(r.Value, v); err != nil {
		return fmt.Errorf("postgres storage: importing a %s record: %w", r.Kind, err)
	}
	return nil
}

// expiresNS is an imported record's expiry column: a record without an
// expiry (zero) never expires.
func expiresNS(t time.Time) int64 {
	if t.IsZero() {
		return math.MaxInt64
	}
	return ns(t)
}

// Exporter is a store that walks its records raw: store.DB.
type Exporter interface {
	Export(ctx context.Context, fn func(store.RawRecord) error) error
}

// importBatch is how many records ImportAll writes per transaction.
const importBatch = 500

// ImportAll copies every record src exports into d (Import, in
// transactions of importBatch records) and returns how many records of
// each kind it copied. Running it again on the same source changes
// nothing and returns the same counts.
func (d *DB) ImportAll(ctx context.Context, src Exporter) (map[string]int, error) {
	counts := make(map[string]int, len(store.Kinds))
	batch := make([]store.RawRecord, 0, importBatch)
	flush := func() error {
		err := d.Import(ctx, batch...)
		batch = batch[:0]
		return err
	}
	err := src.Export(ctx, func(r store.RawRecord) error {
		batch = append(batch, r)
		counts[r.Kind]++
		if len(batch) == importBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return nil, err
	}
	return counts, nil
}

// Interface guards
var _ Exporter = (*store.DB)(nil)
