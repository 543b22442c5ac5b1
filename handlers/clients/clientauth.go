package clients

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"go.uber.org/zap"

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

// Presented tells whether a request carries any client identification:
// HTTP Basic credentials, client_id, client_secret or a client assertion.
// A public client refreshing a token may send none.
func Presented(r *http.Request, form url.Values) bool {
	return HasBasicAuth(r) || form.Has("client_id") || form.Has("client_secret") ||
		form.Has("client_assertion") || form.Has("client_assertion_type")
}

// HasBasicAuth tells whether the request carries an Authorization header
// with the Basic scheme.
func HasBasicAuth(r *http.Request) bool {
	scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	return strings.EqualFold(scheme, "Basic")
}

// Resolve returns a client from the configuration or from dynamic
// registration, as an OAuth endpoint sees it: an unknown client is
// invalid_client, a store failure server_error (logged).
func (r *Registry) Resolve(ctx context.Context, id string) (*store.Client, *oauth.Error) {
	c, err := r.Lookup(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, oauth.New(oauth.CodeInvalidClient, "unknown client")
	case err != nil:
		return nil, r.serverError("looking up a client", err)
	}
	return c, nil
}

// serverError answers a failure of the server itself: 503
// temporarily_unavailable when the store cannot be reached now
// (store.ErrUnavailable), server_error otherwise. The cause is logged,
// never sent.
func (r *Registry) serverError(what string, err error) *oauth.Error {
	r.logger.Error("token endpoint: "+what, zap.Error(err))
	if errors.Is(err, store.ErrUnavailable) {
		return oauth.Unavailable()
	}
	return oauth.New(oauth.CodeServerError, "internal error")
}

// MayUseGrant refuses (unauthorized_client) a grant type the client is
// not registered for.
func MayUseGrant(c *store.Client, grantType string) *oauth.Error {
	if !slices.Contains(c.GrantTypes, grantType) {
		return oauth.New(oauth.CodeUnauthorizedClient, "the client is not allowed to use grant_type "+grantType)
	}
	return nil
}

// Authenticate identifies and authenticates the client of a request
// to the token endpoint:
//
//   - public clients send client_id in the form and no secret;
//   - confidential symmetric clients use client_secret_basic (RFC 6749
//     §2.3.1, id and secret form-url-decoded) or client_secret_post;
//   - confidential asymmetric clients use private_key_jwt (RFC 7523, SMART
//     App Launch "Client Authentication: Asymmetric").
//
// Using two methods at once is invalid_request; any other failure is
// invalid_client (401, with a Basic challenge when HTTP Basic was tried).
// A request carrying no client identification at all fails as well; a
// caller that accepts that (a public refresh) checks Presented first.
func (r *Registry) Authenticate(req *http.Request, form url.Values) (*store.Client, *oauth.Error) {
	return r.AuthenticateAt(req, form, "")
}

// AuthenticateAt is Authenticate for a request to another
// endpoint (introspection, revocation): a client assertion's aud may then
// be that endpoint's URL as well as the token endpoint's.
func (r *Registry) AuthenticateAt(req *http.Request, form url.Values, endpoint string) (*store.Client, *oauth.Error) {
	basic := HasBasicAuth(req)
	post := form.Has("client_secret")
	assertion := form.Has("client_assertion") || form.Has("client_assertion_type")
	methods := 0
	for _, m := range []bool{basic, post, assertion} {
		if m {
			methods++
		}
	}
	if methods > 1 {
		return nil, oauth.New(oauth.CodeInvalidRequest, "use exactly one client authentication method")
	}
	switch {
	case basic:
		c, f := r.AuthenticateBasic(req, form)
		if f != nil {
			f.WithBasic(r.opts.Issuer)
		}
		return c, f
	case post:
		id := form.Get("client_id")
		if id == "" {
			return nil, oauth.New(oauth.CodeInvalidRequest, "client_id is required with client_secret")
		}
		return r.authenticateSecret(req.Context(), id, form.Get("client_secret"))
	case assertion:
		return r.authenticateAssertion(req.Context(), form, endpoint)
	}
	id := form.Get("client_id")
	if id == "" {
		return nil, oauth.New(oauth.CodeInvalidClient, "client authentication is required")
	}
	c, f := r.Resolve(req.Context(), id)
	if f != nil {
		return nil, f
	}
	if c.Type != store.ClientPublic {
		return nil, oauth.New(oauth.CodeInvalidClient, "this client must authenticate")
	}
	return c, nil
}

