package token

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/smartcaddy/smartauth/handlers/accesstoken"
	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/handlers/users"
	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/scopes"
	"github.com/smartcaddy/smartauth/store"
)

// Claims of the id_token and userinfo besides the registered ones.
const (
	idClaimFHIRUser = "fhirUser"
	idClaimName     = "name"
	idClaimAuthTime = "auth_time"
	idClaimNonce    = "nonce"
)

// tokenGrant is what a token is issued for: the outcome of redeeming a
// code, a refresh token or (later) client credentials.
type tokenGrant struct {
	ClientID string
	// Subject is the user's name; empty for a client acting on its own
	// behalf (the access token's sub is then the client id).
	Subject string
	// Scope is the scope the tokens carry, as the app asked for it.
	Scope   string
	Context store.LaunchContext
	// FamilyID names the family the tokens belong to; empty for none.
	FamilyID string
	// Nonce and AuthTime go into the id_token.
	Nonce    string
	AuthTime time.Time
	// TTL is the access token's lifetime; zero for access_token_lifetime
	// (the client_credentials grant sets backend_token_lifetime).
	TTL time.Duration
	// Federated is the profile of a user an identity provider signed in
	// without a configured entry (users.Federation); nil otherwise.
	Federated *store.FederatedUser
	// IDTokenAlg signs the id_token: the client's registered
	// id_token_signed_response_alg; empty for RS256.
	IDTokenAlg string
}

// user finds the user a grant or token names: a configured user, or an
// identity provider's user without a configured entry (users.Lookup).
func (s *Service) user(subject string, fed *store.FederatedUser) *users.User {
	return users.Lookup(s.cfg.Users, s.cfg.Federation, subject, fed)
}

// accessTokenTTL is the access-token lifetime.
func (s *Service) accessTokenTTL() time.Duration { return s.cfg.Lifetimes.AccessToken }

// backendTokenTTL is the lifetime of client_credentials access tokens.
func (s *Service) backendTokenTTL() time.Duration { return s.cfg.Lifetimes.Backend }

// refreshTokenTTL is the refresh-token lifetime.
func (s *Service) refreshTokenTTL() time.Duration { return s.cfg.Lifetimes.RefreshToken }

// scopeHas tells whether a space-separated scope string holds one scope.
func scopeHas(scope, want string) bool {
	return slices.Contains(scopes.Split(scope), want)
}

// absoluteFHIRUser makes a user's fhirUser reference absolute against the
// FHIR base; an absolute URL is kept.
func (s *Service) absoluteFHIRUser(ref string) string {
	if ref == "" || strings.HasPrefix(ref, "https://") || strings.HasPrefix(ref, "http://") {
		return ref
	}
	return strings.TrimSuffix(s.cfg.FHIRBase.String(), "/") + "/" + strings.TrimPrefix(ref, "/")
}

// jwtClaim is one claim to set on a token being minted.
type jwtClaim struct {
	name  string
	value any
}

// newJWT builds a token from claims.
func newJWT(claims []jwtClaim) (jwt.Token, error) {
	tok := jwt.New()
	for _, c := range claims {
		if err := tok.Set(c.name, c.value); err != nil {
			return nil, fmt.Errorf("setting claim %s: %w", c.name, err)
		}
	}
	return tok, nil
}

// mintAccessToken signs an access token for a grant (accesstoken.Profile)
// and returns it with its lifetime in seconds.
func (s *Service) mintAccessToken(g *tokenGrant) (string, int64, error) {
	fhirUser := ""
	if u := s.user(g.Subject, g.Federated); g.Subject != "" && u != nil {
		fhirUser = s.absoluteFHIRUser(u.FHIRUser)
	}
	return s.tokens.Mint(accesstoken.Grant{
		ClientID: g.ClientID,
		Subject:  g.Subject,
		Scope:    g.Scope,
		Context:  g.Context,
		FHIRUser: fhirUser,
		FamilyID: g.FamilyID,
		TTL:      g.TTL,
	})
}

// mintIDToken signs an OpenID Connect id_token (typ JWT; RS256, or ES256
// for a client that registered id_token_signed_response_alg ES256) for a
// grant with a user: iss, sub (the user name), aud (the client id), iat,
// exp (the access-token lifetime), auth_time, nonce when the
// authorization request had one, and the user claims (userClaims).
func (s *Service) mintIDToken(g *tokenGrant) (string, error) {
	u := s.user(g.Subject, g.Federated)
	if g.Subject == "" || u == nil {
		return "", errors.New("an id_token needs a configured user")
	}
	now := time.Now()
	claims := []jwtClaim{
		{jwt.IssuerKey, s.cfg.Issuer.String()},
		{jwt.SubjectKey, g.Subject},
		{jwt.AudienceKey, []string{g.ClientID}},
		{jwt.IssuedAtKey, now},
		{jwt.ExpirationKey, now.Add(s.accessTokenTTL())},
	}
	if !g.AuthTime.IsZero() {
		claims = append(claims, jwtClaim{idClaimAuthTime, g.AuthTime.Unix()})
	}
	if g.Nonce != "" {
		claims = append(claims, jwtClaim{idClaimNonce, g.Nonce})
	}
	claims = append(claims, s.userClaims(u, g.Scope)...)
	tok, err := newJWT(claims)
	if err != nil {
		return "", err
	}
	b, err := s.cfg.Keys.Sign(tok, idTokenAlg(g.IDTokenAlg), "JWT")
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// idTokenAlg is the algorithm of a client's id_tokens: ES256 when it
// registered it, else RS256 (the OpenID Connect default).
func idTokenAlg(registered string) string {
	if registered == keys.ES256 {
		return keys.ES256
	}
	return keys.RS256
}

// userClaims are the identity claims of the id_token and userinfo:
// fhirUser (absolute URL) when the user has a FHIR resource, name (the
// display name) when profile was granted.
func (s *Service) userClaims(u *users.User, scope string) []jwtClaim {
	var claims []jwtClaim
	if u.FHIRUser != "" {
		claims = append(claims, jwtClaim{idClaimFHIRUser, s.absoluteFHIRUser(u.FHIRUser)})
	}
	if u.DisplayName != "" && scopeHas(scope, "profile") {
		claims = append(claims, jwtClaim{idClaimName, u.DisplayName})
	}
	return claims
}

// issueTokens mints the access token, and the id_token when openid was
// granted to a user, and builds the token response with the launch
// context. A refresh token, when the grant made one, is passed in.
func (s *Service) issueTokens(g *tokenGrant, refreshToken string) (*tokenResponse, *oauth.Error) {
	at, expiresIn, err := s.mintAccessToken(g)
	if err != nil {
		return nil, s.serverFault("signing an access token", err)
	}
	resp := &tokenResponse{
		AccessToken:   at,
		TokenType:     "Bearer",
		ExpiresIn:     expiresIn,
		Scope:         g.Scope,
		RefreshToken:  refreshToken,
		LaunchContext: g.Context,
		subject:       g.Subject,
	}
	if g.Subject != "" && scopeHas(g.Scope, "openid") {
		if resp.IDToken, err = s.mintIDToken(g); err != nil {
			return nil, s.serverFault("signing an id_token", err)
		}
	}
	return resp, nil
}
