package token

import (
	"context"
	"time"

	"github.com/smartcaddy/smartauth/store"
)

// Store is the part of the store the back channel uses. *store.DB
// satisfies it.
type Store interface {
	// RedeemCode uses up an authorization code (grant_code.go).
	RedeemCode(ctx context.Context, code string) (*store.AuthCode, error)
	// SaveRefresh stores the first refresh token of a family
	// (grant_code.go).
	SaveRefresh(ctx context.Context, token string, rec *store.RefreshToken, ttl time.Duration) error
	// GetRefresh reads a live refresh token (introspect.go, revoke.go).
	GetRefresh(ctx context.Context, token string) (*store.RefreshToken, error)
	// RotateRefresh exchanges a refresh token for its successor
	// (grant_refresh.go).
	RotateRefresh(ctx context.Context, token string, rot store.Rotation) (*store.RefreshToken, error)
	// Revoke revokes an access token or a family (revoke.go, replay
	// detection in the grants).
	Revoke(ctx context.Context, kind store.RevocationKind, id string, until time.Time) error
	// GetSessionByHash reads the sign-in session an online_access
	// refresh token is bound to (grant_refresh.go).
	GetSessionByHash(ctx context.Context, hash string) (*store.Session, error)
}
