package token

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/handlers/accesstoken"
	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/internal/audit"
	"github.com/smartcaddy/smartauth/store"
)

// errNotOwner is a revocation of a token issued to another client.
var errNotOwner = errors.New("the token was issued to another client")

// serveRevoke is the revocation endpoint: POST {issuer}/revoke (RFC 7009).
//
// The client authenticates as at the token endpoint; a public client
// identifies itself with client_id. The token may be an access token or a
// refresh token, whatever token_type_hint says (the hint only orders the
// lookup):
//
//   - an access token is revoked by its jti until it expires; the guard,
//     userinfo and introspection then refuse it;
//   - a refresh token revokes its whole family: every refresh token of
//     the family and every access token issued from it.
//
// An unknown, expired, malformed or already revoked token is answered 200
// with nothing done (RFC 7009 §2.2: the client cannot do anything useful
// with such an error). A live token issued to another client is refused
// with unauthorized_client and nothing is revoked (RFC 7009 §2.1: the
// server "verifies whether the token was issued to the client making the
// revocation request. If this validation fails, the request is refused
// and the client is informed of the error").
func (s *Service) serveRevoke(w http.ResponseWriter, r *http.Request) {
	if oauth.AllowAnyOrigin(w, r, "POST, OPTIONS") {
		return
	}
	form, ok := s.readOAuthPost(w, r, "POST, OPTIONS", "the revocation endpoint")
	if !ok {
		return
	}
	client, f := s.registry.AuthenticateAt(r, form, s.cfg.RevokeEndpoint)
	if f != nil {
		oauth.Write(w, f.WithBasic(s.cfg.Issuer.String()))
		return
	}
	token := form.Get("token")
	if token == "" {
		oauth.Write(w, oauth.New(oauth.CodeInvalidRequest, "token is required"))
		return
	}
	kind, err := s.revoke(r.Context(), client.ID, token, form.Get("token_type_hint"))
	switch {
	case errors.Is(err, errNotOwner):
		s.logger.Info("revocation refused: token of another client", zap.String("client_id", client.ID))
		s.recordRevocation(r, client.ID, "", audit.OutcomeRefused, "unauthorized_client: the token was not issued to this client")
		oauth.Write(w, oauth.New(oauth.CodeUnauthorizedClient, "the token was not issued to this client"))
		return
	case err != nil:
		s.logger.Error("revocation", zap.String("client_id", client.ID), zap.Error(err))
		s.recordRevocation(r, client.ID, "", audit.OutcomeError, "the store failed")
		oauth.Write(w, failure(err))
		return
	}
	s.logger.Debug("revocation", zap.String("client_id", client.ID), zap.String("revoked", kind))
	s.recordRevocation(r, client.ID, kind, audit.OutcomeSuccess, "")
	w.WriteHeader(http.StatusOK)
}

// revoke revokes a token of client, looking it up as an access token and
// as a refresh token in the order hint suggests. It returns what it
// revoked: "access_token", "refresh_token" or "" for nothing.
func (s *Service) revoke(ctx context.Context, clientID, token, hint string) (string, error) {
	order := []func(context.Context, string, string) (bool, error){s.revokeAccess, s.revokeRefresh}
	names := []string{"access_token", "refresh_token"}
	if hint == "refresh_token" {
		order[0], order[1] = order[1], order[0]
		names[0], names[1] = names[1], names[0]
	}
	for i, try := range order {
		found, err := try(ctx, clientID, token)
		if err != nil {
			return "", err
		}
		if found {
			return names[i], nil
		}
	}
	return "", nil
}

// revokeAccess revokes a live access token of this server by its jti
// until it expires. found is false for anything that is not one.
func (s *Service) revokeAccess(ctx context.Context, clientID, token string) (bool, error) {
	if strings.Count(token, ".") != 2 {
		return false, nil
	}
	tok, err := s.tokens.Verify(ctx, token)
	if err != nil {
		return false, nil
	}
	if tok.ClientID() != clientID {
		return false, errNotOwner
	}
	exp, _ := tok.Expiration()
	return true, s.cfg.Store.Revoke(ctx, store.RevokedToken, tok.ID(), exp.Add(accesstoken.Skew))
}

// revokeRefresh revokes the family of a live refresh token: its refresh
// tokens (the store refuses them) and the access tokens issued from it
// (they carry family_id), for as long as any of them can live.
func (s *Service) revokeRefresh(ctx context.Context, clientID, token string) (bool, error) {
	rec, err := s.cfg.Store.GetRefresh(ctx, token)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	case rec.ClientID != clientID:
		return false, errNotOwner
	}
	until := time.Now().Add(s.cfg.Lifetimes.FamilyRevocation())
	return true, s.cfg.Store.Revoke(ctx, store.RevokedFamily, rec.FamilyID, until)
}
