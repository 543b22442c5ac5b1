package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smartcaddy/smartauth/store"
)

// PutClient implements store.Store.
func (d *DB) PutClient(ctx context.Context, c *store.Client) error {
	if c.ID == "" {
		return errors.New("client without id")
	}
	return putClient(ctx, d.q, c)
}

// putClient creates or replaces a client.
func putClient(ctx context.Context, q querier, c *store.Client) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, `INSERT INTO clients (id, record) VALUES ($1, $2)
		ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record`, []byte(c.ID), b)
	return err
}

// GetClient implements store.Store.
func (d *DB) GetClient(ctx context.Context, id string) (*store.Client, error) {
	return getClient(ctx, d.q, id, "")
}

// getClient reads a client; lock is "" or a locking clause (FOR UPDATE).
func getClient(ctx context.Context, q querier, id, lock string) (*store.Client, error) {
	var b []byte
	if err := q.QueryRow(ctx, `SELECT record FROM clients WHERE id = $1 `+lock, []byte(id)).Scan(&b); err != nil {
		return nil, notFound(err)
	}
	var c store.Client
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// DeleteClient implements store.Store.
func (d *DB) DeleteClient(ctx context.Context, id string) error {
	_, err := d.q.Exec(ctx, `DELETE FROM clients WHERE id = $1`, []byte(id))
	return err
}

// ListClients implements store.Store.
func (d *DB) ListClients(ctx context.Context) ([]*store.Client, error) {
	return list[store.Client](ctx, d.q, `SELECT record FROM clients ORDER BY id`)
}

// UpdateClient implements store.Store. The transaction locks the client's
// row (SELECT … FOR UPDATE) before fn sees it, so a concurrent update
// waits and then runs fn on this one's result.
func (d *DB) UpdateClient(ctx context.Context, id string, fn func(c *store.Client) (*store.Client, error)) error {
	return d.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := getClient(ctx, tx, id, "FOR UPDATE")
		if err != nil {
			return err
		}
		next, err := fn(cur)
		switch {
		case err != nil:
			return err
		case next == nil:
			_, err := tx.Exec(ctx, `DELETE FROM clients WHERE id = $1`, []byte(id))
			return err
		case next.ID != id:
			return errors.New("UpdateClient cannot change a client's id")
		}
		return putClient(ctx, tx, next)
	})
}

// RemoveClient implements store.Store. The client's row is locked, so of
// concurrent removals exactly one succeeds; the others wait, then find it
// gone (ErrNotFound).
func (d *DB) RemoveClient(ctx context.Context, id string, check func(c *store.Client) error, revokeUntil time.Time) error {
	return d.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := getClient(ctx, tx, id, "FOR UPDATE")
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(cur); err != nil {
				return err
			}
		}
		if err := d.revoke(ctx, tx, store.RevokedClient, id, revokeUntil); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM clients WHERE id = $1`, []byte(id))
		return err
	})
}

// list decodes the record column of every row a query returns.
func list[T any](ctx context.Context, q querier, sql string, args ...any) ([]*T, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	var out []*T
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			rows.Close()
			return nil, err
		}
		v := new(T)
		if err := json.Unmarshal(b, v); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, v)
	}
	rows.Close()
	return out, rows.Err()
}

// Keys implements store.Store.
func (d *DB) Keys(ctx context.Context) ([]*store.KeyRecord, error) {
	return list[store.KeyRecord](ctx, d.q, `SELECT record FROM signing_keys ORDER BY kid`)
}

// UpdateKeys implements store.Store. The transaction first locks the
// signing_keys table against other UpdateKeys (SHARE ROW EXCLUSIVE
// conflicts with itself; Keys, a plain read, goes on), then reads the
// keys, so that two instances rotating at once run one after the other
// and the second sees the first's keys.
func (d *DB) UpdateKeys(ctx context.Context, fn func([]*store.KeyRecord) ([]*store.KeyRecord, error)) error {
	return d.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		cur, err := list[store.KeyRecord](ctx, tx, `SELECT record FROM signing_keys ORDER BY kid`)
		if err != nil {
			return err
		}
		next, err := fn(cur)
		if err != nil {
			return err
		}
		keep := make(map[string]bool, len(next))
		for _, k := range next {
			keep[k.KID] = true
			b, err := json.Marshal(k)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO signing_keys (kid, record) VALUES ($1, $2)
				ON CONFLICT (kid) DO UPDATE SET record = EXCLUDED.record`, []byte(k.KID), b); err != nil {
				return err
			}
		}
		for _, k := range cur {
			if !keep[k.KID] {
				if _, err := tx.Exec(ctx, `DELETE FROM signing_keys WHERE kid = $1`, []byte(k.KID)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
