package handlers

import (
	"context"

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
	return false, nil
}
