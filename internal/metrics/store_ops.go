package metrics

// The decorator's methods, one per operation of store.Store, in its
// order (store.go holds the decorator itself).

import (
	"context"
	"time"

	"github.com/smartcaddy/smartauth/store"
)

// The store operations, in store.Store's order (storeOpNames).
const (
	opPutClient = iota
	opGetClient
	opDeleteClient
	opRemoveClient
	opListClients
	opUpdateClient
	opSaveCode
	opRedeemCode
	opSaveLaunch
	opGetLaunch
	opConsumeLaunch
	opSaveSession
	opGetSession
	opGetSessionByHash
	opDeleteSession
	opSaveRefresh
	opGetRefresh
	opRotateRefresh
	opUseJTI
	opPutConsent
	opGetConsent
	opDeleteConsent
	opUserGrants
	opRevoke
	opIsRevoked
	opRevocation
	opTokenRevoked
	opRevokedSince
	opKeys
	opUpdateKeys
	opSiteSecret
	numStoreOps
)

// storeOpNames are the operation label values, by operation.
var storeOpNames = [numStoreOps]string{
	"put_client",
	"get_client",
	"delete_client",
	"remove_client",
	"list_clients",
	"update_client",
	"save_code",
	"redeem_code",
	"save_launch",
	"get_launch",
	"consume_launch",
	"save_session",
	"get_session",
	"get_session_by_hash",
	"delete_session",
	"save_refresh",
	"get_refresh",
	"rotate_refresh",
	"use_jti",
	"put_consent",
	"get_consent",
	"delete_consent",
	"user_grants",
	"revoke",
	"is_revoked",
	"revocation",
	"token_revoked",
	"revoked_since",
	"keys",
	"update_keys",
	"site_secret",
}

// PutClient implements store.Store, timed.
func (s *timedStore) PutClient(ctx context.Context, c *store.Client) error {
	start := time.Now()
	err := s.Store.PutClient(ctx, c)
	s.done(opPutClient, start, err)
	return err
}

// GetClient implements store.Store, timed.
func (s *timedStore) GetClient(ctx context.Context, id string) (*store.Client, error) {
	start := time.Now()
	v, err := s.Store.GetClient(ctx, id)
	s.done(opGetClient, start, err)
	return v, err
}

// DeleteClient implements store.Store, timed.
func (s *timedStore) DeleteClient(ctx context.Context, id string) error {
	start := time.Now()
	err := s.Store.DeleteClient(ctx, id)
	s.done(opDeleteClient, start, err)
	return err
}

// RemoveClient implements store.Store, timed.
func (s *timedStore) RemoveClient(ctx context.Context, id string, check func(c *store.Client) error, revokeUntil time.Time) error {
	start := time.Now()
	err := s.Store.RemoveClient(ctx, id, check, revokeUntil)
	s.done(opRemoveClient, start, err)
	return err
}

// ListClients implements store.Store, timed.
func (s *timedStore) ListClients(ctx context.Context) ([]*store.Client, error) {
	start := time.Now()
	v, err := s.Store.ListClients(ctx)
	s.done(opListClients, start, err)
	return v, err
}

// UpdateClient implements store.Store, timed.
func (s *timedStore) UpdateClient(ctx context.Context, id string, fn func(c *store.Client) (*store.Client, error)) error {
	start := time.Now()
	err := s.Store.UpdateClient(ctx, id, fn)
	s.done(opUpdateClient, start, err)
	return err
}

// SaveCode implements store.Store, timed.
func (s *timedStore) SaveCode(ctx context.Context, code string, rec *store.AuthCode, ttl time.Duration) error {
	start := time.Now()
	err := s.Store.SaveCode(ctx, code, rec, ttl)
	s.done(opSaveCode, start, err)
	return err
}

// RedeemCode implements store.Store, timed.
func (s *timedStore) RedeemCode(ctx context.Context, code string) (*store.AuthCode, error) {
	start := time.Now()
	v, err := s.Store.RedeemCode(ctx, code)
	s.done(opRedeemCode, start, err)
	return v, err
}

// SaveLaunch implements store.Store, timed.
func (s *timedStore) SaveLaunch(ctx context.Context, id string, rec *store.Launch, ttl time.Duration) error {
	start := time.Now()
	err := s.Store.SaveLaunch(ctx, id, rec, ttl)
	s.done(opSaveLaunch, start, err)
	return err
}

// GetLaunch implements store.Store, timed.
func (s *timedStore) GetLaunch(ctx context.Context, id string) (*store.Launch, error) {
	start := time.Now()
	v, err := s.Store.GetLaunch(ctx, id)
	s.done(opGetLaunch, start, err)
	return v, err
}

// ConsumeLaunch implements store.Store, timed.
func (s *timedStore) ConsumeLaunch(ctx context.Context, id string) (*store.Launch, error) {
	start := time.Now()
	v, err := s.Store.ConsumeLaunch(ctx, id)
	s.done(opConsumeLaunch, start, err)
	return v, err
}

// SaveSession implements store.Store, timed.
func (s *timedStore) SaveSession(ctx context.Context, id string, rec *store.Session, ttl time.Duration) error {
	start := time.Now()
	err := s.Store.SaveSession(ctx, id, rec, ttl)
	s.done(opSaveSession, start, err)
	return err
}

// GetSession implements store.Store, timed.
func (s *timedStore) GetSession(ctx context.Context, id string) (*store.Session, error) {
	start := time.Now()
	v, err := s.Store.GetSession(ctx, id)
	s.done(opGetSession, start, err)
	return v, err
}

