// Package store keeps the authorization server's state: dynamically
// registered clients, authorization codes, launch contexts, sign-in
// sessions, refresh-token families, used JWT ids, consent records,
// revocations and signing keys.
//
// Store is the interface the endpoints use; DB implements it on Badger v4.
// Every short-lived record carries an expiry and is never returned after it.
// Secrets that identify a record (codes, refresh tokens, session ids, launch
// ids) are passed in clear and stored only as their SHA-256 hash, so a copy of
// the database yields nothing an attacker can present.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors returned by Store methods. Callers map them to protocol errors.
var (
	// ErrNotFound means that no live record exists: it never existed, it
	// expired, or it was deleted.
	ErrNotFound = errors.New("record not found")

	// ErrReplayed means that a single-use record (a code, a refresh token,
	// a JWT id) was presented again after it had been used.
	ErrReplayed = errors.New("record already used")

	// ErrExists means that a record with the same identifier already exists.
	ErrExists = errors.New("record already exists")

	// ErrUnavailable means that the store cannot be reached now (its
	// database refuses or drops connections); retrying later may succeed.
	// Errors matching it keep their cause for the logs.
	ErrUnavailable = errors.New("store unavailable")
)

// Store is the persistence the endpoints need. All methods are safe for
// concurrent use. Methods that take a secret (code, token, session id, launch
// id) hash it before it touches the database.
type Store interface {
	// PutClient creates or replaces a dynamically registered client.
	PutClient(ctx context.Context, c *Client) error
	// GetClient returns a dynamically registered client or ErrNotFound.
	GetClient(ctx context.Context, id string) (*Client, error)
	// DeleteClient removes a dynamically registered client.
	DeleteClient(ctx context.Context, id string) error
	// RemoveClient deletes a dynamically registered client and, in the
	// same transaction, revokes every token issued to it until
	// revokeUntil (a RevokedClient revocation). check sees the client
	// inside the transaction; its error refuses the removal and is
	// returned unchanged. ErrNotFound when the client does not exist.
	RemoveClient(ctx context.Context, id string, check func(c *Client) error, revokeUntil time.Time) error
	// ListClients returns every dynamically registered client, by id.
	ListClients(ctx context.Context) ([]*Client, error)
	// UpdateClient reads a dynamically registered client and writes back
	// what fn returns, in one transaction, so that two updates cannot
	// both succeed on the same version (fn may run again after a
	// conflict and must have no other effects). fn returning nil and no
	// error deletes the client; an error from fn is returned unchanged.
	// ErrNotFound when the client does not exist.
	UpdateClient(ctx context.Context, id string, fn func(c *Client) (*Client, error)) error

	// SaveCode stores an authorization code for ttl.
	SaveCode(ctx context.Context, code string, rec *AuthCode, ttl time.Duration) error
	// RedeemCode marks a code used and returns it, exactly once: of any
	// number of concurrent redemptions one succeeds. Every later redemption
	// gets the record with ErrReplayed, so that the caller can revoke what
	// the first one issued.
	RedeemCode(ctx context.Context, code string) (*AuthCode, error)

	// SaveLaunch stores an EHR launch context for ttl.
	SaveLaunch(ctx context.Context, id string, rec *Launch, ttl time.Duration) error
	// GetLaunch returns a launch context without using it up.
	GetLaunch(ctx context.Context, id string) (*Launch, error)
	// ConsumeLaunch returns a launch context and deletes it, exactly once.
	ConsumeLaunch(ctx context.Context, id string) (*Launch, error)

	// SaveSession stores a sign-in session for ttl.
	SaveSession(ctx context.Context, id string, rec *Session, ttl time.Duration) error
	// GetSession returns a live sign-in session or ErrNotFound.
	GetSession(ctx context.Context, id string) (*Session, error)
	// GetSessionByHash returns a live sign-in session by HashID of its id,
	// for records that must refer to a session without holding its id.
	GetSessionByHash(ctx context.Context, hash string) (*Session, error)
	// DeleteSession ends a sign-in session.
	DeleteSession(ctx context.Context, id string) error

	// SaveRefresh stores a new refresh token (the first of its family, or
	// one issued outside rotation) for ttl.
	SaveRefresh(ctx context.Context, token string, rec *RefreshToken, ttl time.Duration) error
	// GetRefresh returns a live, unused refresh token whose family is not
	// revoked and whose client's tokens were not revoked after it was
	// issued (RevokedClient), or ErrNotFound.
	GetRefresh(ctx context.Context, token string) (*RefreshToken, error)
	// RotateRefresh exchanges token for rot.Next in one transaction: the
	// old token is marked used and rot.Next is stored with rot.TTL, of the
	// same family, with the record rot.Check returns (see Rotation). It
	// returns the old record as it was before (Used is true when this was
	// a retry within rot.Grace that replaced the previous successor).
	// Presenting a token that was already rotated, outside the grace
	// rules, revokes its whole family and returns the old record with
	// ErrReplayed. A token of a revoked family, or of a client whose
	// tokens were revoked at or after its issue (RevokedClient), is
	// ErrNotFound.
	RotateRefresh(ctx context.Context, token string, rot Rotation) (*RefreshToken, error)

	// UseJTI records a JWT id for an issuer (a client id) until exp. A
	// second use before exp returns ErrReplayed.
	UseJTI(ctx context.Context, issuer, jti string, exp time.Time) error

	// PutConsent remembers what a user granted a client, for ttl.
	PutConsent(ctx context.Context, rec *Consent, ttl time.Duration) error
	// GetConsent returns a remembered consent or ErrNotFound.
	GetConsent(ctx context.Context, user, clientID string) (*Consent, error)
	// DeleteConsent forgets a remembered consent; an absent one is not an
	// error.
	DeleteConsent(ctx context.Context, user, clientID string) error
	// UserGrants lists, per client, the live refresh-token families and
	// the remembered consent of a user (the management page).
	UserGrants(ctx context.Context, user string) ([]UserGrant, error)

	// Revoke records that tokens with an identifier (an access-token jti or
	// a refresh-token family id) are revoked until the last of them
	// expires.
	Revoke(ctx context.Context, kind RevocationKind, id string, until time.Time) error
	// IsRevoked tells whether an identifier is revoked.
	IsRevoked(ctx context.Context, kind RevocationKind, id string) (bool, error)
	// Revocation returns the live revocation of an identifier, or
	// ErrNotFound. A RevokedClient revocation's At tells which tokens it
	// covers: those issued at or before it.
	Revocation(ctx context.Context, kind RevocationKind, id string) (*Revocation, error)
	// TokenRevoked tells, in one read, whether an access token is
	// revoked: its jti (RevokedToken) or its family (RevokedFamily) has a
	// live revocation, as IsRevoked decides, or its client (RevokedClient)
	// or its user (RevokedUser) has a live revocation whose At is at or
	// after the token's issue (TokenRevocationQuery.IssuedBy), as
	// Revocation returns it. Empty fields of q are not checked.
	TokenRevoked(ctx context.Context, q TokenRevocationQuery) (bool, error)
	// RevokedSince lists revocations recorded at or after since, oldest
	// first, so that a verifier cache can drop revoked tokens.
	RevokedSince(ctx context.Context, since time.Time) ([]Revocation, error)

	// Keys returns every stored signing key record.
	Keys(ctx context.Context) ([]*KeyRecord, error)
	// UpdateKeys reads all key records and writes back what fn returns, in
	// one transaction: records fn returns are put, records it leaves out
	// are deleted. A concurrent update makes the loser run fn again.
	UpdateKeys(ctx context.Context, fn func(keys []*KeyRecord) ([]*KeyRecord, error)) error

	// SiteSecret returns the store's site secret (SiteSecretSize random
	// bytes), creating it on first use: every caller, on any instance,
	// gets the same value, forever.
	SiteSecret(ctx context.Context) ([]byte, error)
}

// RevocationKind says what a revoked identifier names.
type RevocationKind string

// Revocation kinds.
const (
	// RevokedToken names an access token by its jti.
	RevokedToken RevocationKind = "jti"
	// RevokedFamily names a refresh-token family and every access token
	// issued from it.
	RevokedFamily RevocationKind = "family"
	// RevokedClient names a client: every access and refresh token issued
	// to it at or before the revocation's At is revoked (an operator
	// revoking a client's tokens). Tokens issued later are not affected.
	RevokedClient RevocationKind = "client"
	// RevokedUser names a user (a token's sub): every access token issued
	// for the user at or before the revocation's At is revoked (an
	// operator revoking a user's tokens; the user's refresh-token families
	// are revoked alongside, by family). Tokens issued later are not
	// affected.
	RevokedUser RevocationKind = "user"
)

// ByIssueTime tells whether a revocation of the kind covers the tokens
// issued at or before its At (RevokedClient, RevokedUser) rather than
// naming tokens by an identifier they carry: then a later revocation of
// the same identifier covers more even when it ends sooner.
func (k RevocationKind) ByIssueTime() bool {
	return k == RevokedClient || k == RevokedUser
}
