package accesstoken

import (
	"context"

	"github.com/smartcaddy/smartauth/store"
)

// revoked tells whether a verified access token was revoked: by its jti,
// by its refresh-token family, with every token of its client
// (store.RevokedClient) or of its user (store.RevokedUser), the last two
// for tokens issued at or before the revocation. iat has one-second
// precision and is never later than the real issue time, so a token
// issued in the same second as a revocation counts as revoked: the
// comparison errs on the side of refusing. A token without iat is treated
// as issued before any revocation. The store answers all four in one read
// (store.Store.TokenRevoked).
func (p *Profile) revoked(ctx context.Context, c Claims) (bool, error) {
	q := store.TokenRevocationQuery{JTI: c.ID(), Family: c.Family(), Client: c.ClientID()}
	// A backend token's sub is its client: only a user's is a user.
	if sub := c.Subject(); sub != q.Client {
		q.User = sub
	}
	q.IssuedAt, _ = c.IssuedAt()
	return p.opts.Store.TokenRevoked(ctx, q)
}
