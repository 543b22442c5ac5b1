package clients

import (
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/smartcaddy/smartauth/handlers/oauth"
)

// The one policy on what a client may register, used by the
// configuration's validation (the root package), by dynamic registration
// and by the token endpoint: the URLs of an app (CheckAppURL) and the
// keys of a private_key_jwt client (CheckJWKS, MinRSABits,
// AssertionAlgs).

// MinRSABits is the least size of a client's RSA key: shorter keys are
// refused at configuration, at registration and at the token endpoint.
const MinRSABits = 2048

// assertionAlg is an algorithm accepted for client assertions, with the
// key type (and, for EC, the curve) that verifies it.
type assertionAlg struct {
	alg jwa.SignatureAlgorithm
	kty jwa.KeyType
	crv jwa.EllipticCurveAlgorithm // EC only
}

// clientAssertionAlgs are the algorithms accepted for client assertions,
// the same list discovery advertises (AssertionAlgs): never none or HMAC.
var clientAssertionAlgs = map[string]assertionAlg{
	"RS384": {jwa.RS384(), jwa.RSA(), jwa.EllipticCurveAlgorithm{}},
	"RS256": {jwa.RS256(), jwa.RSA(), jwa.EllipticCurveAlgorithm{}},
	"ES384": {jwa.ES384(), jwa.EC(), jwa.P384()},
	"ES256": {jwa.ES256(), jwa.EC(), jwa.P256()},
}

// AssertionAlgs returns the algorithms the token endpoint accepts for
// private_key_jwt client assertions, in the order discovery lists them
// (token_endpoint_auth_signing_alg_values_supported).
func AssertionAlgs() []string {
	return []string{"RS384", "ES384", "RS256", "ES256"}
}

// IsLoopbackHost tells whether a host name or address is this machine:
// localhost, a name under .localhost, or a loopback address. Plain http
// is acceptable there.
func IsLoopbackHost(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// URLKind says what an app's URL is for.
type URLKind int

// Kinds of app URLs.
const (
	// RedirectURI may also use a native app's private-use scheme, a
	// reverse domain name such as com.example.app:/cb (RFC 8252 §7.1).
	RedirectURI URLKind = iota
	// LaunchURI is where an EHR launches the app.
	LaunchURI
	// JWKSURI is where a private_key_jwt client publishes its keys.
	JWKSURI
)

// URLProblem is why an app's URL is refused.
type URLProblem int

// Problems of app URLs.
const (
	// URLMalformed: the URL does not parse.
	URLMalformed URLProblem = iota + 1
	// URLFragment: the URL has a fragment (even an empty one).
	URLFragment
	// URLUserInfo: the URL has user info.
	URLUserInfo
	// URLPlainHTTP: plain http off a loopback host.
	URLPlainHTTP
	// URLNotAbsolute: not an absolute https URL (nor a native app's
	// private-use scheme, for a redirect URI).
	URLNotAbsolute
)

// URLError is an app URL refused by CheckAppURL. Callers phrase it for
// their audience (a configuration error, an RFC 7591 error description)
// from Problem; Error gives a plain description.
type URLError struct {
	// Problem is what is wrong.
	Problem URLProblem
	// Err is the parse error of a URLMalformed URL.
	Err error
}

// Error implements error.
func (e *URLError) Error() string {
	switch e.Problem {
	case URLMalformed:
		return "is not a valid URL"
	case URLFragment:
		return "must not have a fragment"
	case URLUserInfo:
		return "must not contain user info"
	case URLPlainHTTP:
		return "must use https (plain http only on localhost or a loopback address)"
	}
	return "is not an absolute https URL"
}

// CheckAppURL validates a redirect URI, launch URI or jwks_uri of a
// client: an absolute https URL, plain http only on loopback hosts
// (IsLoopbackHost), no fragment and no user info; a redirect URI may also
// use a native app's private-use scheme with a dot in it (RFC 8252 §7.1).
// It returns nil or a *URLError.
func CheckAppURL(raw string, kind URLKind) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return &URLError{Problem: URLMalformed, Err: err}
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return &URLError{Problem: URLFragment}
	case u.User != nil:
		return &URLError{Problem: URLUserInfo}
	case u.Scheme == "https" && u.Host != "":
		return nil
	case u.Scheme == "http" && u.Host != "":
		if IsLoopbackHost(u.Hostname()) {
			return nil
		}
		return &URLError{Problem: URLPlainHTTP}
	case kind == RedirectURI && strings.Contains(u.Scheme, "."):
		return nil
	}
	return &URLError{Problem: URLNotAbsolute}
}

