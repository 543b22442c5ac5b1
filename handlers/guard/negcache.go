package guard

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/smartcaddy/smartauth/handlers/accesstoken"
)

// Negative-cache parameters of the guard.
const (
	// negCacheMax bounds the refused-token cache; when full, entries past
	// their time are dropped, and if that is not enough, all of them.
	negCacheMax = 1 << 14
	// negCacheTTL is how long a refusal is remembered. Refusals it holds
	// are permanent (accesstoken.Permanent): the bound only keeps the
	// cache from holding on to tokens nobody presents any more.
	negCacheTTL = 10 * time.Minute
)

// negCache remembers, by token hash, the tokens Verify refused for good,
// so that the same invalid token presented again is refused without
// parsing it or checking a signature. It is bounded (negCacheMax).
type negCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]negEntry
}

// negEntry is one remembered refusal: Verify's error, until when.
type negEntry struct {
	err   error
	until time.Time
}

// lookup returns the remembered refusal of a token hash; nil for none.
func (c *negCache) lookup(key [sha256.Size]byte, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key]; ok && now.Before(e.until) {
		return e.err
	}
	return nil
}

// remember records a permanent refusal of a token hash.
func (c *negCache) remember(key [sha256.Size]byte, err error, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[[sha256.Size]byte]negEntry)
	}
	makeRoom(c.m, negCacheMax, func(e negEntry) bool { return !now.Before(e.until) })
	c.m[key] = negEntry{err: err, until: now.Add(negCacheTTL)}
}

// verify is Verify of a token not in the cache (VerifyMinted for one this
// server minted), with the negative cache in front: a token refused for good before gets the same error again at no
// cost; a new permanent refusal is remembered.
func (g *Guard) verify(ctx context.Context, key [sha256.Size]byte, raw string, now time.Time) (accesstoken.Claims, error) {
	if err := g.gs.refused.lookup(key, now); err != nil {
		return accesstoken.Claims{}, err
	}
	// A token this server minted needs no signature check (VerifyMinted).
	tok, minted, err := g.tokens.VerifyMinted(ctx, key)
	if !minted {
		tok, err = g.tokens.Verify(ctx, raw)
	}
	if err != nil && accesstoken.Permanent(err) {
		g.gs.refused.remember(key, err, now)
	}
	return tok, err
}
