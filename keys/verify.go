package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
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
	h := sha256.Sum256(signingInput)
	switch pub := v.pub.(type) {
	case *ecdsa.PublicKey:
		if v.alg != ES256 || len(sig) != 64 {
			return false
		}
		var r, s big.Int
		r.SetBytes(sig[:32])
		s.SetBytes(sig[32:])
		return ecdsa.Verify(pub, h[:], &r, &s)
	case *rsa.PublicKey:
		return v.alg == RS256 && rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig) == nil
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
