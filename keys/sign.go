package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lestrrat-go/jwx/v3/jws"
)

// SignPayload is Sign for claims the caller has marshaled already (a JSON
// object): the compact JWS of payload with the current key for alg, its
// kid, alg and typ (empty: "JWT") in the protected header, exactly as
// Sign writes it. It spares the building and marshaling of a jwt.Token on
// hot paths (the access token of every grant), and signs with the
// standard library (RFC 7518 §3.3, §3.4: PKCS #1 v1.5 for RS256, R||S of
// 32 bytes each for ES256); keys of another kind go through jwx.
func (r *Ring) SignPayload(payload []byte, alg string, typ string) ([]byte, error) {
	e, h, err := r.signer(alg, typ)
	if err != nil {
		return nil, err
	}
	if typ == "" {
		typ = "JWT"
	}
	hdr, err := json.Marshal(struct {
		Alg string `json:"alg"`
		KID string `json:"kid"`
		Typ string `json:"typ"`
	}{alg, e.kid, typ})
	if err != nil {
		return nil, fmt.Errorf("keys: Sign: header: %w", err)
	}
	enc := base64.RawURLEncoding
	out := make([]byte, 0, enc.EncodedLen(len(hdr))+enc.EncodedLen(len(payload))+2+enc.EncodedLen(512))
	out = enc.AppendEncode(out, hdr)
	out = append(out, '.')
	out = enc.AppendEncode(out, payload)
	digest := sha256.Sum256(out)
	var sig []byte
	switch k := e.priv.(type) {
	case *ecdsa.PrivateKey:
		rr, ss, err := ecdsa.Sign(rand.Reader, k, digest[:])
		if err != nil {
			return nil, fmt.Errorf("keys: signing with %s key %s: %w", alg, e.kid, err)
		}
		var rs [64]byte
		rr.FillBytes(rs[:32])
		ss.FillBytes(rs[32:])
		sig = rs[:]
	case *rsa.PrivateKey:
		if sig, err = rsa.SignPKCS1v15(nil, k, crypto.SHA256, digest[:]); err != nil {
			return nil, fmt.Errorf("keys: signing with %s key %s: %w", alg, e.kid, err)
		}
	default:
		signed, err := jws.Sign(payload, jws.WithKey(e.jalg, e.priv, jws.WithProtectedHeaders(h)))
		if err != nil {
			return nil, fmt.Errorf("keys: signing with %s key %s: %w", alg, e.kid, err)
		}
		return signed, nil
	}
	out = append(out, '.')
	return enc.AppendEncode(out, sig), nil
}

// signer returns the current key for alg and the protected header of a
// token it signs: kid and typ (empty: "JWT"); jwx adds alg.
func (r *Ring) signer(alg, typ string) (*entry, jws.Headers, error) {
	if _, ok := jwaAlg(alg); !ok {
		return nil, nil, fmt.Errorf("keys: Sign: unsupported algorithm %q", alg)
	}
	e := r.current().signers[alg]
	if e == nil {
		return nil, nil, fmt.Errorf("keys: Sign: no current %s signing key", alg)
	}
	if typ == "" {
		typ = "JWT"
	}
	h := jws.NewHeaders()
	if err := h.Set(jws.KeyIDKey, e.kid); err != nil {
		return nil, nil, fmt.Errorf("keys: Sign: setting kid: %w", err)
	}
	if err := h.Set(jws.TypeKey, typ); err != nil {
		return nil, nil, fmt.Errorf("keys: Sign: setting typ: %w", err)
	}
	return e, h, nil
}

// errNilToken is Sign's error for a nil token.
var errNilToken = errors.New("keys: Sign: nil token")