// CheckJWKS validates the keys of a private_key_jwt client's JWK Set, as
// configured or registered (SMART's asymmetric profile): at least one
// key; each with a kid, unique in the set; no private or symmetric key
// material; each an RSA key of at least MinRSABits bits or an EC key on a
// curve of an accepted algorithm (P-256 for ES256, P-384 for ES384).
// Messages quote kids as oauth.Truncate does, so they may be sent to the
// client.
func CheckJWKS(set jwk.Set) error {
	if set.Len() == 0 {
		return errors.New("the JWK Set has no keys")
	}
	kids := map[string]bool{}
	for i := range set.Len() {
		k, _ := set.Key(i)
		if k == nil {
			return fmt.Errorf("key %d cannot be read", i)
		}
		kid, _ := k.KeyID()
		switch {
		case kid == "":
			return fmt.Errorf("key %d has no kid", i)
		case kids[kid]:
			return fmt.Errorf("kid %s is used by two keys", oauth.Truncate(kid))
		case isPrivateJWK(k):
			return fmt.Errorf("key %s holds private or symmetric key material; register the public key only", oauth.Truncate(kid))
		}
		kids[kid] = true
		if err := checkKey(k); err != nil {
			return fmt.Errorf("key %s: %v", oauth.Truncate(kid), err)
		}
	}
	return nil
}

// ParseJWKS parses a JWK Set key by key, so that a key jwx refuses (an
// RSA modulus below its minimum, a malformed field) is named, by kid or
// position, in the error. It checks no policy: CheckJWKS does.
func ParseJWKS(raw []byte) (jwk.Set, error) {
	var shape struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(raw, &shape); err != nil || shape.Keys == nil {
		return nil, errors.New(`not a JWK Set (an object with a "keys" array)`)
	}
	set := jwk.NewSet()
	for i, rawKey := range shape.Keys {
		k, err := jwk.ParseKey(rawKey)
		if err != nil {
			var named struct {
				Kid string `json:"kid"`
			}
			name := strconv.Itoa(i)
			if json.Unmarshal(rawKey, &named) == nil && named.Kid != "" {
				name = oauth.Truncate(named.Kid)
			}
			return nil, fmt.Errorf("key %s: %v", name, innermost(err))
		}
		if err := set.AddKey(k); err != nil {
			return nil, fmt.Errorf("key %d: %v", i, err)
		}
	}
	return set, nil
}

// innermost is the last error of err's chain: jwx wraps the reason a key
// is refused in the names of the functions it went through.
func innermost(err error) error {
	for next := errors.Unwrap(err); next != nil; next = errors.Unwrap(err) {
		err = next
	}
	return err
}

// checkKey accepts RSA keys of MinRSABits or more and EC keys on the
// curve of an accepted algorithm.
func checkKey(k jwk.Key) error {
	switch k.KeyType() {
	case jwa.RSA():
		var pub rsa.PublicKey
		if err := jwk.Export(k, &pub); err != nil {
			return errors.New("not a usable RSA public key")
		}
		if pub.N.BitLen() < MinRSABits {
			return fmt.Errorf("an RSA key needs at least %d bits", MinRSABits)
		}
		return nil
	case jwa.EC():
		ec, ok := k.(jwk.ECDSAPublicKey)
		if !ok {
			return errors.New("not a usable EC public key")
		}
		crv, _ := ec.Crv()
		for _, a := range clientAssertionAlgs {
			if a.kty == jwa.EC() && a.crv == crv {
				return nil
			}
		}
		return errors.New("an EC key must be on P-256 or P-384 (ES256, ES384)")
	}
	return fmt.Errorf("key type %s is not supported: use RSA (RS384) or EC (ES384)", k.KeyType())
}

// isPrivateJWK tells whether a JWK holds private or symmetric key material.
func isPrivateJWK(k jwk.Key) bool {
	switch k.(type) {
	case jwk.RSAPrivateKey, jwk.ECDSAPrivateKey, jwk.OKPPrivateKey, jwk.SymmetricKey:
		return true
	}
	return false
}
