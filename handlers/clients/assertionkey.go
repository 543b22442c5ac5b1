package clients

import (
	"context"
	"math/big"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/store"
)

// assertionKey returns the raw public key a client signs its
// assertions with, for a kid and an algorithm: from its registered JWK
// Set, or from its jwks_uri (jwksfetch.go: cached as the client's
// Cache-Control allows, fetched again once, rate-limited, when the kid is
// unknown, since the client may have rotated its keys). Parsed keys and
// selections are cached, so a steady client costs no parsing.
func (r *Registry) assertionKey(ctx context.Context, c *store.Client, kid, alg string) (any, *oauth.Error) {
	bad := badAssertion
	if len(c.JWKS) > 0 {
		keys, err := r.inlineKeys(c)
		if err != nil {
			return nil, bad("the client's registered JWKS cannot be read")
		}
		key, why := keys.lookup(kid, alg)
		if key == nil {
			return nil, bad(why)
		}
		return key, nil
	}
	if c.JWKSURI == "" {
		return nil, bad("the client has no registered keys")
	}
	fetcher := r.shared.fetcher
	if c.Dynamic && !r.opts.AllowPrivateJWKSURI {
		fetcher = r.shared.publicFetcher
	}
	keys, fetched, err := fetcher.keys(ctx, c.JWKSURI, false)
	if err != nil {
		r.logger.Warn("client jwks_uri", zap.String("client_id", c.ID), zap.String("jwks_uri", c.JWKSURI), zap.Error(err))
		return nil, bad(err.Error())
	}
	key, why := keys.lookup(kid, alg)
	if key == nil && !fetched {
		var again bool
		keys, again, err = fetcher.keys(ctx, c.JWKSURI, true)
		switch {
		case err != nil:
			r.logger.Warn("client jwks_uri", zap.String("client_id", c.ID), zap.String("jwks_uri", c.JWKSURI), zap.Error(err))
			return nil, bad(err.Error())
		case again:
			key, why = keys.lookup(kid, alg)
		}
	}
	if key == nil {
		return nil, bad(why)
	}
	return key, nil
}

// inlineKeys returns the parsed inline JWK Set of a client: for a client
// of the configuration, which does not change while the Registry lives,
// from a memo by client; else from the shared cache, by content.
func (r *Registry) inlineKeys(c *store.Client) (*clientKeys, error) {
	if r.opts.Configured[c.ID] != c {
		return r.shared.inline.keys(c.JWKS)
	}
	if k, ok := r.configuredKeys.Load(c); ok {
		return k.(*clientKeys), nil
	}
	k, err := r.shared.inline.keys(c.JWKS)
	if err == nil {
		r.configuredKeys.Store(c, k)
	}
	return k, err
}

// selectClientAssertionKey returns the single public key whose kid is kid
// and whose type (and curve) fit alg, and whose own alg and use, when
// present, agree. Zero or several candidates fail (SMART asymmetric auth,
// step 4c); why says which.
func selectClientAssertionKey(set jwk.Set, kid, alg string) (jwk.Key, string) {
	want := clientAssertionAlgs[alg]
	var found jwk.Key
	n := 0
	for i := range set.Len() {
		k, ok := set.Key(i)
		if !ok {
			continue
		}
		if id, _ := k.KeyID(); id != kid || k.KeyType() != want.kty {
			continue
		}
		if ka, ok := k.Algorithm(); ok && ka.String() != alg {
			continue
		}
		if use, ok := k.KeyUsage(); ok && use != "sig" {
			continue
		}
		if want.kty == jwa.EC() {
			ec, ok := k.(jwk.ECDSAPublicKey)
			if !ok {
				if pk, err := k.PublicKey(); err == nil {
					ec, ok = pk.(jwk.ECDSAPublicKey)
				}
			}
			if !ok {
				continue
			}
			if crv, _ := ec.Crv(); crv != want.crv {
				continue
			}
		}
		found = k
		n++
	}
	switch {
	case n == 0:
		return nil, "no registered key has kid " + oauth.Truncate(kid) + " and fits alg " + alg
	case n > 1:
		return nil, "several registered keys match kid " + oauth.Truncate(kid)
	}
	pub, err := found.PublicKey()
	if err != nil {
		return nil, "the registered key cannot be used"
	}
	if want.kty == jwa.RSA() {
		rk, ok := pub.(jwk.RSAPublicKey)
		if !ok {
			return nil, "the registered RSA key cannot be used"
		}
		if n, _ := rk.N(); new(big.Int).SetBytes(n).BitLen() < MinRSABits {
			return nil, "the registered RSA key is shorter than 2048 bits"
		}
	}
	return pub, ""
}
