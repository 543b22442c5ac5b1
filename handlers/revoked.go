package handlers

import (
	"context"
	"errors"

	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/smartcaddy/smartauth/store"
)

// accessTokenRevoked tells whether a verified access token was revoked:
// by its jti, by its refresh-token family, or with every token of its
// client (store.RevokedClient, for tokens issued at or before the
// revocation).
func (s *Server) accessTokenRevoked(ctx context.Context, tok jwt.Token) (bool, error) {
	jti, _ := tok.JwtID()
	revoked, err := s.cfg.Store.IsRevoked(ctx, store.RevokedToken, jti)
	if err != nil || revoked {
		return revoked, err
	}
	if family := stringClaim(tok, accessClaimFamily); family != "" {
		if revoked, err = s.cfg.Store.IsRevoked(ctx, store.RevokedFamily, family); err != nil || revoked {
			return revoked, err
		}
	}
	return s.clientTokensRevoked(ctx, tok)
}

// clientTokensRevoked tells whether a RevokedClient revocation of the
// token's client covers it: one recorded at or after its iat. iat has
// one-second precision and is never later than the real issue time, so a
// token issued in the same second as the revocation counts as revoked:
// the comparison errs on the side of refusing. A token without iat is
// treated as issued before any revocation.
func (s *Server) clientTokensRevoked(ctx context.Context, tok jwt.Token) (bool, error) {
	clientID := stringClaim(tok, accessClaimClientID)
	if clientID == "" {
		return false, nil
	}
	rev, err := s.cfg.Store.Revocation(ctx, store.RevokedClient, clientID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	iat, _ := tok.IssuedAt()
	return !iat.After(rev.At), nil
}
