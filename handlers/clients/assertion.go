package clients

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/store"
)

// AssertionTypeJWT is RFC 7523's client_assertion_type for
// private_key_jwt.
const AssertionTypeJWT = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Limits on private_key_jwt client assertions.
const (
	// clientAssertionMaxAhead is how far in the future an assertion's
	// exp may lie (SMART: no more than five minutes).
	clientAssertionMaxAhead = 5 * time.Minute
	// clientAssertionSkew is the clock skew tolerated on exp, nbf and iat.
	clientAssertionSkew = 30 * time.Second
)

// The reasons a client assertion is refused that both parsers give (its
// header and iss), and those its claims fail jwt.Validate with, with the
// options of jwxClaims.validate (assertionValidationReason), which the
// fast path (fastassertion.go) gives in the same cases.
const (
	reasonNoKID         = "the kid header is required"
	reasonTyp           = "typ must be JWT"
	reasonNoIss         = "iss is required"
	reasonExpired       = "expired"
	reasonNotYetValid   = "not yet valid"
	reasonIssuedFuture  = "iat is in the future"
	reasonIssuer        = "iss must be the client id"
	reasonAudience      = "aud must be the token endpoint URL"
	reasonRequired      = "aud, exp and jti are required"
	reasonClaimsInvalid = "claims are invalid (iss and sub must be the client id)"
)

// assertion is a client assertion as one of the two parsers read it
// (parseAssertionFast, parseAssertionJWX), with its header checked but
// nothing in it trusted yet: checkAssertion decides.
type assertion struct {
	// alg is the header's algorithm, one of clientAssertionAlgs; kid its
	// key id, not empty.
	alg, kid string
	// jku is the header's JWK Set URL, when hasJKU.
	jku    string
	hasJKU bool
	// input is the signing input (the token's own bytes up to the
	// second dot) and sig the decoded signature.
	input, sig []byte
	// iss is the claimed client, not empty.
	iss string
	// claims are the rest of the claims, checked once the signature is.
	claims assertionClaims
}

// assertionClaims are the claims of a client assertion as one parser read
// them.
type assertionClaims interface {
	// validate checks the claims as jwt.Validate does with the options
	// of jwxClaims.validate, at now, for the client clientID: "" when
	// they hold, else the reason (one of the reason constants).
	validate(clientID string, now time.Time) string
	// audience is the aud claim.
	audience() []string
	// expiration is the exp claim.
	expiration() time.Time
	// jwtID is the jti claim.
	jwtID() string
}

// badAssertion is the invalid_client refusal of a client assertion.
func badAssertion(why string) *oauth.Error {
	return oauth.New(oauth.CodeInvalidClient, "client assertion: "+why)
}

// authenticateAssertion checks private_key_jwt: RFC 7523 §3 as SMART
// profiles it. The key is chosen by kid among the client's registered keys
// and must fit the algorithm; iss and sub are the client id, aud the token
// endpoint (or, when not empty, endpoint: the URL the request was sent
// to), exp at most five minutes ahead, and the jti is single-use.
//
// The assertion is read once by the fast parser (fastassertion.go); one
// outside its domain is read by jwx, which decides it. Both apply the
// same checks in the same order with the same answers
// (FuzzAssertionFast).
func (r *Registry) authenticateAssertion(ctx context.Context, form url.Values, endpoint string) (*store.Client, *oauth.Error) {
	if form.Get("client_assertion_type") != AssertionTypeJWT {
		return nil, oauth.New(oauth.CodeInvalidClient, "client_assertion_type must be "+AssertionTypeJWT)
	}
	raw := form.Get("client_assertion")
	if raw == "" {
		return nil, oauth.New(oauth.CodeInvalidRequest, "client_assertion is required")
	}
	a, f, ok := parseAssertionFast(raw)
	if !ok || r.jwxOnly {
		a, f = parseAssertionJWX([]byte(raw))
	}
	if f != nil {
		return nil, f
	}
	return r.checkAssertion(ctx, form, endpoint, a)
}

// parseAssertionJWX reads a client assertion with jwx and checks its
// header: exactly one compact JWS signature with an accepted algorithm,
// a kid, typ JWT if any, no crit or b64; and reads its claims without
// trusting them.
func parseAssertionJWX(raw []byte) (*assertion, *oauth.Error) {
	msg, err := jws.Parse(raw, jws.WithCompact())
	if err != nil {
		return nil, badAssertion("not a compact JWS")
	}
	sigs := msg.Signatures()
	if len(sigs) != 1 || sigs[0].ProtectedHeaders() == nil {
		return nil, badAssertion("exactly one signature with a protected header is required")
	}
	hdr := sigs[0].ProtectedHeaders()
	algHdr, _ := hdr.Algorithm()
	if _, ok := clientAssertionAlgs[algHdr.String()]; !ok {
		return nil, badAssertion("alg " + oauth.Truncate(algHdr.String()) + " is not accepted (use RS384, ES384, RS256 or ES256)")
	}
	kid, _ := hdr.KeyID()
	if kid == "" {
		return nil, badAssertion(reasonNoKID)
	}
	if typ, ok := hdr.Type(); ok && !strings.EqualFold(typ, "JWT") {
		return nil, badAssertion(reasonTyp)
	}
	// As jws.VerifyCompactFast: no critical extensions, and the default
	// base64url payload (RFC 7797's b64 changes the signing input).
	if hdr.Has(jws.CriticalKey) || hdr.Has(jws.B64Key) {
		return nil, badAssertion("crit and b64 headers are not accepted")
	}
	// The client it claims to be, read without trusting it yet, from the
	// same parse: the claims are checked (jwt.Validate) only once the
	// signature is.
	tok := jwt.New()
	if err := json.Unmarshal(msg.Payload(), tok); err != nil {
		return nil, badAssertion("malformed claims")
	}
	iss, _ := tok.Issuer()
	if iss == "" {
		return nil, badAssertion(reasonNoIss)
	}
	a := &assertion{alg: algHdr.String(), kid: kid, iss: iss, claims: jwxClaims{tok},
		input: raw[:bytes.LastIndexByte(raw, '.')], sig: sigs[0].Signature()}
	a.jku, a.hasJKU = hdr.JWKSetURL()
	return a, nil
}