// AuthenticateBasic checks client_secret_basic (RFC 6749 §2.3.1: id and
// secret form-url-encoded); a client_id in form, if any, must be the same
// client. It sets no challenge: the caller adds one (WithBasic).
func (r *Registry) AuthenticateBasic(req *http.Request, form url.Values) (*store.Client, *oauth.Error) {
	rawID, rawSecret, ok := req.BasicAuth()
	if !ok {
		return nil, oauth.New(oauth.CodeInvalidClient, "malformed Basic credentials")
	}
	id, err1 := url.QueryUnescape(rawID)
	secret, err2 := url.QueryUnescape(rawSecret)
	if err1 != nil || err2 != nil || id == "" {
		return nil, oauth.New(oauth.CodeInvalidClient, "malformed Basic credentials: the client id and secret must be form-url-encoded")
	}
	if fid := form.Get("client_id"); fid != "" && fid != id {
		return nil, oauth.New(oauth.CodeInvalidRequest, "client_id does not match the authenticated client")
	}
	return r.authenticateSecret(req.Context(), id, secret)
}

// authenticateSecret checks a symmetric client's secret in constant time.
func (r *Registry) authenticateSecret(ctx context.Context, id, secret string) (*store.Client, *oauth.Error) {
	c, f := r.Resolve(ctx, id)
	if f != nil {
		return nil, f
	}
	switch c.Type {
	case store.ClientConfidentialSymmetric:
	case store.ClientPublic:
		return nil, oauth.New(oauth.CodeInvalidClient, "a public client does not authenticate with a secret")
	default:
		return nil, oauth.New(oauth.CodeInvalidClient, "this client must authenticate with private_key_jwt")
	}
	if c.SecretHash == "" || !store.VerifySecret(c.SecretHash, secret) {
		return nil, oauth.New(oauth.CodeInvalidClient, "client authentication failed")
	}
	return c, nil
}

