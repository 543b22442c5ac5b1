package handlers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/scopes"
	"github.com/smartcaddy/smartauth/store"
)

// Claims of the access tokens this server issues (RFC 9068 profile, typ
// at+jwt), besides iss, sub, aud, exp, iat, nbf and jti. The guard,
// introspection and revocation read them by these names.
const (
	accessClaimClientID  = "client_id"
	accessClaimScope     = "scope"
	accessClaimPatient   = "patient"
	accessClaimEncounter = "encounter"
	accessClaimFHIRUser  = "fhirUser"
	// accessClaimFamily names the refresh-token family (the code's
	// family) the token was issued from: revoking the family
	// (store.RevokedFamily) revokes the token.
	accessClaimFamily = "family_id"
)

// Claims of the id_token and userinfo besides the registered ones.
const (
	idClaimFHIRUser = "fhirUser"
	idClaimName     = "name"
	idClaimAuthTime = "auth_time"
	idClaimNonce    = "nonce"
)

// accessTokenType is the typ header of access tokens (RFC 9068).
const accessTokenType = "at+jwt"

// accessTokenSkew is the clock skew tolerated when checking exp and nbf
// of our own access tokens.
const accessTokenSkew = 30 * time.Second

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
}

// accessTokenTTL is the access-token lifetime.
func (s *Server) accessTokenTTL() time.Duration { return s.cfg.Lifetimes.AccessToken }

// backendTokenTTL is the lifetime of client_credentials access tokens.
func (s *Server) backendTokenTTL() time.Duration { return s.cfg.Lifetimes.Backend }

// refreshTokenTTL is the refresh-token lifetime.
func (s *Server) refreshTokenTTL() time.Duration { return s.cfg.Lifetimes.RefreshToken }

// familyRevocationTTL is how long a family revocation must last so that
// every token issued from the family has expired by then.
func (s *Server) familyRevocationTTL() time.Duration {
	return max(s.accessTokenTTL(), s.refreshTokenTTL())
}

// accessTokenAlg is the access tokens' signing algorithm.
func (s *Server) accessTokenAlg() string {
	if s.cfg.AccessTokenAlg != "" {
		return s.cfg.AccessTokenAlg
	}
	return keys.ES256
}

// scopeHas tells whether a space-separated scope string holds one scope.
func scopeHas(scope, want string) bool {
	return slices.Contains(scopes.Split(scope), want)
}

