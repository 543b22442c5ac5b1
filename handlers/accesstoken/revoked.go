package accesstoken

import (
	"context"
	"errors"

	"github.com/smartcaddy/smartauth/store"
)

// revoked tells whether a verified access token was revoked: by its jti,
// by its refresh-token family, with every token of its client
// (store.RevokedClient) or of its user (store.RevokedUser), the last two
// for tokens issued at or before the revocation.
func (p *Profile) revoked(ctx context.Context, c Claims) (bool, error) {
	revoked, err := p.opts.Store.IsRevoked(ctx, store.RevokedToken, c.ID())
	if err != nil || revoked {
		return revoked, err
	}
	if family := c.Family(); family != "" {
		if revoked, err = p.opts.Store.IsRevoked(ctx, store.RevokedFamily, family); err != nil || revoked {
			return revoked, err
		}
	}
	if revoked, err := p.issuedBefore(ctx, store.RevokedClient, c.ClientID(), c); err != nil || revoked {
		return revoked, err
	}
	// A backend token's sub is its client: only a user's is a user.
	if sub := c.Subject(); sub != c.ClientID() {
		return p.issuedBefore(ctx, store.RevokedUser, sub, c)
	}
	return false, nil
}

// issuedBefore tells whether a revocation by issue time (RevokedClient,
// RevokedUser) of id covers the token: one recorded at or after its iat.
// iat has one-second precision and is never later than the real issue
// time, so a token issued in the same second as the revocation counts as
// revoked: the comparison errs on the side of refusing. A token without
// iat is treated as issued before any revocation.
func (p *Profile) issuedBefore(ctx context.Context, kind store.RevocationKind, id string, c Claims) (bool, error) {
	if id == "" {
		return false, nil
	}
	rev, err := p.opts.Store.Revocation(ctx, kind, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	iat, _ := c.IssuedAt()
	return !iat.After(rev.At), nil
}