// GetSessionByHash implements store.Store, timed.
func (s *timedStore) GetSessionByHash(ctx context.Context, hash string) (*store.Session, error) {
	start := time.Now()
	v, err := s.Store.GetSessionByHash(ctx, hash)
	s.done(opGetSessionByHash, start, err)
	return v, err
}

// DeleteSession implements store.Store, timed.
func (s *timedStore) DeleteSession(ctx context.Context, id string) error {
	start := time.Now()
	err := s.Store.DeleteSession(ctx, id)
	s.done(opDeleteSession, start, err)
	return err
}

// SaveRefresh implements store.Store, timed.
func (s *timedStore) SaveRefresh(ctx context.Context, token string, rec *store.RefreshToken, ttl time.Duration) error {
	start := time.Now()
	err := s.Store.SaveRefresh(ctx, token, rec, ttl)
	s.done(opSaveRefresh, start, err)
	return err
}

// GetRefresh implements store.Store, timed.
func (s *timedStore) GetRefresh(ctx context.Context, token string) (*store.RefreshToken, error) {
	start := time.Now()
	v, err := s.Store.GetRefresh(ctx, token)
	s.done(opGetRefresh, start, err)
	return v, err
}

// RotateRefresh implements store.Store, timed.
func (s *timedStore) RotateRefresh(ctx context.Context, token string, rot store.Rotation) (*store.RefreshToken, error) {
	start := time.Now()
	v, err := s.Store.RotateRefresh(ctx, token, rot)
	s.done(opRotateRefresh, start, err)
	return v, err
}

// UseJTI implements store.Store, timed.
func (s *timedStore) UseJTI(ctx context.Context, issuer, jti string, exp time.Time) error {
	start := time.Now()
	err := s.Store.UseJTI(ctx, issuer, jti, exp)
	s.done(opUseJTI, start, err)
	return err
}

// PutConsent implements store.Store, timed.
func (s *timedStore) PutConsent(ctx context.Context, rec *store.Consent, ttl time.Duration) error {
	start := time.Now()
	err := s.Store.PutConsent(ctx, rec, ttl)
	s.done(opPutConsent, start, err)
	return err
}

// GetConsent implements store.Store, timed.
func (s *timedStore) GetConsent(ctx context.Context, user, clientID string) (*store.Consent, error) {
	start := time.Now()
	v, err := s.Store.GetConsent(ctx, user, clientID)
	s.done(opGetConsent, start, err)
	return v, err
}

// DeleteConsent implements store.Store, timed.
func (s *timedStore) DeleteConsent(ctx context.Context, user, clientID string) error {
	start := time.Now()
	err := s.Store.DeleteConsent(ctx, user, clientID)
	s.done(opDeleteConsent, start, err)
	return err
}

// UserGrants implements store.Store, timed.
func (s *timedStore) UserGrants(ctx context.Context, user string) ([]store.UserGrant, error) {
	start := time.Now()
	v, err := s.Store.UserGrants(ctx, user)
	s.done(opUserGrants, start, err)
	return v, err
}

// Revoke implements store.Store, timed.
func (s *timedStore) Revoke(ctx context.Context, kind store.RevocationKind, id string, until time.Time) error {
	start := time.Now()
	err := s.Store.Revoke(ctx, kind, id, until)
	s.done(opRevoke, start, err)
	return err
}

// IsRevoked implements store.Store, timed.
func (s *timedStore) IsRevoked(ctx context.Context, kind store.RevocationKind, id string) (bool, error) {
	start := time.Now()
	v, err := s.Store.IsRevoked(ctx, kind, id)
	s.done(opIsRevoked, start, err)
	return v, err
}

// Revocation implements store.Store, timed.
func (s *timedStore) Revocation(ctx context.Context, kind store.RevocationKind, id string) (*store.Revocation, error) {
	start := time.Now()
	v, err := s.Store.Revocation(ctx, kind, id)
	s.done(opRevocation, start, err)
	return v, err
}

// TokenRevoked implements store.Store, timed as one operation (its four
// reads are one transaction or one statement).
func (s *timedStore) TokenRevoked(ctx context.Context, q store.TokenRevocationQuery) (bool, error) {
	start := time.Now()
	v, err := s.Store.TokenRevoked(ctx, q)
	s.done(opTokenRevoked, start, err)
	return v, err
}

// RevokedSince implements store.Store, timed.
func (s *timedStore) RevokedSince(ctx context.Context, since time.Time) ([]store.Revocation, error) {
	start := time.Now()
	v, err := s.Store.RevokedSince(ctx, since)
	s.done(opRevokedSince, start, err)
	return v, err
}

// Keys implements store.Store, timed.
func (s *timedStore) Keys(ctx context.Context) ([]*store.KeyRecord, error) {
	start := time.Now()
	v, err := s.Store.Keys(ctx)
	s.done(opKeys, start, err)
	return v, err
}

// UpdateKeys implements store.Store, timed.
func (s *timedStore) UpdateKeys(ctx context.Context, fn func(keys []*store.KeyRecord) ([]*store.KeyRecord, error)) error {
	start := time.Now()
	err := s.Store.UpdateKeys(ctx, fn)
	s.done(opUpdateKeys, start, err)
	return err
}

// SiteSecret implements store.Store, timed.
func (s *timedStore) SiteSecret(ctx context.Context) ([]byte, error) {
	start := time.Now()
	v, err := s.Store.SiteSecret(ctx)
	s.done(opSiteSecret, start, err)
	return v, err
}
