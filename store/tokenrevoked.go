package store

import (
	"context"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// TokenRevocationQuery names everything that can revoke one access token,
// for Store.TokenRevoked: its jti and refresh-token family (revoked by
// identifier, RevokedToken and RevokedFamily) and its client and user
// (revoked by issue time, RevokedClient and RevokedUser). An empty field
// is not checked.
type TokenRevocationQuery struct {
	// JTI is the token's jti.
	JTI string
	// Family is the refresh-token family the token was issued from.
	Family string
	// Client is the client the token was issued to.
	Client string
	// User is the user the token was issued for; empty for a backend
	// token (whose sub is its client).
	User string
	// IssuedAt is the token's iat; the zero time for a token without one,
	// which counts as issued before any revocation.
	IssuedAt time.Time
}

// IssuedBy tells whether a token of q counts as issued at or before at,
// so that a revocation by issue time (RevokedClient, RevokedUser) recorded
// at at covers it. iat has one-second precision and is never later than
// the real issue time, so a token issued in the same second as the
// revocation is covered: the comparison errs on the side of refusing.
func (q *TokenRevocationQuery) IssuedBy(at time.Time) bool {
	return !q.IssuedAt.After(at)
}

// TokenRevoked implements Store, in one read transaction, or none when
// none of q's identifiers has a revocation (revfilter.go).
func (d *DB) TokenRevoked(_ context.Context, q TokenRevocationQuery) (bool, error) {
	if !d.revs.mayRevoke(&q) {
		return false, nil
	}
	var revoked bool
	err := d.db.View(func(txn *badger.Txn) error {
		var err error
		revoked, err = d.tokenRevoked(txn, &q)
		return err
	})
	return revoked, err
}

// tokenRevoked decides TokenRevoked inside txn, reading the revocations
// in the order jti, family, client, user and stopping at the first that
// revokes the token.
func (d *DB) tokenRevoked(txn *badger.Txn, q *TokenRevocationQuery) (bool, error) {
	if revoked, err := d.isRevoked(txn, RevokedToken, q.JTI); err != nil || revoked {
		return revoked, err
	}
	if revoked, err := d.isRevoked(txn, RevokedFamily, q.Family); err != nil || revoked {
		return revoked, err
	}
	if revoked, err := d.revokedAtOrAfter(txn, RevokedClient, q.Client, q); err != nil || revoked {
		return revoked, err
	}
	return d.revokedAtOrAfter(txn, RevokedUser, q.User, q)
}
