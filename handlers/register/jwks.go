package register

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/smartcaddy/smartauth/handlers/clients"
)

// checkRegisteredJWKS validates the inline JWK Set of a private_key_jwt
// registration: a JSON object with a "keys" array of at most
// registrationMaxKeys keys, all parsed, that the clients' one key policy
// accepts (clients.CheckJWKS: public keys only, each with a unique kid, RSA
// of at least 2048 bits or EC on P-256 or P-384). It returns the set as
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
	if err := clients.CheckJWKS(set); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, errors.New("the JWK Set is not valid JSON")
	}
	return buf.Bytes(), nil
}
