package accesstoken

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/smartcaddy/smartauth/handlers/internal/compactjws"
	"github.com/smartcaddy/smartauth/keys"
)

// errNotFast tells that a token lies outside the fast verifier's domain:
// Verify then checks it with jwx (verifyJWX), which decides.
var errNotFast = errors.New("accesstoken: token outside the fast path")

// maxTokenLen bounds the tokens the fast path decodes; longer ones (never
// minted here) go to jwx.
const maxTokenLen = 4096

// verifyFast verifies a compact JWS access token in one parse: the
// header (typ, kid, alg pinned to the key), then the claims (iat, exp,
// nbf with Skew, iss, aud, exp and jti required) — all readable before
// the signature, so that a token that fails them costs no cryptography —
// then the signature with the key's pre-parsed public half
// (keys.Verifier, standard library). It decides only tokens in its
// domain: base64url without padding, a header of string alg, kid and typ
// only, claims without duplicates, times as plain integers and the
// claims this package reads of their usual JSON types. Anything else is
// errNotFast, and jwx decides (FuzzFastVerify checks that both accept
// exactly the same tokens).
func (p *Profile) verifyFast(ctx context.Context, raw string) (Claims, error) {
	if len(raw) > maxTokenLen {
		return Claims{}, errNotFast
	}
	h, pl, sg, ok := compactjws.Split(raw)
	if !ok {
		return Claims{}, errNotFast
	}
	// One buffer holds the decoded header, payload and signature.
	hdr, ok := compactjws.Decode(make([]byte, 0, len(raw)), h)
	if !ok {
		return Claims{}, errNotFast
	}
	alg, kid, typ, ok := parseHeader(hdr)
	if !ok {
		return Claims{}, errNotFast
	}
	if !keys.TypMatches(typ, Type) {
		return Claims{}, fmt.Errorf("%w: typ %q", keys.ErrWrongType, typ)
	}
	v, err := p.opts.Keys.VerifierFor(ctx, kid)
	if err != nil {
		return Claims{}, err
	}
	if alg != v.Alg() {
		return Claims{}, fmt.Errorf("keys: Verify: alg %q does not match key %s (%s)", alg, v.KID(), v.Alg())
	}
	payload, ok := compactjws.Decode(hdr[len(hdr):], pl)
	if !ok {
		return Claims{}, errNotFast
	}
	fc := &fastClaims{}
	if !fc.parse(payload) {
		return Claims{}, errNotFast
	}
	if err := p.validate(fc); err != nil {
		return Claims{}, err
	}
	sig, ok := compactjws.Decode(payload[len(payload):], sg)
	if !ok {
		return Claims{}, errNotFast
	}
	// The signing input is the token's own bytes up to the second dot.
	in := raw[:len(h)+1+len(pl)]
	if !v.VerifySignature(unsafe.Slice(unsafe.StringData(in), len(in)), sig) {
		return Claims{}, fmt.Errorf("keys: Verify: token with %s key %s: %w", v.Alg(), v.KID(), keys.ErrBadSignature)
	}
	return Claims{f: fc}, nil
}

// validate checks the claims as jwt.Validate does with the options of
// verifyJWX, in its order: iat, exp and nbf against the ring's clock with
// Skew, then iss, aud, and the required exp and jti. The errors match
// jwx's (errors.Is with jwt.TokenExpiredError() and the like).
func (p *Profile) validate(fc *fastClaims) error {
	now := p.opts.Keys.Now()
	switch {
	case fc.has&hasIat != 0 && now.Before(time.Unix(fc.iat, 0).Add(-Skew)):
		return fmt.Errorf("accesstoken: %w", jwt.InvalidIssuedAtError())
	case fc.has&hasExp != 0 && !now.Before(time.Unix(fc.exp, 0).Add(Skew)):
		return fmt.Errorf("accesstoken: %w", jwt.TokenExpiredError())
	case fc.has&hasNbf != 0 && now.Before(time.Unix(fc.nbf, 0).Add(-Skew)):
		return fmt.Errorf("accesstoken: %w", jwt.TokenNotYetValidError())
	case fc.has&hasIss == 0 || fc.iss != p.opts.Issuer:
		return fmt.Errorf("accesstoken: %w", jwt.InvalidIssuerError())
	case !fc.hasAudience(p.opts.Audience):
		return fmt.Errorf("accesstoken: %w", jwt.InvalidAudienceError())
	case fc.has&hasExp == 0 || fc.has&hasJti == 0:
		return fmt.Errorf("accesstoken: exp and jti are required: %w", jwt.MissingRequiredClaimError())
	}
	return nil
}

// permanentError marks a refusal of Verify that holds for good: the same
// token will be refused whenever it is presented again.
type permanentError struct{ error }

// Unwrap is the refusal's reason, for errors.Is.
func (e permanentError) Unwrap() error { return e.error }

// Permanent tells whether Verify's err refuses the token for good (a bad
// signature, a malformed token, the wrong typ, alg, iss or aud, a missing
// claim, expiry, a revocation), so that a guard may remember the refusal
// by the token's hash. An unknown kid (the key may reach this instance's
// ring later), a token not valid yet (nbf or iat in the future) and a
// store failure are not permanent.
func Permanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// markPermanent marks a signature or claims refusal as permanent unless
// it may change with time or the key ring.
func markPermanent(err error) error {
	switch {
	case errors.Is(err, keys.ErrUnknownKey), errors.Is(err, jwt.TokenNotYetValidError()),
		errors.Is(err, jwt.InvalidIssuedAtError()), errors.Is(err, context.Canceled),
		errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return permanentError{err}
}
