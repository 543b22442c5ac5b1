package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/store"
)

// entry is one parsed key record. It is never modified once built.
type entry struct {
	kid          string
	alg          string
	jalg         jwa.SignatureAlgorithm
	activeFrom   time.Time
	retiredAt    time.Time
	publishUntil time.Time
	// pub is the public key as published: kid, kty, alg, use and the key
	// parameters.
	pub     jwk.Key
	pubJSON []byte
	// pubRaw is *rsa.PublicKey or *ecdsa.PublicKey, for verification.
	pubRaw crypto.PublicKey
	// priv is *rsa.PrivateKey or *ecdsa.PrivateKey when this ring may
	// sign with the key, nil otherwise.
	priv crypto.Signer
	// fromDER tells that priv was parsed from the record, so that a later
	// keyset can reuse it.
	fromDER bool
}

// published tells whether the key is in the JWKS at now.
func (e *entry) published(now time.Time) bool {
	return e.publishUntil.IsZero() || e.publishUntil.After(now)
}

// signs tells whether the key may sign at now.
func (e *entry) signs(now time.Time) bool {
	return e.priv != nil && !e.activeFrom.After(now) && (e.retiredAt.IsZero() || e.retiredAt.After(now))
}

// keyset is the parsed content of the store's key records, ordered by
// algorithm, then newest ActiveFrom first, then kid.
type keyset struct {
	entries []*entry
	// fingerprint identifies the records the keyset was built from, so
	// that an unchanged store does not replace the snapshot.
	fingerprint string
}

// view is a keyset as seen at one moment. It stays valid until the next
// moment a key starts signing, retires or leaves the JWKS.
type view struct {
	set *keyset
	// at and until bound the time range the view is valid for; a zero
	// until means forever.
	at, until time.Time
	signers   map[string]*entry
	published map[string]*entry
	kids      []string
	jwks      []byte
}

// validAt tells whether the view still describes the keyset at now.
func (v *view) validAt(now time.Time) bool {
	return !now.Before(v.at) && (v.until.IsZero() || now.Before(v.until))
}

// viewAt computes what the keyset looks like at now.
func (s *keyset) viewAt(now time.Time) *view {
	v := &view{
		set:       s,
		at:        now,
		signers:   make(map[string]*entry, len(algs)),
		published: make(map[string]*entry, len(s.entries)),
	}
	next := func(t time.Time) {
		if t.After(now) && (v.until.IsZero() || t.Before(v.until)) {
			v.until = t
		}
	}
	keys := make([]json.RawMessage, 0, len(s.entries))
	for _, e := range s.entries {
		next(e.activeFrom)
		next(e.retiredAt)
		next(e.publishUntil)
		if e.published(now) {
			v.published[e.kid] = e
			v.kids = append(v.kids, e.kid)
			keys = append(keys, e.pubJSON)
		}
		// Entries are newest first within an algorithm, so the first
		// one that signs is the current one.
		if v.signers[e.alg] == nil && e.signs(now) {
			v.signers[e.alg] = e
		}
	}
	js, err := json.Marshal(struct {
		Keys []json.RawMessage `json:"keys"`
	}{keys})
	if err != nil {
		// Every pubJSON was produced by json.Marshal; this cannot fail.
		panic("keys: marshaling JWKS: " + err.Error())
	}
	v.jwks = js
	return v
}

// buildKeyset parses records into a keyset. Records that cannot be parsed
// are logged and left out. Private keys are reused from old when the same
// kid is in it.
func (r *Ring) buildKeyset(recs []*store.KeyRecord, old *keyset) *keyset {
	prev := make(map[string]*entry)
	if old != nil {
		for _, e := range old.entries {
			prev[e.kid] = e
		}
	}
	s := &keyset{entries: make([]*entry, 0, len(recs))}
	for _, rec := range recs {
		e, err := r.parseRecord(rec, prev[rec.KID])
		if err != nil {
			r.log.Error("unusable signing key record", zap.String("kid", rec.KID), zap.String("alg", rec.Alg), zap.Error(err))
			continue
		}
		s.entries = append(s.entries, e)
	}
	slices.SortFunc(s.entries, func(a, b *entry) int {
		if c := strings.Compare(a.alg, b.alg); c != 0 {
			return c
		}
		if c := b.activeFrom.Compare(a.activeFrom); c != 0 {
			return c
		}
		return strings.Compare(a.kid, b.kid)
	})
	s.fingerprint = fingerprint(recs)
	return s
}