// absoluteFHIRUser makes a user's fhirUser reference absolute against the
// FHIR base; an absolute URL is kept.
func (s *Server) absoluteFHIRUser(ref string) string {
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

// mintAccessToken signs an access token for a grant with the configured
// algorithm (typ at+jwt) and returns it with its lifetime in seconds.
func (s *Server) mintAccessToken(g *tokenGrant) (string, int64, error) {
	now := time.Now()
	ttl := g.TTL
	if ttl <= 0 {
		ttl = s.accessTokenTTL()
	}
	sub := g.Subject
	if sub == "" {
		sub = g.ClientID
	}
	claims := []jwtClaim{
		{jwt.IssuerKey, s.cfg.Issuer.String()},
		{jwt.SubjectKey, sub},
		{jwt.AudienceKey, s.cfg.FHIRBase.String()},
		{jwt.IssuedAtKey, now},
		{jwt.NotBeforeKey, now},
		{jwt.ExpirationKey, now.Add(ttl)},
		{jwt.JwtIDKey, store.NewSecret()},
		{accessClaimClientID, g.ClientID},
		{accessClaimScope, g.Scope},
	}
	if g.Context.Patient != "" {
		claims = append(claims, jwtClaim{accessClaimPatient, g.Context.Patient})
	}
	if g.Context.Encounter != "" {
		claims = append(claims, jwtClaim{accessClaimEncounter, g.Context.Encounter})
	}
	claims = append(claims, launchContextClaims(g.Context)...)
	if u := s.cfg.Users[g.Subject]; g.Subject != "" && u != nil && u.FHIRUser != "" {
		claims = append(claims, jwtClaim{accessClaimFHIRUser, s.absoluteFHIRUser(u.FHIRUser)})
	}
	if g.FamilyID != "" {
		claims = append(claims, jwtClaim{accessClaimFamily, g.FamilyID})
	}
	tok, err := newJWT(claims)
	if err != nil {
		return "", 0, err
	}
	b, err := s.cfg.Keys.Sign(tok, s.accessTokenAlg(), accessTokenType)
	if err != nil {
		return "", 0, err
	}
	return string(b), int64(ttl / time.Second), nil
}

// Claims carrying the rest of the launch context, so that introspection
// can repeat every launch-context parameter of the token response (SMART
// token introspection: SHALL).
const (
	accessClaimFHIRContext       = "fhirContext"
	accessClaimNeedPatientBanner = "need_patient_banner"
	accessClaimSmartStyleURL     = "smart_style_url"
	accessClaimIntent            = "intent"
	accessClaimTenant            = "tenant"
)

// launchContextClaims are the launch-context claims besides patient and
// encounter.
func launchContextClaims(lc store.LaunchContext) []jwtClaim {
	var claims []jwtClaim
	if len(lc.FHIRContext) > 0 {
		claims = append(claims, jwtClaim{accessClaimFHIRContext, lc.FHIRContext})
	}
	if lc.NeedPatientBanner != nil {
		claims = append(claims, jwtClaim{accessClaimNeedPatientBanner, *lc.NeedPatientBanner})
	}
	if lc.SmartStyleURL != "" {
		claims = append(claims, jwtClaim{accessClaimSmartStyleURL, lc.SmartStyleURL})
	}
	if lc.Intent != "" {
		claims = append(claims, jwtClaim{accessClaimIntent, lc.Intent})
	}
	if lc.Tenant != "" {
		claims = append(claims, jwtClaim{accessClaimTenant, lc.Tenant})
	}
	return claims
}

// mintIDToken signs an OpenID Connect id_token (RS256, typ JWT) for a
// grant with a user: iss, sub (the user name), aud (the client id), iat,
// exp (the access-token lifetime), auth_time, nonce when the
// authorization request had one, and the user claims (userClaims).
func (s *Server) mintIDToken(g *tokenGrant) (string, error) {
	u := s.cfg.Users[g.Subject]
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
	b, err := s.cfg.Keys.Sign(tok, keys.RS256, "JWT")
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// userClaims are the identity claims of the id_token and userinfo:
// fhirUser (absolute URL) when the user has a FHIR resource, name (the
// display name) when profile was granted.
func (s *Server) userClaims(u *User, scope string) []jwtClaim {
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
func (s *Server) issueTokens(g *tokenGrant, refreshToken string) (*tokenResponse, *oauth.Error) {
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
	}
	if g.Subject != "" && scopeHas(g.Scope, "openid") {
		if resp.IDToken, err = s.mintIDToken(g); err != nil {
			return nil, s.serverFault("signing an id_token", err)
		}
	}
	return resp, nil
}

// errAccessTokenRevoked is returned by verifyAccessTokenJWT for a revoked
// token.
var errAccessTokenRevoked = errors.New("the access token was revoked")

// verifyAccessTokenJWT checks an access token this server issued: the
// signature with the ring's keys, typ at+jwt, iss, aud (the FHIR base),
// exp and nbf, a jti, and that neither the token (by jti) nor its family
// is revoked. It returns the validated token.
func (s *Server) verifyAccessTokenJWT(ctx context.Context, raw string) (jwt.Token, error) {
	tok, err := s.cfg.Keys.VerifyTyp(ctx, []byte(raw), accessTokenType,
		jwt.WithIssuer(s.cfg.Issuer.String()),
		jwt.WithAudience(s.cfg.FHIRBase.String()),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithRequiredClaim(jwt.JwtIDKey),
		jwt.WithAcceptableSkew(accessTokenSkew),
	)
	if err != nil {
		return nil, err
	}
	switch revoked, err := s.accessTokenRevoked(ctx, tok); {
	case err != nil:
		return nil, err
	case revoked:
		return nil, errAccessTokenRevoked
	}
	return tok, nil
}

// stringClaim reads a string claim of a token; "" when absent or not a
// string.
func stringClaim(tok jwt.Token, name string) string {
	var v string
	if tok.Has(name) {
		if err := tok.Get(name, &v); err != nil {
			return ""
		}
	}
	return v
}
