package accesstoken

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/store"
)

// RevocationStore is the part of the store the profile reads: the
// revocations of tokens (by jti), of refresh-token families and of every
// token of a client or a user, in one read. *store.DB satisfies it.
type RevocationStore interface {
	// TokenRevoked tells whether a token is revoked (store.Store).
	TokenRevoked(ctx context.Context, q store.TokenRevocationQuery) (bool, error)
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
// safe for concurrent use; its only state is the set of the tokens it
// minted last, until their first use (TakeIssued).
type Profile struct {
	opts   Options
	issued *issuedSet // the tokens minted last, until their first use (issued.go)
}

// New builds a Profile.
func New(opts Options) (*Profile, error) {
	if opts.Issuer == "" || opts.Audience == "" || opts.Keys == nil || opts.Store == nil {
		return nil, errors.New("accesstoken: issuer, audience, keys and store are required")
	}
	if opts.Alg == "" {
		opts.Alg = keys.ES256
	}
	return &Profile{opts: opts, issued: &issuedSet{}}, nil
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
	lc := g.Context
	c := mintClaims{
		Aud: [1]string{p.opts.Audience}, ClientID: g.ClientID, Encounter: lc.Encounter,
		Exp: now.Add(ttl).Unix(), Family: g.FamilyID, FHIRContext: lc.FHIRContext,
		Iat: now.Unix(), Intent: lc.Intent, Iss: p.opts.Issuer, JTI: store.NewSecret(), Nbf: now.Unix(),
		NeedPatientBanner: lc.NeedPatientBanner, Patient: lc.Patient, Scope: g.Scope,
		SmartStyleURL: lc.SmartStyleURL, Sub: sub, Tenant: lc.Tenant,
	}
	if g.Subject != "" {
		c.FHIRUser = g.FHIRUser
	}
	payload, err := json.Marshal(&c)
	if err != nil {
		return "", 0, fmt.Errorf("marshaling the claims: %w", err)
	}
	b, err := p.opts.Keys.SignPayload(payload, p.opts.Alg, Type)
	if err != nil {
		return "", 0, err
	}
	token = string(b)
	p.remember(token, payload)
	return token, int64(ttl / time.Second), nil
}

// mintClaims are the claims of an access token as Mint writes them: the
// fields in name order (as jwx writes a token's), times in whole seconds,
// aud an array, the optional claims left out when empty.
type mintClaims struct {
	Aud               [1]string         `json:"aud"`
	ClientID          string            `json:"client_id"`
	Encounter         string            `json:"encounter,omitempty"`
	Exp               int64             `json:"exp"`
	Family            string            `json:"family_id,omitempty"`
	FHIRContext       []json.RawMessage `json:"fhirContext,omitempty"`
	FHIRUser          string            `json:"fhirUser,omitempty"`
	Iat               int64             `json:"iat"`
	Intent            string            `json:"intent,omitempty"`
	Iss               string            `json:"iss"`
	JTI               string            `json:"jti"`
	Nbf               int64             `json:"nbf"`
	NeedPatientBanner *bool             `json:"need_patient_banner,omitempty"`
	Patient           string            `json:"patient,omitempty"`
	Scope             string            `json:"scope"`
	SmartStyleURL     string            `json:"smart_style_url,omitempty"`
	Sub               string            `json:"sub"`
	Tenant            string            `json:"tenant,omitempty"`
}

// ErrRevoked is returned by Verify for a revoked token.
var ErrRevoked = errors.New("the access token was revoked")

// Verify checks an access token of this issuer: the signature with the
// ring's keys, typ at+jwt, iss, aud, exp and nbf (with Skew), a jti, and
// that neither the token (by jti), nor its family, nor every token of its
// client is revoked. An expired token's error matches
// jwt.TokenExpiredError(); a revoked one's is ErrRevoked. Permanent tells
// the refusals that no later moment can turn into an acceptance.
//
// The token is parsed once (verifyFast): header and claims are checked
// before the signature, so that a token with an unknown kid, the wrong
// typ or alg, expired or for another iss or aud costs no cryptography;
// the signature is then checked with the key's pre-parsed public half.
// Tokens outside the fast path's domain (non-canonical encodings, other
// header members, unusual claim types) are checked by jwx (verifyJWX);
// FuzzFastVerify checks that both accept exactly the same tokens.
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
