// Package keys holds the authorization server's signing keys.
//
// A Ring always holds one current key per algorithm (RS256 and ES256). Keys
// are either generated (and rotated) by the ring or loaded from PEM files
// the operator supplies. Every key is recorded in the store, so that all
// rings on the same store sign with the same keys, and so that the JWKS
// keeps publishing a retired key until every token it may have signed has
// expired. Generated keys keep their private half in the store; keys from
// files are recorded by their public half only.
//
// A key's life: it is published (in the JWKS) from the moment it is
// recorded; it signs from its ActiveFrom, which for a rotation successor
// lies PublishAhead in the future so that verifiers with a cached JWKS
// already know it; it is retired when a successor starts signing and stays
// published for Retain after that; then Refresh deletes it.
package keys

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/store"
)

// The algorithms a Ring always holds a key for.
const (
	// RS256 is RSASSA-PKCS1-v1_5 with SHA-256, on RSA keys of at least
	// 2048 bits (generated keys have exactly 2048).
	RS256 = "RS256"
	// ES256 is ECDSA on P-256 with SHA-256.
	ES256 = "ES256"
)

// algs lists the supported algorithms in the order the ring handles them.
var algs = []string{ES256, RS256}

// jwaAlg returns the jwx algorithm for one of the supported names.
func jwaAlg(alg string) (jwa.SignatureAlgorithm, bool) {
	switch alg {
	case RS256:
		return jwa.RS256(), true
	case ES256:
		return jwa.ES256(), true
	}
	return jwa.SignatureAlgorithm{}, false
}

// DefaultPublishAhead is the PublishAhead used when Options leaves it zero.
const DefaultPublishAhead = 5 * time.Minute

// Storage is the store view the key ring needs: the key records, read and
// updated in one transaction. *store.DB satisfies it (ring_test.go), and
// so must any other store.
type Storage interface {
	// Keys returns every key record.
	Keys(ctx context.Context) ([]*store.KeyRecord, error)
	// UpdateKeys reads the key records and writes back what fn returns,
	// in one transaction.
	UpdateKeys(ctx context.Context, fn func(keys []*store.KeyRecord) ([]*store.KeyRecord, error)) error
}

// Options configure a Ring.
type Options struct {
	// Store persists the key records. Required.
	Store Storage
	// Logger receives key lifecycle events and errors, never key
	// material. Nil: no logging.
	Logger *zap.Logger
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
	// RotationPeriod is how long a generated key signs before a successor
	// replaces it. Zero: never rotate automatically.
	RotationPeriod time.Duration
	// PublishAhead is how long a rotation successor is published in the
	// JWKS before it starts signing; set it to the JWKS cache max-age so
	// that verifiers with a cached JWKS know the key. Zero means
	// DefaultPublishAhead; a negative value means none (a successor signs
	// as soon as it is created).
	PublishAhead time.Duration
	// Retain is how long a retired key stays in the JWKS after it stopped
	// signing: the longest lifetime of any token it may have signed, plus
	// leeway for clock skew. Required (> 0).
	Retain time.Duration
	// Files maps an algorithm (RS256 or ES256) to a PEM file holding the
	// private key the operator supplies instead of a generated one. Such a
	// key is never rotated by the ring; replace the file to rotate it.
	Files map[string]string
}

// Ring is the server's set of signing keys. All methods are safe for
// concurrent use; Sign, JWKS, PublicKey and KIDs read an immutable snapshot
// and take no lock.
type Ring struct {
	store    Storage
	log      *zap.Logger
	now      func() time.Time
	rotation time.Duration
	ahead    time.Duration
	retain   time.Duration
	// files holds the keys loaded from Options.Files, by algorithm. It is
	// not changed after New.
	files map[string]*fileKey

	// view is the current snapshot.
	view atomic.Pointer[view]

	// syncMu serializes Refresh and Rotate of this ring.
	syncMu sync.Mutex

	// reloadMu serializes the reloads an unknown kid causes; lastReload
	// is when the last one started (wall clock, Unix nanoseconds; 0:
	// never), written under reloadMu and read without it, so that a flood
	// of unknown kids after a reload costs no lock.
	reloadMu   sync.Mutex
	lastReload atomic.Int64
}

