package postgres

import (
	"context"

	"github.com/smartcaddy/smartauth/store"
)

// tokenRevokedSQL reads, in one statement, the four revocations that can
// revoke an access token: whether its jti ($1, kind $5) and its family
// ($2, kind $6) have a live revocation, and the At of the live
// revocations of its client ($3, kind $7) and its user ($4, kind $8), NULL
// without one. $9 is now. An identifier passed as NULL (an empty field)
// matches nothing. Each subquery is a lookup on the primary key
// (kind, id).
const tokenRevokedSQL = `SELECT
	EXISTS (SELECT 1 FROM revocations WHERE kind = $5 AND id = $1 AND until_ns > $9),
	EXISTS (SELECT 1 FROM revocations WHERE kind = $6 AND id = $2 AND until_ns > $9),
	(SELECT at_ns FROM revocations WHERE kind = $7 AND id = $3 AND until_ns > $9),
	(SELECT at_ns FROM revocations WHERE kind = $8 AND id = $4 AND until_ns > $9)`

// TokenRevoked implements store.Store in one round trip, deciding as
// IsRevoked and Revocation would (and as the Badger store does).
func (d *DB) TokenRevoked(ctx context.Context, q store.TokenRevocationQuery) (bool, error) {
	var jti, family bool
	var clientAt, userAt *int64
	err := d.q.QueryRow(ctx, tokenRevokedSQL,
		idParam(q.JTI), idParam(q.Family), idParam(q.Client), idParam(q.User),
		string(store.RevokedToken), string(store.RevokedFamily), string(store.RevokedClient), string(store.RevokedUser),
		ns(d.now())).Scan(&jti, &family, &clientAt, &userAt)
	if err != nil {
		return false, err
	}
	return jti || family ||
		clientAt != nil && q.IssuedBy(fromNS(*clientAt)) ||
		userAt != nil && q.IssuedBy(fromNS(*userAt)), nil
}

// idParam is an identifier as a bytea parameter: NULL for the empty
// identifier, which names nothing (as store.DB.Revocation has it).
func idParam(id string) []byte {
	if id == "" {
		return nil
	}
	return []byte(id)
}
