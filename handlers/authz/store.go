package authz

import (
	"context"
	"time"

	"github.com/smartcaddy/smartauth/handlers/authz/token"
	"github.com/smartcaddy/smartauth/store"
)

// Store is the part of the store the authorization server uses, one
// interface per concern, with the token service's view (token.Store:
// codes redeemed, refresh tokens, revocations, sessions by hash), since
// New hands it the same store. *store.DB satisfies it.
type Store interface {
	SessionStore
	LaunchStore
	GrantStore
	ConsentStore
	ClientLister
	SiteSecretStore
	JTIStore
	token.Store
}

// SiteSecretStore gives the site secret the sealed pending requests and
// the sign-in form's CSRF token are keyed from (seal.go).
type SiteSecretStore interface {
	SiteSecret(ctx context.Context) ([]byte, error)
}

// JTIStore records used pending request ids (pending.go), once each.
type JTIStore interface {
	UseJTI(ctx context.Context, issuer, jti string, exp time.Time) error
}

// SessionStore holds the sign-in sessions (session.go, login.go), by id.
type SessionStore interface {
	SaveSession(ctx context.Context, id string, rec *store.Session, ttl time.Duration) error
	GetSession(ctx context.Context, id string) (*store.Session, error)
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

// GrantStore holds what the front channel leaves for the token service:
// the authorization codes (authorize.go), and the revocation of a family
// when a user withdraws an app (manage.go).
type GrantStore interface {
	SaveCode(ctx context.Context, code string, rec *store.AuthCode, ttl time.Duration) error
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
