package accesstoken

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"
	"unsafe"
)

// issuedGeneration is how many tokens one generation of the issued set
// holds; the set keeps two (the current one and the one before).
const issuedGeneration = 8192

// issuedSet remembers the claims of the tokens this profile minted last,
// by the SHA-256 of the token, until the guard of the same server uses
// them (Profile.VerifyMinted): a token minted here needs no signature
// check, the server wrote it. It is bounded: two generations of
// issuedGeneration tokens; when the current one is full it becomes the
// old one and the old one is dropped (about 5 MB at most), so a token
// minted long before its first use is verified as any other.
type issuedSet struct {
	mu       sync.Mutex
	cur, old map[[sha256.Size]byte]*fastClaims
}

// add remembers a minted token's claims.
func (s *issuedSet) add(key [sha256.Size]byte, fc *fastClaims) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil || len(s.cur) >= issuedGeneration {
		s.old, s.cur = s.cur, make(map[[sha256.Size]byte]*fastClaims, issuedGeneration)
	}
	s.cur[key] = fc
}

// take returns and forgets a minted token's claims.
func (s *issuedSet) take(key [sha256.Size]byte) *fastClaims {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fc, ok := s.cur[key]; ok {
		delete(s.cur, key)
		return fc
	}
	if fc, ok := s.old[key]; ok {
		delete(s.old, key)
		return fc
	}
	return nil
}

// remember records a token Mint just signed, from the payload it signed,
// read as Verify's fast path reads it (so a token taken from the set has
// exactly the claims its verification would give).
func (p *Profile) remember(token string, payload []byte) {
	fc := &fastClaims{}
	if !fc.parse(payload) {
		return // never for a payload Mint wrote; verified as any other then
	}
	p.issued.add(sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token))), fc)
}

// VerifyMinted is Verify for a token this profile minted, found by the
// SHA-256 of the token's text, which it forgets (the caller caches what it
// verified): the first use of a token minted by this server (this process,
// since its configuration was last loaded) needs neither a signature
// check nor a parse, since the server wrote it. Everything else is as
// Verify: an expired token is left to Verify, and the store's revocations
// (by jti, family, client, user) are read, so that a revocation recorded
// between the mint and the first use is enforced at once. found is false
// for a token minted elsewhere (another instance), or before the last
// 8,192 to 16,384 mints: Verify checks it.
func (p *Profile) VerifyMinted(ctx context.Context, key [sha256.Size]byte) (c Claims, found bool, err error) {
	fc := p.issued.take(key)
	if fc == nil || !p.opts.Keys.Now().Before(time.Unix(fc.exp, 0).Add(Skew)) {
		return Claims{}, false, nil
	}
	c = Claims{f: fc}
	switch revoked, err := p.revoked(ctx, c); {
	case err != nil:
		return Claims{}, true, err
	case revoked:
		return Claims{}, true, permanentError{ErrRevoked}
	}
	return c, true, nil
}
