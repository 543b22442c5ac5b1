package token

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/handlers/clients"
	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/store"
)

// grantAuthorizationCode redeems an authorization code (RFC 6749 §4.1.3,
// RFC 7636 §4.6, SMART App Launch "Obtain access token").
func (s *Service) grantAuthorizationCode(ex *tokenExchange) (*tokenResponse, *oauth.Error) {
	ctx := ex.r.Context()
	client, f := s.registry.Authenticate(ex.r, ex.form)
	if f != nil {
		ex.clientID = ex.form.Get("client_id")
		return nil, f
	}
	ex.clientID = client.ID
	if f := clients.MayUseGrant(client, string(oauth.GrantAuthorizationCode)); f != nil {
		return nil, f
	}
	code := ex.form.Get("code")
	if code == "" {
		return nil, oauth.New(oauth.CodeInvalidRequest, "code is required")
	}
	if !ex.form.Has("redirect_uri") {
		return nil, oauth.New(oauth.CodeInvalidRequest, "redirect_uri is required")
	}

	// The code is consumed first: whatever fails below, it cannot be
	// tried again.
	rec, err := s.cfg.Store.RedeemCode(ctx, code)
	switch {
	case errors.Is(err, store.ErrReplayed):
		// A second redemption: the code leaked. Revoke everything the
		// first one issued (RFC 6749 §4.1.2, RFC 6819 §5.2.1.1).
		until := time.Now().Add(s.cfg.Lifetimes.FamilyRevocation())
		if rec != nil && rec.FamilyID != "" {
			if err := s.cfg.Store.Revoke(ctx, store.RevokedFamily, rec.FamilyID, until); err != nil {
				return nil, s.serverFault("revoking the family of a replayed code", err)
			}
		}
		s.logger.Warn("authorization code replayed; its tokens are revoked",
			zap.String("client_id", client.ID))
		return nil, oauth.New(oauth.CodeInvalidGrant, "the authorization code was already used")
	case errors.Is(err, store.ErrNotFound):
		return nil, oauth.New(oauth.CodeInvalidGrant, "the authorization code is unknown or expired")
	case err != nil:
		return nil, s.serverFault("redeeming a code", err)
	}
	if rec.ClientID != client.ID {
		return nil, oauth.New(oauth.CodeInvalidGrant, "the authorization code was issued to another client")
	}
	if ex.form.Get("redirect_uri") != rec.RedirectURI {
		return nil, oauth.New(oauth.CodeInvalidGrant, "redirect_uri does not match the authorization request")
	}
	if f := checkPKCE(rec.CodeChallenge, ex.form.Get("code_verifier")); f != nil {
		return nil, f
	}
	if rec.Subject == "" || s.user(rec.Subject, rec.Federated) == nil {
		return nil, oauth.New(oauth.CodeInvalidGrant, "the user of this authorization no longer exists")
	}

	if rec.FamilyID == "" {
		// Every token needs a family for revocation, rotation and reuse
		// detection; the authorize endpoint always sets one.
		rec.FamilyID = store.NewSecret()
	}
	g := &tokenGrant{
		ClientID: client.ID,
		Subject:  rec.Subject,
		Scope:    rec.Scope,
		Context:  rec.Context,
		FamilyID: rec.FamilyID,
		Nonce:    rec.Nonce,
		AuthTime: rec.AuthTime,

		Federated:  rec.Federated,
		IDTokenAlg: client.IDTokenSignedResponseAlg,
	}
	refresh, f := s.startRefreshFamily(ex, client, rec)
	if f != nil {
		return nil, f
	}
	return s.issueTokens(g, refresh)
}

// startRefreshFamily stores the first refresh token of a code's family
// when the grant asks for one: offline_access (outlives the sign-in
// session) or online_access (bound to it). It returns "" when none is
// issued: neither scope, a client not allowed to refresh, or an
// online_access grant without a session to bind it to.
func (s *Service) startRefreshFamily(ex *tokenExchange, client *store.Client, rec *store.AuthCode) (string, *oauth.Error) {
	offline := scopeHas(rec.Scope, "offline_access")
	online := scopeHas(rec.Scope, "online_access")
	if !offline && !online {
		return "", nil
	}
	if clients.MayUseGrant(client, string(oauth.GrantRefreshToken)) != nil {
		s.logger.Debug("no refresh token: the client may not use the refresh_token grant", zap.String("client_id", client.ID))
		return "", nil
	}
	rt := &store.RefreshToken{
		FamilyID: rec.FamilyID,
		ClientID: client.ID,
		Subject:  rec.Subject,
		Scope:    rec.Scope,
		Context:  rec.Context,
		AuthTime: rec.AuthTime,
		IssuedAt: time.Now(),

		Federated: rec.Federated,
	}
	if !offline {
		if rec.SessionHash == "" {
			s.logger.Debug("no refresh token: online_access without a sign-in session", zap.String("client_id", client.ID))
			return "", nil
		}
		rt.SessionHash = rec.SessionHash
	}
	token := store.NewSecret()
	if err := s.cfg.Store.SaveRefresh(ex.r.Context(), token, rt, s.refreshTokenTTL()); err != nil {
		return "", s.serverFault("saving a refresh token", err)
	}
	return token, nil
}

// checkPKCE checks a code_verifier against the stored S256 challenge
// (RFC 7636 §4.6): 43 to 128 characters of [A-Za-z0-9-._~], and
// base64url(SHA-256(verifier)) equal to the challenge, compared in
// constant time. Every failure is invalid_grant.
func checkPKCE(challenge, verifier string) *oauth.Error {
	if challenge == "" {
		return oauth.New(oauth.CodeInvalidGrant, "the authorization request had no code_challenge")
	}
	if verifier == "" {
		return oauth.New(oauth.CodeInvalidGrant, "code_verifier is required")
	}
	if !validPKCEVerifier(verifier) {
		return oauth.New(oauth.CodeInvalidGrant, "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~")
	}
	sum := sha256.Sum256([]byte(verifier))
	computed := base64.RawURLEncoding.EncodeToString(sum[:])
	if subtle.ConstantTimeCompare([]byte(computed), []byte(challenge)) != 1 {
		return oauth.New(oauth.CodeInvalidGrant, "code_verifier does not match the code_challenge")
	}
	return nil
}

// validPKCEVerifier tells whether v is a well-formed RFC 7636 verifier.
func validPKCEVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := range len(v) {
		c := v[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}
