package keys

import (
	"errors"
	"fmt"

	"github.com/lestrrat-go/jwx/v3/jws"
)

// SignPayload is Sign for claims the caller has marshaled already (a JSON
// object): the compact JWS of payload with the current key for alg, its
// kid, alg and typ (empty: "JWT") in the protected header. It spares the
// building and marshaling of a jwt.Token on hot paths (the access token
// of every grant).
func (r *Ring) SignPayload(payload []byte, alg string, typ string) ([]byte, error) {
	e, h, err := r.signer(alg, typ)
	if err != nil {
		return nil, err
	}
	out, err := jws.Sign(payload, jws.WithKey(e.jalg, e.priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		return nil, fmt.Errorf("keys: signing with %s key %s: %w", alg, e.kid, err)
	}
	return out, nil
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
