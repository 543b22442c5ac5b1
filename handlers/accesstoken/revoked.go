package accesstoken

import (
	"context"
	"errors"

	"github.com/smartcaddy/smartauth/store"
)

// revoked tells whether a verified access token was revoked: by its jti,
// by its refresh-token family, or with every token of its client
// (store.RevokedClient, for tokens issued at or before the revocation).
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
	return p.clientTokensRevoked(ctx, c)
}

// clientTokensRevoked tells whether a RevokedClient revocation of the
// token's client covers it: one recorded at or after its iat. iat has
// one-second precision and is never later than the real issue time, so a
// token issued in the same second as the revocation counts as revoked:
// the comparison errs on the side of refusing. A token without iat is
// treated as issued before any revocation.
func (p *Profile) clientTokensRevoked(ctx context.Context, c Claims) (bool, error) {
	clientID := c.ClientID()
	if clientID == "" {
		return false, nil
	}
	rev, err := p.opts.Store.Revocation(ctx, store.RevokedClient, clientID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	iat, _ := c.IssuedAt()
	return !iat.After(rev.At), nil
}