// authenticateAssertion checks private_key_jwt: RFC 7523 §3 as SMART
// profiles it. The key is chosen by kid among the client's registered keys
// and must fit the algorithm; iss and sub are the client id, aud the token
// endpoint (or, when not empty, endpoint: the URL the request was sent
// to), exp at most five minutes ahead, and the jti is single-use.
func (r *Registry) authenticateAssertion(ctx context.Context, form url.Values, endpoint string) (*store.Client, *oauth.Error) {
	if form.Get("client_assertion_type") != AssertionTypeJWT {
		return nil, oauth.New(oauth.CodeInvalidClient, "client_assertion_type must be "+AssertionTypeJWT)
	}
	raw := []byte(form.Get("client_assertion"))
	if len(raw) == 0 {
		return nil, oauth.New(oauth.CodeInvalidRequest, "client_assertion is required")
	}
	bad := func(why string) *oauth.Error { return oauth.New(oauth.CodeInvalidClient, "client assertion: "+why) }

	// The header, before anything is trusted: exactly one compact JWS
	// signature with an accepted algorithm and a kid.
	msg, err := jws.Parse(raw, jws.WithCompact())
	if err != nil {
		return nil, bad("not a compact JWS")
	}
	sigs := msg.Signatures()
	if len(sigs) != 1 || sigs[0].ProtectedHeaders() == nil {
		return nil, bad("exactly one signature with a protected header is required")
	}
	hdr := sigs[0].ProtectedHeaders()
	algHdr, _ := hdr.Algorithm()
	want, ok := clientAssertionAlgs[algHdr.String()]
	if !ok {
		return nil, bad("alg " + oauth.Truncate(algHdr.String()) + " is not accepted (use RS384, ES384, RS256 or ES256)")
	}
	kid, _ := hdr.KeyID()
	if kid == "" {
		return nil, bad("the kid header is required")
	}
	if typ, ok := hdr.Type(); ok && !strings.EqualFold(typ, "JWT") {
		return nil, bad("typ must be JWT")
	}

	// As jws.VerifyCompactFast: no critical extensions, and the default
	// base64url payload (RFC 7797's b64 changes the signing input).
	if hdr.Has(jws.CriticalKey) || hdr.Has(jws.B64Key) {
		return nil, bad("crit and b64 headers are not accepted")
	}

	// The client it claims to be, read without trusting it yet, from the
	// same parse: the claims are checked (jwt.Validate) only once the
	// signature is.
	unverified := jwt.New()
	if err := json.Unmarshal(msg.Payload(), unverified); err != nil {
		return nil, bad("malformed claims")
	}
	iss, _ := unverified.Issuer()
	if iss == "" {
		return nil, bad("iss is required")
	}
	if id := form.Get("client_id"); id != "" && id != iss {
		return nil, oauth.New(oauth.CodeInvalidRequest, "client_id does not match the client assertion's iss")
	}
	c, f := r.Resolve(ctx, iss)
	if f != nil {
		return nil, f
	}
	if c.Type != store.ClientConfidentialAsymmetric {
		return nil, bad("this client is not registered for private_key_jwt")
	}
	if jku, ok := hdr.JWKSetURL(); ok && (c.JWKSURI == "" || jku != c.JWKSURI) {
		return nil, bad("jku is not the client's registered JWKS URL")
	}
	key, f := r.assertionKey(ctx, c, kid, algHdr.String())
	if f != nil {
		return nil, f
	}

	// The signature over the token's own bytes up to the second dot, with
	// the selected key and the header's algorithm (the key fits it), by
	// the standard library.
	if !keys.VerifyJWS(want.alg.String(), key, raw[:bytes.LastIndexByte(raw, '.')], sigs[0].Signature()) {
		return nil, bad("signature verification failed")
	}
	tok := unverified
	err = jwt.Validate(tok,
		jwt.WithIssuer(c.ID),
		jwt.WithSubject(c.ID),
		jwt.WithRequiredClaim(jwt.AudienceKey),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithRequiredClaim(jwt.JwtIDKey),
		jwt.WithAcceptableSkew(clientAssertionSkew),
	)
	if err != nil {
		return nil, bad(assertionValidationReason(err))
	}
	if aud, _ := tok.Audience(); !slices.Contains(aud, r.opts.TokenEndpoint) && (endpoint == "" || !slices.Contains(aud, endpoint)) {
		if endpoint != "" {
			return nil, bad("aud must be the token endpoint URL or " + endpoint)
		}
		return nil, bad("aud must be the token endpoint URL")
	}
	exp, _ := tok.Expiration()
	if exp.After(time.Now().Add(clientAssertionMaxAhead + clientAssertionSkew)) {
		return nil, bad("exp is more than 5 minutes in the future")
	}
	jti, _ := tok.JwtID()
	if jti == "" {
		return nil, bad("jti is required")
	}
	switch err := r.opts.Store.UseJTI(ctx, c.ID, jti, exp.Add(clientAssertionSkew)); {
	case errors.Is(err, store.ErrReplayed):
		return nil, bad("jti was already used")
	case err != nil:
		return nil, r.serverError("recording a client assertion jti", err)
	}
	return c, nil
}

// assertionValidationReason turns a jwx parse error into a short reason
// that names the failed check but echoes nothing from the token.
func assertionValidationReason(err error) string {
	switch {
	case errors.Is(err, jwt.TokenExpiredError()):
		return "expired"
	case errors.Is(err, jwt.TokenNotYetValidError()):
		return "not yet valid"
	case errors.Is(err, jwt.InvalidIssuerError()):
		return "iss must be the client id"
	case errors.Is(err, jwt.InvalidAudienceError()):
		return "aud must be the token endpoint URL"
	case errors.Is(err, jwt.MissingRequiredClaimError()):
		return "aud, exp and jti are required"
	case errors.Is(err, jwt.ValidateError()):
		return "claims are invalid (iss and sub must be the client id)"
	}
	return "signature verification failed"
}

// assertionKey returns the raw public key a client signs its
// assertions with, for a kid and an algorithm: from its registered JWK
// Set, or from its jwks_uri (jwksfetch.go: cached as the client's
// Cache-Control allows, fetched again once, rate-limited, when the kid is
// unknown, since the client may have rotated its keys). Parsed keys and
// selections are cached, so a steady client costs no parsing.
func (r *Registry) assertionKey(ctx context.Context, c *store.Client, kid, alg string) (any, *oauth.Error) {
	bad := func(why string) *oauth.Error { return oauth.New(oauth.CodeInvalidClient, "client assertion: "+why) }
	if len(c.JWKS) > 0 {
		keys, err := r.shared.inline.keys(c.JWKS)
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