// New loads the signing keys from the store, records keys from files,
// generates the keys that are missing and returns the ring. It fails when a
// key file cannot be used, when the store fails, or when it ends without a
// signing key for RS256 and ES256. Run Maintain to keep the ring up to
// date.
func New(ctx context.Context, o Options) (*Ring, error) {
	if o.Store == nil {
		return nil, errors.New("keys: Options.Store is required")
	}
	if o.Retain <= 0 {
		return nil, errors.New("keys: Options.Retain must be positive: the longest lifetime of a token plus leeway")
	}
	if o.RotationPeriod < 0 {
		return nil, errors.New("keys: Options.RotationPeriod must not be negative")
	}
	switch {
	case o.PublishAhead == 0:
		o.PublishAhead = DefaultPublishAhead
	case o.PublishAhead < 0:
		o.PublishAhead = 0
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Ring{
		store:    o.Store,
		log:      o.Logger,
		now:      o.Now,
		rotation: o.RotationPeriod,
		ahead:    o.PublishAhead,
		retain:   o.Retain,
		files:    make(map[string]*fileKey),
	}
	for alg, path := range o.Files {
		if _, ok := jwaAlg(alg); !ok {
			return nil, fmt.Errorf("keys: key file %s: unsupported algorithm %q (want %s or %s)", path, alg, RS256, ES256)
		}
		fk, err := loadKeyFile(path, alg)
		if err != nil {
			return nil, err
		}
		r.files[alg] = fk
		r.log.Info("loaded signing key file", zap.String("alg", alg), zap.String("kid", fk.kid), zap.String("path", path))
	}
	if err := r.sync(ctx, ""); err != nil {
		return nil, err
	}
	v := r.current()
	for _, alg := range algs {
		if v.signers[alg] == nil {
			return nil, fmt.Errorf("keys: no usable %s signing key after loading the store", alg)
		}
	}
	return r, nil
}

// Sign signs tok with the current key for alg (RS256 or ES256) and returns
// the compact JWS. The protected header carries kid, alg and typ; an empty
// typ means "JWT".
func (r *Ring) Sign(tok jwt.Token, alg string, typ string) ([]byte, error) {
	if tok == nil {
		return nil, errNilToken
	}
	e, h, err := r.signer(alg, typ)
	if err != nil {
		return nil, err
	}
	out, err := jwt.Sign(tok, jwt.WithKey(e.jalg, e.priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		return nil, fmt.Errorf("keys: signing with %s key %s: %w", alg, e.kid, err)
	}
	return out, nil
}

// JWKS returns the JSON Web Key Set to publish: {"keys":[...]} with the
// public half of every key that is current, pending or retired but still
// within Retain, each with kid, kty, alg and use "sig". Keys are ordered by
// algorithm, then newest first. The bytes are shared: do not modify them.
func (r *Ring) JWKS() []byte { return r.current().jwks }

// PublicKey returns a copy of the published public key with the given kid.
func (r *Ring) PublicKey(kid string) (jwk.Key, bool) {
	e := r.current().published[kid]
	if e == nil {
		return nil, false
	}
	k, err := e.pub.Clone()
	if err != nil {
		return nil, false
	}
	return k, true
}

// KIDs returns the kids of the published keys, in JWKS order.
func (r *Ring) KIDs() []string {
	return append([]string(nil), r.current().kids...)
}

// refusedParseOptions are the jwt.ParseOption identities that would replace
// or disable the ring's own key selection in Verify.
var refusedParseOptions = map[any]string{
	jwt.WithVerify(true).Ident():          "jwt.WithVerify",
	jwt.WithKey(jwa.ES256(), nil).Ident(): "jwt.WithKey",
	jwt.WithKeySet(nil).Ident():           "jwt.WithKeySet",
	jwt.WithKeyProvider(nil).Ident():      "jwt.WithKeyProvider",
	jwt.WithVerifyAuto(nil).Ident():       "jwt.WithVerifyAuto",
}

// ErrUnknownKey is returned (wrapped) by Verify when the token's kid names
// no published key, even after reloading the store.
var ErrUnknownKey = errors.New("keys: unknown signing key")

// ErrWrongType is returned by VerifyTyp for a token of another type.
var ErrWrongType = errors.New("keys: wrong token type")

// ErrBadSignature is the error (wrapped) of a token whose signature does
// not verify with the key its kid names.
var ErrBadSignature = errors.New("invalid signature")

// Verify checks a compact JWS/JWT signed by one of the ring's published
// keys and returns the validated token. The kid header selects the key;
// the alg header must be that key's algorithm, so "none", HS256 and the
// like are refused. An unknown kid makes the ring reload the store (at most
// once a second across callers) before it gives up. Validation uses the
// ring's clock; opts are passed to jwt.Parse after it (jwt.WithIssuer,
// jwt.WithAudience, jwt.WithAcceptableSkew, jwt.WithClock, and
// jwt.WithValidate(false) for a caller that must read an expired token).
// Options that would replace the key selection (jwt.WithVerify,
// jwt.WithKey, jwt.WithKeySet, jwt.WithKeyProvider, jwt.WithVerifyAuto)
// are refused. Verify does not check the typ header; VerifyTyp does.
func (r *Ring) Verify(ctx context.Context, token []byte, opts ...jwt.ParseOption) (jwt.Token, error) {
	return r.VerifyTyp(ctx, token, "", opts...)
}

// VerifyTyp is Verify that also requires the typ header to be typ, or its
// media-type spelling "application/"+typ (RFC 7515 §4.1.9), compared
// case-insensitively; "" checks nothing. The header is read from the same
// parse that selects the key.
func (r *Ring) VerifyTyp(ctx context.Context, token []byte, typ string, opts ...jwt.ParseOption) (jwt.Token, error) {
	for _, o := range opts {
		if name, bad := refusedParseOptions[o.Ident()]; bad {
			return nil, fmt.Errorf("keys: Verify: option %s is not allowed: the ring selects the key", name)
		}
	}
	msg, err := jws.Parse(token, jws.WithCompact())
	if err != nil {
		return nil, fmt.Errorf("keys: Verify: malformed token: %w", err)
	}
	sigs := msg.Signatures()
	if len(sigs) != 1 || sigs[0].ProtectedHeaders() == nil {
		return nil, errors.New("keys: Verify: token must carry exactly one signature with a protected header")
	}
	hdr := sigs[0].ProtectedHeaders()
	if typ != "" {
		if got, _ := hdr.Type(); !TypMatches(got, typ) {
			return nil, fmt.Errorf("%w: typ %q", ErrWrongType, got)
		}
	}
	kid, _ := hdr.KeyID()
	alg, _ := hdr.Algorithm()
	e, err := r.lookupKID(ctx, kid)
	if err != nil {
		return nil, err
	}
	if alg.String() != e.alg {
		return nil, fmt.Errorf("keys: Verify: alg %q does not match key %s (%s)", alg.String(), e.kid, e.alg)
	}
	all := make([]jwt.ParseOption, 0, len(opts)+2)
	all = append(all, jwt.WithKey(e.jalg, e.pubRaw), jwt.WithClock(jwt.ClockFunc(r.now)))
	all = append(all, opts...)
	tok, err := jwt.Parse(token, all...)
	if err != nil {
		return nil, fmt.Errorf("keys: Verify: token with %s key %s: %w", e.alg, e.kid, err)
	}
	return tok, nil
}

// plausibleKID tells whether kid could be one of ours, an RFC 7638
// SHA-256 thumbprint in unpadded base64url, so that garbage kids do not
// cause store reloads.
func plausibleKID(kid string) bool {
	if len(kid) != 43 {
		return false
	}
	for i := range len(kid) {
		c := kid[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// reloadForUnknownKID refreshes from the store unless a reload for an
// unknown kid happened less than a second ago (wall clock); callers that
// come while one runs wait for it and share it.
func (r *Ring) reloadForUnknownKID(ctx context.Context) {
	recent := func() bool {
		last := r.lastReload.Load()
		return last != 0 && time.Now().UnixNano()-last < int64(time.Second)
	}
	if recent() {
		return
	}
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	if recent() {
		return
	}
	r.lastReload.Store(time.Now().UnixNano())
	if err := r.Refresh(ctx); err != nil {
		r.log.Warn("reloading signing keys for an unknown kid", zap.Error(err))
	}
}

// current returns the snapshot valid at the ring's present time,
// recomputing it from the same key records when a key was due to start
// signing, retire or leave the JWKS since it was made.
func (r *Ring) current() *view {
	v := r.view.Load()
	now := r.now()
	if v.validAt(now) {
		return v
	}
	nv := v.set.viewAt(now)
	r.view.CompareAndSwap(v, nv)
	return nv
}
