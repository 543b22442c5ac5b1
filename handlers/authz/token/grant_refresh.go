package token

import (
	"errors"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/handlers/clients"
	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/handlers/users"
	"github.com/smartcaddy/smartauth/scopes"
	"github.com/smartcaddy/smartauth/store"
)

// grantRefreshToken exchanges a refresh token for new tokens (RFC 6749 §6,
// SMART App Launch "Refresh access token"). Every refresh rotates: the
// presented token is used up and a successor of the same family with the
// same granted scope is returned. Presenting a used token again revokes
// the family, except within the refresh grace period (Lifetimes.
// RefreshGrace, store.Rotation.Grace): the same client presenting a
// just-rotated token whose successor is still unused gets a new successor,
// and the previous one is invalidated. A narrower scope may be asked for; it applies to the new
// access token only, so that a later refresh may ask for the original
// scope again (RFC 6749 §6: "originally granted").
func (s *Service) grantRefreshToken(ex *tokenExchange) (*tokenResponse, *oauth.Error) {
	ctx := ex.r.Context()
	token := ex.form.Get("refresh_token")
	if token == "" {
		return nil, oauth.New(oauth.CodeInvalidRequest, "refresh_token is required")
	}

	// A confidential client authenticates; a public client may send its
	// client_id or nothing at all, since the token names it.
	var client, owner *store.Client
	if clients.Presented(ex.r, ex.form) {
		var f *oauth.Error
		if client, f = s.registry.Authenticate(ex.r, ex.form); f != nil {
			ex.clientID = ex.form.Get("client_id")
			return nil, f
		}
		ex.clientID = client.ID
		if f := clients.MayUseGrant(client, string(oauth.GrantRefreshToken)); f != nil {
			return nil, f
		}
	}
	narrowed := ex.form.Has("scope")
	requested := scopes.Split(ex.form.Get("scope"))
	if narrowed && len(requested) == 0 {
		return nil, oauth.New(oauth.CodeInvalidScope, "scope is empty")
	}

	// check runs inside the rotation's transaction: refusing here leaves
	// the presented token usable. A token presented again within the
	// grace period (old.Used) that would be refused is reuse instead, as
	// it is under strict rotation.
	check := func(old *store.RefreshToken) (*store.RefreshToken, error) {
		var f *oauth.Error
		if owner, f = s.checkRefresh(ex, client, old, narrowed, requested); f != nil {
			if old.Used && f.Status < 500 {
				return nil, store.ErrReplayed
			}
			return nil, f
		}
		return old, nil
	}

	next := store.NewSecret()
	old, err := s.cfg.Store.RotateRefresh(ctx, token, store.Rotation{
		Next: next, TTL: s.refreshTokenTTL(), Grace: s.cfg.Lifetimes.RefreshGrace, Check: check,
	})
	var fault *oauth.Error
	switch {
	case errors.As(err, &fault):
		return nil, fault
	case errors.Is(err, store.ErrReplayed):
		// Reuse of a rotated token: the store revoked the family for
		// as long as its refresh tokens live; extend that to the
		// access tokens issued from it, which may live longer.
		if old != nil && old.FamilyID != "" {
			until := time.Now().Add(s.cfg.Lifetimes.FamilyRevocation())
			if err := s.cfg.Store.Revoke(ctx, store.RevokedFamily, old.FamilyID, until); err != nil {
				return nil, s.serverFault("revoking the family of a reused refresh token", err)
			}
			ex.clientID = old.ClientID
		}
		s.logger.Warn("refresh token reused; its family is revoked",
			zap.String("client_id", ex.clientID), zap.Bool("superseded", old != nil && old.Superseded))
		return nil, oauth.New(oauth.CodeInvalidGrant, "the refresh token was already used")
	case errors.Is(err, store.ErrNotFound):
		return nil, oauth.New(oauth.CodeInvalidGrant, "the refresh token is unknown, expired or revoked")
	case err != nil:
		return nil, s.serverFault("rotating a refresh token", err)
	}

	if old.Used {
		s.logger.Info("refresh token presented again within the grace period; its unused successor is replaced",
			zap.String("client_id", old.ClientID))
	}

	scope := scopes.Split(old.Scope)
	if narrowed {
		scope = requested
	}
	// The client's and the user's configuration may have narrowed since
	// the grant: the new access token carries only what both allow now.
	// The refresh token keeps the grant, so a later widening restores it.
	scope = scopes.Grant(scope, owner.Scopes)
	kept := scope[:0]
	for _, sc := range scope {
		if users.MayGrant(s.user(old.Subject, old.Federated), sc) {
			kept = append(kept, sc)
		}
	}
	return s.issueTokens(&tokenGrant{
		ClientID: old.ClientID,
		Subject:  old.Subject,
		Scope:    strings.Join(kept, " "),
		Context:  old.Context,
		FamilyID: old.FamilyID,
		AuthTime: old.AuthTime,

		Federated:  old.Federated,
		IDTokenAlg: owner.IDTokenSignedResponseAlg,
	}, next)
}

// checkRefresh decides, inside the rotation's transaction, whether the
// presented refresh token old may be exchanged by this request, and
// returns the client it belongs to. client is the authenticated client,
// nil when none authenticated (a public client, named by the token).
func (s *Service) checkRefresh(ex *tokenExchange, client *store.Client, old *store.RefreshToken, narrowed bool, requested []string) (*store.Client, *oauth.Error) {
	ctx := ex.r.Context()
	owner := client
	if client != nil {
		if old.ClientID != client.ID {
			return nil, oauth.New(oauth.CodeInvalidGrant, "the refresh token was issued to another client")
		}
	} else {
		var f *oauth.Error
		if owner, f = s.registry.Resolve(ctx, old.ClientID); f != nil {
			return nil, f
		}
		ex.clientID = owner.ID
		if owner.Type != store.ClientPublic {
			return nil, oauth.New(oauth.CodeInvalidClient, "this client must authenticate")
		}
		if f := clients.MayUseGrant(owner, string(oauth.GrantRefreshToken)); f != nil {
			return nil, f
		}
	}
	if narrowed && !scopes.Covers(scopes.Split(old.Scope), requested) {
		return nil, oauth.New(oauth.CodeInvalidScope, "the requested scope exceeds the scope originally granted")
	}
	if old.SessionHash != "" {
		// online_access: only while the user's sign-in session lives.
		sess, err := s.cfg.Store.GetSessionByHash(ctx, old.SessionHash)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, oauth.New(oauth.CodeInvalidGrant, "the sign-in session of this online_access token has ended")
		case err != nil:
			return nil, s.serverFault("reading a sign-in session", err)
		case sess.User != old.Subject:
			return nil, oauth.New(oauth.CodeInvalidGrant, "the sign-in session of this online_access token has ended")
		}
	}
	if old.Subject != "" {
		u := s.user(old.Subject, old.Federated)
		if u == nil {
			return nil, oauth.New(oauth.CodeInvalidGrant, "the user of this authorization no longer exists")
		}
		// The patient in context must still be within the user's reach
		// (reach.go): an operator who took it away ends the grant.
		if p := old.Context.Patient; p != "" && !s.users.Reach(u).PatientAllowed(p) {
			return nil, oauth.New(oauth.CodeInvalidGrant, "the user may no longer open this authorization's patient")
		}
	}
	return owner, nil
}
