package handlers

import (
	"bytes"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/smartcaddy/smartauth/handlers/oauth"
)

// checkRegisteredJWKS validates the inline JWK Set of a private_key_jwt
// registration (SMART's asymmetric profile): a JSON object with a "keys"
// array of at most registrationMaxKeys public keys, each with a unique
// kid, each an RSA key of at least 2048 bits or an EC key on P-256 or
// P-384 (the curves of ES256 and ES384, the algorithms the token endpoint
// accepts). Private and symmetric keys are refused. It returns the set as
// compact JSON.
func checkRegisteredJWKS(raw json.RawMessage) (json.RawMessage, error) {
	var shape struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(raw, &shape); err != nil || shape.Keys == nil {
		return nil, errors.New(`not a JWK Set (an object with a "keys" array)`)
	}
	switch {
	case len(shape.Keys) == 0:
		return nil, errors.New("the JWK Set has no keys")
	case len(shape.Keys) > registrationMaxKeys:
		return nil, fmt.Errorf("at most %d keys", registrationMaxKeys)
	}
	set, err := jwk.Parse(raw)
	if err != nil {
		// jwx's message names the field or the check that failed (a
		// JWK Set holds public data only).
		msg := strings.ToValidUTF8(err.Error(), "?")
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		return nil, fmt.Errorf("the JWK Set cannot be parsed: %s", msg)
	}
	if set.Len() != len(shape.Keys) {
		return nil, errors.New("the JWK Set holds keys that cannot be parsed")
	}
	kids := map[string]bool{}
	for i := range set.Len() {
		k, _ := set.Key(i)
		kid, _ := k.KeyID()
		switch {
		case kid == "":
			return nil, fmt.Errorf("key %d has no kid", i)
		case kids[kid]:
			return nil, fmt.Errorf("kid %s is used by two keys", oauth.Truncate(kid))
		case isPrivateJWK(k):
			return nil, fmt.Errorf("key %s holds private or symmetric key material; register the public key only", oauth.Truncate(kid))
		}
		kids[kid] = true
		if err := checkRegisteredKey(k); err != nil {
			return nil, fmt.Errorf("key %s: %v", oauth.Truncate(kid), err)
		}
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, errors.New("the JWK Set is not valid JSON")
	}
	return buf.Bytes(), nil
}

// checkRegisteredKey accepts RSA keys of 2048 bits or more and EC keys on
// P-256 or P-384.
func checkRegisteredKey(k jwk.Key) error {
	switch k.KeyType() {
	case jwa.RSA():
		var pub rsa.PublicKey
		if err := jwk.Export(k, &pub); err != nil {
			return errors.New("not a usable RSA public key")
		}
		if pub.N.BitLen() < clientAssertionMinRSABits {
			return fmt.Errorf("an RSA key needs at least %d bits", clientAssertionMinRSABits)
		}
		return nil
	case jwa.EC():
		ec, ok := k.(jwk.ECDSAPublicKey)
		if !ok {
			return errors.New("not a usable EC public key")
		}
		if crv, _ := ec.Crv(); crv != jwa.P256() && crv != jwa.P384() {
			return errors.New("an EC key must be on P-256 or P-384 (ES256, ES384)")
		}
		return nil
	}
	return fmt.Errorf("key type %s is not supported: use RSA (RS384) or EC (ES384)", k.KeyType())
}
