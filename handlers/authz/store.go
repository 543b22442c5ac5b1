package authz

import (
	"context"
	"time"

	"github.com/smartcaddy/smartauth/store"
)

// Store is the part of the store the authorization server uses, one
// interface per concern. *store.DB satisfies it.
type Store interface {
	SessionStore
	LaunchStore
	GrantStore
	ConsentStore
	ClientLister
}

// SessionStore holds the sign-in sessions (session.go, login.go), by id;
// the refresh grant reads one by the id's hash (online_access).
type SessionStore interface {
	SaveSession(ctx context.Context, id string, rec *store.Session, ttl time.Duration) error
	GetSession(ctx context.Context, id string) (*store.Session, error)
	GetSessionByHash(ctx context.Context, hash string) (*store.Session, error)
	DeleteSession(ctx context.Context, id string) error
}

// LaunchStore holds the EHR launches (launch.go, launcher.go): saved by
// the launch API and the launcher page, read by the authorization
// endpoint, used up when the code is issued.
type LaunchStore interface {
	SaveLaunch(ctx context.Context, id string, rec *store.Launch, ttl time.Duration) error
	GetLaunch(ctx context.Context, id string) (*store.Launch, error)
	ConsumeLaunch(ctx context.Context, id string) (*store.Launch, error)
}

// GrantStore holds what a grant leaves behind: authorization codes,
// refresh tokens (rotated by the refresh grant) and the revocations of
// tokens and families (revoke.go, manage.go, replay detection).
type GrantStore interface {
	SaveCode(ctx context.Context, code string, rec *store.AuthCode, ttl time.Duration) error
	RedeemCode(ctx context.Context, code string) (*store.AuthCode, error)
	SaveRefresh(ctx context.Context, token string, rec *store.RefreshToken, ttl time.Duration) error
	GetRefresh(ctx context.Context, token string) (*store.RefreshToken, error)
	RotateRefresh(ctx context.Context, token string, rot store.Rotation) (*store.RefreshToken, error)
	Revoke(ctx context.Context, kind store.RevocationKind, id string, until time.Time) error
}

// ConsentStore holds remembered consents and lists what a user granted
// (consent.go, authorize.go, manage.go).
type ConsentStore interface {
	PutConsent(ctx context.Context, rec *store.Consent, ttl time.Duration) error
	GetConsent(ctx context.Context, user, clientID string) (*store.Consent, error)
	DeleteConsent(ctx context.Context, user, clientID string) error
	UserGrants(ctx context.Context, user string) ([]store.UserGrant, error)
}

// ClientLister lists the dynamically registered clients (the launcher
// page offers those with a launch URL).
type ClientLister interface {
	ListClients(ctx context.Context) ([]*store.Client, error)
}