// checkAssertion decides a parsed client assertion: the client_id of the
// form, if any, is its iss; the client is registered for private_key_jwt;
// jku, if any, is its jwks_uri; the key of kid fits alg and verifies the
// signature; then the claims (validate, aud, exp at most five minutes
// ahead, jti) and the jti's single use.
func (r *Registry) checkAssertion(ctx context.Context, form url.Values, endpoint string, a *assertion) (*store.Client, *oauth.Error) {
	if id := form.Get("client_id"); id != "" && id != a.iss {
		return nil, oauth.New(oauth.CodeInvalidRequest, "client_id does not match the client assertion's iss")
	}
	c, f := r.Resolve(ctx, a.iss)
	if f != nil {
		return nil, f
	}
	if c.Type != store.ClientConfidentialAsymmetric {
		return nil, badAssertion("this client is not registered for private_key_jwt")
	}
	if a.hasJKU && (c.JWKSURI == "" || a.jku != c.JWKSURI) {
		return nil, badAssertion("jku is not the client's registered JWKS URL")
	}
	key, f := r.assertionKey(ctx, c, a.kid, a.alg)
	if f != nil {
		return nil, f
	}
	// The signature over the token's own bytes up to the second dot, with
	// the selected key and the header's algorithm (the key fits it), by
	// the standard library.
	if !keys.VerifyJWS(a.alg, key, a.input, a.sig) {
		return nil, badAssertion("signature verification failed")
	}
	now := r.clock()
	if why := a.claims.validate(c.ID, now); why != "" {
		return nil, badAssertion(why)
	}
	if aud := a.claims.audience(); !slices.Contains(aud, r.opts.TokenEndpoint) && (endpoint == "" || !slices.Contains(aud, endpoint)) {
		if endpoint != "" {
			return nil, badAssertion("aud must be the token endpoint URL or " + endpoint)
		}
		return nil, badAssertion(reasonAudience)
	}
	exp := a.claims.expiration()
	if exp.After(now.Add(clientAssertionMaxAhead + clientAssertionSkew)) {
		return nil, badAssertion("exp is more than 5 minutes in the future")
	}
	jti := a.claims.jwtID()
	if jti == "" {
		return nil, badAssertion("jti is required")
	}
	switch err := r.opts.Store.UseJTI(ctx, c.ID, jti, exp.Add(clientAssertionSkew)); {
	case errors.Is(err, store.ErrReplayed):
		return nil, badAssertion("jti was already used")
	case err != nil:
		return nil, r.serverError("recording a client assertion jti", err)
	}
	return c, nil
}

// clock is the registry's time: time.Now unless a test set now.
func (r *Registry) clock() time.Time {
	if r.now != nil {
		return r.now()
	}
	return time.Now()
}

// jwxClaims are claims jwx read.
type jwxClaims struct{ tok jwt.Token }

// validate runs jwt.Validate: iat, exp and nbf with the skew, iss and
// sub the client id, aud, exp and jti present.
func (c jwxClaims) validate(clientID string, now time.Time) string {
	err := jwt.Validate(c.tok,
		jwt.WithClock(jwt.ClockFunc(func() time.Time { return now })),
		jwt.WithIssuer(clientID),
		jwt.WithSubject(clientID),
		jwt.WithRequiredClaim(jwt.AudienceKey),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithRequiredClaim(jwt.JwtIDKey),
		jwt.WithAcceptableSkew(clientAssertionSkew),
	)
	if err != nil {
		return assertionValidationReason(err)
	}
	return ""
}

// audience is the aud claim.
func (c jwxClaims) audience() []string { aud, _ := c.tok.Audience(); return aud }

// expiration is the exp claim.
func (c jwxClaims) expiration() time.Time { exp, _ := c.tok.Expiration(); return exp }

// jwtID is the jti claim.
func (c jwxClaims) jwtID() string { jti, _ := c.tok.JwtID(); return jti }

// assertionValidationReason turns a jwx validation error into a short
// reason that names the failed check but echoes nothing from the token.
func assertionValidationReason(err error) string {
	switch {
	case errors.Is(err, jwt.TokenExpiredError()):
		return reasonExpired
	case errors.Is(err, jwt.TokenNotYetValidError()):
		return reasonNotYetValid
	case errors.Is(err, jwt.InvalidIssuedAtError()):
		return reasonIssuedFuture
	case errors.Is(err, jwt.InvalidIssuerError()):
		return reasonIssuer
	case errors.Is(err, jwt.InvalidAudienceError()):
		return reasonAudience
	case errors.Is(err, jwt.MissingRequiredClaimError()):
		return reasonRequired
	case errors.Is(err, jwt.ValidateError()):
		return reasonClaimsInvalid
	}
	return "signature verification failed"
}