// fingerprint summarizes what of recs matters to a keyset.
func fingerprint(recs []*store.KeyRecord) string {
	var b strings.Builder
	sorted := slices.Clone(recs)
	slices.SortFunc(sorted, func(a, b *store.KeyRecord) int { return strings.Compare(a.KID, b.KID) })
	for _, k := range sorted {
		fmt.Fprintf(&b, "%s|%s|%t|%t|%d|%d|%d|%s\n", k.KID, k.Alg, k.External, len(k.PrivateKey) > 0,
			k.ActiveFrom.UnixNano(), unixNano(k.RetiredAt), unixNano(k.PublishUntil), k.PublicJWK)
	}
	return b.String()
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// parseRecord turns a record into an entry: it checks that the public key
// matches the kid and the algorithm, and attaches the private key when this
// ring may sign with it.
func (r *Ring) parseRecord(rec *store.KeyRecord, prev *entry) (*entry, error) {
	jalg, ok := jwaAlg(rec.Alg)
	if !ok {
		return nil, fmt.Errorf("unsupported algorithm %q", rec.Alg)
	}
	stored, err := jwk.ParseKey(rec.PublicJWK)
	if err != nil {
		return nil, fmt.Errorf("parsing public JWK: %w", err)
	}
	var raw any
	if err := jwk.Export(stored, &raw); err != nil {
		return nil, fmt.Errorf("exporting public JWK: %w", err)
	}
	if signer, ok := raw.(crypto.Signer); ok {
		// A record must never publish private members; keep only the
		// public half.
		raw = signer.Public()
	}
	pub, kid, pubJSON, err := publicJWK(raw, rec.Alg)
	if err != nil {
		return nil, err
	}
	if kid != rec.KID {
		return nil, errors.New("public key does not match the kid")
	}
	e := &entry{
		kid:          rec.KID,
		alg:          rec.Alg,
		jalg:         jalg,
		activeFrom:   rec.ActiveFrom,
		retiredAt:    rec.RetiredAt,
		publishUntil: rec.PublishUntil,
		pub:          pub,
		pubJSON:      pubJSON,
		pubRaw:       raw,
	}
	if fk := r.files[rec.Alg]; fk != nil {
		// With a key file for the algorithm, only that key signs.
		if rec.External && fk.kid == rec.KID {
			e.priv = fk.priv
		}
		return e, nil
	}
	if rec.External || len(rec.PrivateKey) == 0 {
		return e, nil
	}
	if prev != nil && prev.fromDER && prev.priv != nil {
		e.priv, e.fromDER = prev.priv, true
		return e, nil
	}
	priv, err := x509.ParsePKCS8PrivateKey(rec.PrivateKey)
	if err != nil {
		return nil, errors.New("private key is not valid PKCS #8")
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, errors.New("private key cannot sign")
	}
	if eq, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(raw) {
		return nil, errors.New("private key does not match the public key")
	}
	e.priv, e.fromDER = signer, true
	return e, nil
}

// checkKey tells whether pub is a key alg may use: RSA of at least 2048
// bits for RS256, ECDSA on P-256 for ES256.
func checkKey(pub crypto.PublicKey, alg string) error {
	switch alg {
	case RS256:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("%s needs an RSA key, not %s", alg, keyKind(pub))
		}
		if n := k.N.BitLen(); n < 2048 {
			return fmt.Errorf("RSA key has %d bits, %s needs at least 2048", n, alg)
		}
	case ES256:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return fmt.Errorf("%s needs an ECDSA P-256 key, not %s", alg, keyKind(pub))
		}
		if k.Curve != elliptic.P256() {
			return fmt.Errorf("ECDSA key is on curve %s, %s needs P-256", k.Curve.Params().Name, alg)
		}
	default:
		return fmt.Errorf("unsupported algorithm %q", alg)
	}
	return nil
}

// keyKind names a key's type for error messages.
func keyKind(k any) string {
	switch k := k.(type) {
	case *rsa.PublicKey, *rsa.PrivateKey:
		return "an RSA key"
	case *ecdsa.PublicKey:
		return "an ECDSA " + k.Curve.Params().Name + " key"
	case *ecdsa.PrivateKey:
		return "an ECDSA " + k.Curve.Params().Name + " key"
	case ed25519.PublicKey, ed25519.PrivateKey:
		return "an Ed25519 key"
	default:
		name := fmt.Sprintf("%T", k)
		name = strings.TrimPrefix(strings.TrimPrefix(name, "*"), "crypto/")
		return "a " + name + " key"
	}
}

// publicJWK checks pub against alg and returns it as a JWK with kid (the
// RFC 7638 SHA-256 thumbprint, unpadded base64url), alg and use "sig",
// with its JSON.
func publicJWK(pub crypto.PublicKey, alg string) (jwk.Key, string, []byte, error) {
	if err := checkKey(pub, alg); err != nil {
		return nil, "", nil, err
	}
	jalg, _ := jwaAlg(alg)
	k, err := jwk.Import(pub)
	if err != nil {
		return nil, "", nil, fmt.Errorf("importing public key: %w", err)
	}
	if ok, err := jwk.IsPrivateKey(k); err != nil || ok {
		return nil, "", nil, errors.New("not a public key")
	}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, "", nil, fmt.Errorf("computing thumbprint: %w", err)
	}
	kid := base64.RawURLEncoding.EncodeToString(tp)
	for name, val := range map[string]any{jwk.KeyIDKey: kid, jwk.AlgorithmKey: jalg, jwk.KeyUsageKey: jwk.ForSignature} {
		if err := k.Set(name, val); err != nil {
			return nil, "", nil, fmt.Errorf("setting %s: %w", name, err)
		}
	}
	js, err := json.Marshal(k)
	if err != nil {
		return nil, "", nil, fmt.Errorf("marshaling public JWK: %w", err)
	}
	return k, kid, js, nil
}
