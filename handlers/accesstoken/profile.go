package accesstoken

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/store"
)

// RevocationStore is the part of the store the profile reads: the
// revocations of tokens (by jti), of refresh-token families and of every
// token of a client. *store.DB satisfies it.
type RevocationStore interface {
	// IsRevoked tells whether a token, family or client id is revoked.
	IsRevoked(ctx context.Context, kind store.RevocationKind, id string) (bool, error)
	// Revocation returns a revocation record, or store.ErrNotFound.
	Revocation(ctx context.Context, kind store.RevocationKind, id string) (*store.Revocation, error)
}

// Options configure a Profile.
type Options struct {
	// Issuer is the iss of the tokens: the authorization server's URL.
	Issuer string
	// Audience is the aud of the tokens: the FHIR server's base URL.
	Audience string
	// Keys sign and verify the tokens.
	Keys *keys.Ring
	// Alg signs the tokens: keys.ES256 (the default when empty) or
	// keys.RS256.
	Alg string
	// Lifetime is the lifetime of a token whose Grant has no TTL.
	Lifetime time.Duration
	// Store holds the revocations Verify checks.
	Store RevocationStore
}

// Profile mints and verifies the access tokens of one issuer. It is
// immutable and safe for concurrent use.
type Profile struct {
	opts Options
}

// New builds a Profile.
func New(opts Options) (*Profile, error) {
	if opts.Issuer == "" || opts.Audience == "" || opts.Keys == nil || opts.Store == nil {
		return nil, errors.New("accesstoken: issuer, audience, keys and store are required")
	}
	if opts.Alg == "" {
		opts.Alg = keys.ES256
	}
	return &Profile{opts: opts}, nil
}

// Grant is what an access token is issued for.
type Grant struct {
	ClientID string
	// Subject is the user's name; empty for a client acting on its own
	// behalf (the token's sub is then the client id).
	Subject string
	// Scope is the granted scope, space-separated.
	Scope   string
	Context store.LaunchContext
	// FHIRUser is the user's FHIR resource as an absolute URL; empty for
	// none.
	FHIRUser string
	// FamilyID names the refresh-token family; empty for none.
	FamilyID string
	// TTL is the token's lifetime; zero for Options.Lifetime.
	TTL time.Duration
}

// claim is one claim to set on a token being minted.
type claim struct {
	name  string
	value any
}

// Mint signs an access token for a grant with the configured algorithm
// (typ at+jwt) and returns it with its lifetime in seconds.
func (p *Profile) Mint(g Grant) (token string, expiresIn int64, err error) {
	now := time.Now()
	ttl := g.TTL
	if ttl <= 0 {
		ttl = p.opts.Lifetime
	}
	sub := g.Subject
	if sub == "" {
		sub = g.ClientID
	}
	claims := []claim{
		{jwt.IssuerKey, p.opts.Issuer},
		{jwt.SubjectKey, sub},
		{jwt.AudienceKey, p.opts.Audience},
		{jwt.IssuedAtKey, now},
		{jwt.NotBeforeKey, now},
		{jwt.ExpirationKey, now.Add(ttl)},
		{jwt.JwtIDKey, store.NewSecret()},
		{ClaimClientID, g.ClientID},
		{ClaimScope, g.Scope},
	}
	if g.Context.Patient != "" {
		claims = append(claims, claim{ClaimPatient, g.Context.Patient})
	}
	if g.Context.Encounter != "" {
		claims = append(claims, claim{ClaimEncounter, g.Context.Encounter})
	}
	claims = append(claims, launchContextClaims(g.Context)...)
	if g.Subject != "" && g.FHIRUser != "" {
		claims = append(claims, claim{ClaimFHIRUser, g.FHIRUser})
	}
	if g.FamilyID != "" {
		claims = append(claims, claim{ClaimFamily, g.FamilyID})
	}
	tok := jwt.New()
	for _, c := range claims {
		if err := tok.Set(c.name, c.value); err != nil {
			return "", 0, fmt.Errorf("setting claim %s: %w", c.name, err)
		}
	}
	b, err := p.opts.Keys.Sign(tok, p.opts.Alg, Type)
	if err != nil {
		return "", 0, err
	}
	return string(b), int64(ttl / time.Second), nil
}

// launchContextClaims are the launch-context claims besides patient and
// encounter.
func launchContextClaims(lc store.LaunchContext) []claim {
	var claims []claim
	if len(lc.FHIRContext) > 0 {
		claims = append(claims, claim{ClaimFHIRContext, lc.FHIRContext})
	}
	if lc.NeedPatientBanner != nil {
		claims = append(claims, claim{ClaimNeedPatientBanner, *lc.NeedPatientBanner})
	}
	if lc.SmartStyleURL != "" {
		claims = append(claims, claim{ClaimSmartStyleURL, lc.SmartStyleURL})
	}
	if lc.Intent != "" {
		claims = append(claims, claim{ClaimIntent, lc.Intent})
	}
	if lc.Tenant != "" {
		claims = append(claims, claim{ClaimTenant, lc.Tenant})
	}
	return claims
}

// ErrRevoked is returned by Verify for a revoked token.
var ErrRevoked = errors.New("the access token was revoked")

// Verify checks an access token of this issuer: the signature with the
// ring's keys, typ at+jwt, iss, aud, exp and nbf (with Skew), a jti, and
// that neither the token (by jti), nor its family, nor every token of its
// client is revoked. An expired token's error matches
// jwt.TokenExpiredError(); a revoked one's is ErrRevoked. Permanent tells
// the refusals that no later moment can turn into an acceptance.
func (p *Profile) Verify(ctx context.Context, raw string) (Claims, error) {
	c, err := p.verifyFast(ctx, raw)
	if errors.Is(err, errNotFast) {
		c, err = p.verifyJWX(ctx, raw)
	}
	if err != nil {
		return Claims{}, markPermanent(err)
	}
	switch revoked, err := p.revoked(ctx, c); {
	case err != nil:
		return Claims{}, err
	case revoked:
		return Claims{}, permanentError{ErrRevoked}
	}
	return c, nil
}

// verifyJWX checks a token's signature and claims with jwx (keys.Ring
// VerifyTyp): the reference the fast path agrees with, and the path of
// the tokens outside its domain.
func (p *Profile) verifyJWX(ctx context.Context, raw string) (Claims, error) {
	tok, err := p.opts.Keys.VerifyTyp(ctx, []byte(raw), Type,
		jwt.WithIssuer(p.opts.Issuer),
		jwt.WithAudience(p.opts.Audience),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithRequiredClaim(jwt.JwtIDKey),
		jwt.WithAcceptableSkew(Skew),
	)
	if err != nil {
		return Claims{}, err
	}
	return Claims{tok: tok}, nil
}
