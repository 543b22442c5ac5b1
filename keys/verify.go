package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Verifier is one published key's public half, parsed once when the key
// was loaded, with the algorithm it is pinned to. It verifies compact JWS
// signatures with the standard library (crypto/ecdsa, crypto/rsa) exactly
// as jwx does for the same key (RFC 7518 §3.3 and §3.4): ES256 takes the
// 64-byte R||S form, RS256 a PKCS #1 v1.5 signature the size of the
// modulus. It is a small value: looking it up allocates nothing.
type Verifier struct {
	kid, alg string
	pub      any // *ecdsa.PublicKey or *rsa.PublicKey, checked by checkKey
}

// KID is the key's kid.
func (v Verifier) KID() string { return v.kid }

// Alg is the one algorithm the key verifies (ES256 or RS256).
func (v Verifier) Alg() string { return v.alg }

// VerifySignature tells whether sig is a valid signature of signingInput
// (the ASCII "header.payload" of a compact JWS) by the key, with its
// algorithm.
func (v Verifier) VerifySignature(signingInput, sig []byte) bool {
	return VerifyJWS(v.alg, v.pub, signingInput, sig)
}

// VerifyJWS tells whether sig is a valid JWS signature of signingInput
// with alg (RS256, RS384, ES256 or ES384; RFC 7518 §3.3, §3.4) by pub, an
// *rsa.PublicKey or an *ecdsa.PublicKey on alg's curve, with the standard
// library, as jwx checks it: ECDSA signatures are R||S of twice the
// curve's byte size, RSA ones PKCS #1 v1.5 the size of the modulus. Any
// other algorithm or key is refused.
func VerifyJWS(alg string, pub any, signingInput, sig []byte) bool {
	var h crypto.Hash
	var curve elliptic.Curve
	switch alg {
	case "RS256":
		h = crypto.SHA256
	case "RS384":
		h = crypto.SHA384
	case "ES256":
		h, curve = crypto.SHA256, elliptic.P256()
	case "ES384":
		h, curve = crypto.SHA384, elliptic.P384()
	default:
		return false
	}
	var sum [sha512.Size384]byte
	digest := sum[:h.Size()]
	if h == crypto.SHA256 {
		d := sha256.Sum256(signingInput)
		copy(digest, d[:])
	} else {
		d := sha512.Sum384(signingInput)
		copy(digest, d[:])
	}
	switch pub := pub.(type) {
	case *ecdsa.PublicKey:
		if curve == nil || pub.Curve != curve {
			return false
		}
		n := (curve.Params().BitSize + 7) / 8
		if len(sig) != 2*n {
			return false
		}
		var r, s big.Int
		r.SetBytes(sig[:n])
		s.SetBytes(sig[n:])
		return ecdsa.Verify(pub, digest, &r, &s)
	case *rsa.PublicKey:
		return curve == nil && rsa.VerifyPKCS1v15(pub, h, digest, sig) == nil
	}
	return false
}

// VerifierFor returns the published key with the given kid, as Verify
// selects it: an unknown kid that could be one of ours makes the ring
// reload the store (at most once a second across callers) before it gives
// up with ErrUnknownKey. It reads no signature: callers check the token's
// alg against Verifier.Alg and its claims before paying for the
// signature check.
func (r *Ring) VerifierFor(ctx context.Context, kid string) (Verifier, error) {
	e, err := r.lookupKID(ctx, kid)
	if err != nil {
		return Verifier{}, err
	}
	return Verifier{kid: e.kid, alg: e.alg, pub: e.pubRaw}, nil
}

// lookupKID finds the published entry of kid, reloading the store for a
// plausible unknown kid (reloadForUnknownKID).
func (r *Ring) lookupKID(ctx context.Context, kid string) (*entry, error) {
	if kid == "" {
		return nil, errors.New("keys: Verify: token has no kid header")
	}
	e := r.current().published[kid]
	if e == nil && plausibleKID(kid) {
		r.reloadForUnknownKID(ctx)
		e = r.current().published[kid]
	}
	if e == nil {
		return nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, kid)
	}
	return e, nil
}

// TypMatches tells whether a typ header names typ, in its short or its
// media-type spelling "application/"+typ (RFC 7515 §4.1.9), compared
// case-insensitively, as VerifyTyp requires.
func TypMatches(got, typ string) bool {
	return strings.EqualFold(got, typ) || strings.EqualFold(got, "application/"+typ)
}

// Now is the ring's clock, which Verify validates tokens against.
func (r *Ring) Now() time.Time { return r.now() }
