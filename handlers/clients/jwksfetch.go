package clients

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// Limits of the jwks_uri fetcher.
const (
	// jwksFetchTimeout bounds one fetch: connect, TLS, redirects and
	// body.
	jwksFetchTimeout = 5 * time.Second
	// jwksMaxBytes bounds a fetched JWK Set. A set of a few RSA keys is
	// a few kilobytes.
	jwksMaxBytes = 64 << 10
	// jwksDefaultTTL is how long a JWK Set is cached when its response
	// says nothing about caching.
	jwksDefaultTTL = time.Hour
	// jwksMaxTTL caps a long max-age, so that a rotated key is picked up
	// within a day whatever the client's server says.
	jwksMaxTTL = 24 * time.Hour
	// jwksRefetchInterval is the least time between two fetches of one
	// URI caused by an unknown kid: assertions with random kids do not
	// make the server hammer the client's URI.
	jwksRefetchInterval = 15 * time.Second
	// jwksMaxRedirects bounds same-host redirects.
	jwksMaxRedirects = 3
	// jwksCacheEntries bounds the number of URIs (and of inline sets)
	// whose parsed keys are kept.
	jwksCacheEntries = 4096
)

// jwksFetcher fetches clients' JWK Sets from their jwks_uri and caches
// them parsed, honouring Cache-Control (SMART asymmetric authentication:
// no longer than the client allows). Concurrent fetches of one URI share
// one request. It is safe for concurrent use; a Registry's fetchers live
// in its shared state (registry.go), so that the cache survives a Caddy
// reload.
type jwksFetcher struct {
	client   *http.Client
	maxBytes int64
	// refetchEvery is the least time between two fetches of one URI
	// caused by an unknown kid.
	refetchEvery time.Duration
	now          func() time.Time

	mu      sync.Mutex
	entries map[string]*jwksEntry
}

// jwksEntry is the cache state of one URI.
type jwksEntry struct {
	keys      *clientKeys // nil until a fetch succeeded
	expires   time.Time   // keys may be used until then
	fetchedAt time.Time   // start of the last fetch, successful or not
	lastErr   error       // the last fetch's failure, nil after a success
	call      *jwksCall   // the fetch in flight, if any
}

// jwksCall is one fetch in flight; done is closed when keys or err is set.
type jwksCall struct {
	done chan struct{}
	keys *clientKeys
	err  error
}

// newPublicJWKSFetcher is newJWKSFetcher restricted to public addresses.
func newPublicJWKSFetcher(timeout time.Duration, maxBytes int64) *jwksFetcher {
	f := newJWKSFetcher(timeout, maxBytes)
	f.client.Transport = publicOnlyTransport()
	return f
}

// newJWKSFetcher returns a fetcher with a total timeout per fetch and a
// size limit per JWK Set.
func newJWKSFetcher(timeout time.Duration, maxBytes int64) *jwksFetcher {
	return &jwksFetcher{
		client: &http.Client{
			Timeout:       timeout,
			CheckRedirect: checkJWKSRedirect,
		},
		maxBytes:     maxBytes,
		refetchEvery: jwksRefetchInterval,
		now:          time.Now,
		entries:      map[string]*jwksEntry{},
	}
}

// errJWKSFetch wraps every fetch failure.
var errJWKSFetch = errors.New("the client's jwks_uri cannot be used")

// keys returns the parsed keys of a jwks_uri: from the cache while it is
// fresh, else fetched. With refresh, a cached set is refetched unless the
// last fetch was less than refetchEvery ago (the caller found no key for
// a kid); refreshed then tells whether a new fetch was made.
func (f *jwksFetcher) keys(ctx context.Context, uri string, refresh bool) (k *clientKeys, refreshed bool, err error) {
	now := f.now()
	f.mu.Lock()
	e := f.entries[uri]
	if e == nil {
		f.evictLocked(now)
		e = &jwksEntry{}
		f.entries[uri] = e
	}
	fresh := e.keys != nil && now.Before(e.expires)
	switch {
	case fresh && !refresh:
		k = e.keys
		f.mu.Unlock()
		return k, false, nil
	case fresh && refresh && now.Sub(e.fetchedAt) < f.refetchEvery:
		k = e.keys
		f.mu.Unlock()
		return k, false, nil
	case !fresh && e.call == nil && e.lastErr != nil && now.Sub(e.fetchedAt) < f.refetchEvery:
		// A failed fetch is not retried at once: assertions naming a
		// client whose URI is down do not make the server hammer it.
		err = e.lastErr
		f.mu.Unlock()
		return nil, false, err
	}
	call := e.call
	if call == nil {
		call = &jwksCall{done: make(chan struct{})}
		e.call = call
		e.fetchedAt = now
		// The fetch runs detached from the request: other requests may
		// wait for it, and one caller giving up must not fail them.
		go f.fetch(uri, e, call)
	}
	f.mu.Unlock()
	select {
	case <-call.done:
		return call.keys, true, call.err
	case <-ctx.Done():
		return nil, false, fmt.Errorf("%w: %v", errJWKSFetch, ctx.Err())
	}
}

// fetch performs one fetch and publishes its outcome.
func (f *jwksFetcher) fetch(uri string, e *jwksEntry, call *jwksCall) {
	keys, ttl, err := f.get(uri)
	f.mu.Lock()
	defer f.mu.Unlock()
	defer close(call.done)
	e.call = nil
	if err != nil {
		call.err = fmt.Errorf("%w: %v", errJWKSFetch, err)
		e.lastErr = call.err
		// A failed fetch does not extend the old keys' life.
		return
	}
	e.lastErr = nil
	call.keys = keys
	e.keys = keys
	e.expires = f.now().Add(ttl)
}

// get fetches and parses one JWK Set and says how long it may be cached.
func (f *jwksFetcher) get(uri string) (*clientKeys, time.Duration, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, 0, errors.New("the URL is malformed")
	}
	if err := checkJWKSURL(u); err != nil {
		return nil, 0, err
	}
	req, err := http.NewRequest(http.MethodGet, uri, nil)
	if err != nil {
		return nil, 0, errors.New("the URL is malformed")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, 0, describeFetchError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("it answered HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBytes+1))
	if err != nil {
		return nil, 0, describeFetchError(err)
	}
	if int64(len(body)) > f.maxBytes {
		return nil, 0, fmt.Errorf("the JWK Set is larger than %d bytes", f.maxBytes)
	}
	keys, err := parseClientKeys(body)
	if err != nil {
		return nil, 0, err
	}
	return keys, cacheLifetime(resp.Header), nil
}

// describeFetchError says why a fetch failed without echoing the URL.
func describeFetchError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return errors.New("the request timed out")
		}
		var re *redirectRefused
		if errors.As(ue.Err, &re) {
			return re
		}
		if errors.Is(ue.Err, errNotPublic) {
			return errNotPublic
		}
		var oe *net.OpError
		if errors.As(ue.Err, &oe) {
			return fmt.Errorf("it cannot be reached (%s)", oe.Op)
		}
	}
	return errors.New("the request failed")
}

// redirectRefused is a redirect the fetcher does not follow.
type redirectRefused struct{ why string }

// Error implements error.
func (r *redirectRefused) Error() string { return "redirect refused: " + r.why }

// checkJWKSRedirect follows a redirect only to the same scheme and host
// (127.0.0.1 and localhost are different hosts), at most
// jwksMaxRedirects times.
func checkJWKSRedirect(req *http.Request, via []*http.Request) error {
	first := via[0].URL
	switch {
	case len(via) > jwksMaxRedirects:
		return &redirectRefused{"too many redirects"}
	case req.URL.Scheme != first.Scheme:
		return &redirectRefused{"to another scheme"}
	case !strings.EqualFold(req.URL.Host, first.Host):
		return &redirectRefused{"to another host"}
	}
	return nil
}

// checkJWKSURL requires https, or http on a loopback host.
func checkJWKSURL(u *url.URL) error {
	switch {
	case u.Host == "":
		return errors.New("the URL is not absolute")
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && IsLoopbackHost(u.Hostname()):
		return nil
	}
	return errors.New("the URL must use https (http only on loopback hosts)")
}

// cacheLifetime reads Cache-Control: no-store, no-cache or max-age=0
// forbid keeping the set beyond this request; max-age is honoured up to
// jwksMaxTTL; without either, jwksDefaultTTL.
func cacheLifetime(h http.Header) time.Duration {
	cc := h.Values("Cache-Control")
	if len(cc) == 0 {
		return jwksDefaultTTL
	}
	ttl := jwksDefaultTTL
	for _, line := range cc {
		for d := range strings.SplitSeq(line, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(name) {
			case "no-store", "no-cache":
				return 0
			case "max-age":
				n, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64)
				if err != nil || n <= 0 {
					return 0
				}
				// Compared in seconds: a huge max-age must not overflow.
				ttl = time.Duration(min(n, int64(jwksMaxTTL/time.Second))) * time.Second
			}
		}
	}
	return ttl
}

// evictLocked makes room for a new entry: expired entries go first, and
// if none has, an arbitrary one.
func (f *jwksFetcher) evictLocked(now time.Time) {
	if len(f.entries) < jwksCacheEntries {
		return
	}
	for uri, e := range f.entries {
		if e.call == nil && !now.Before(e.expires) {
			delete(f.entries, uri)
		}
	}
	for uri, e := range f.entries {
		if len(f.entries) < jwksCacheEntries {
			break
		}
		if e.call == nil {
			delete(f.entries, uri)
		}
	}
}

// inlineKeys holds parsed inline JWK Sets by the SHA-256 of their JSON,
// so a client's keys are parsed once and a changed client record (a new
// JWKS) is a new entry. It is safe for concurrent use.
type inlineKeys struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]*clientKeys
}

// newInlineKeys returns an empty cache.
func newInlineKeys() *inlineKeys {
	return &inlineKeys{m: map[[sha256.Size]byte]*clientKeys{}}
}

// keys returns the parsed keys of an inline JWK Set.
func (c *inlineKeys) keys(raw []byte) (*clientKeys, error) {
	sum := sha256.Sum256(raw)
	c.mu.Lock()
	k := c.m[sum]
	c.mu.Unlock()
	if k != nil {
		return k, nil
	}
	k, err := parseClientKeys(raw)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.m) >= jwksCacheEntries {
		clear(c.m)
	}
	c.m[sum] = k
	c.mu.Unlock()
	return k, nil
}

// clientKeys is a client's parsed JWK Set with a memo of key selections,
// so that the public key for a (kid, alg) is chosen and exported once.
type clientKeys struct {
	set jwk.Set

	mu  sync.Mutex
	sel map[string]selectedKey
}

// selectedKey is a memoized selectClientAssertionKey outcome.
type selectedKey struct {
	key any    // the raw public key (*rsa.PublicKey, *ecdsa.PublicKey)
	why string // why there is none
}

// parseClientKeys parses a client's JWK Set: public RSA and EC keys only.
func parseClientKeys(raw []byte) (*clientKeys, error) {
	set, err := jwk.Parse(raw)
	if err != nil {
		return nil, errors.New("the JWK Set cannot be parsed")
	}
	for i := range set.Len() {
		k, _ := set.Key(i)
		if k == nil {
			continue
		}
		if isPrivateJWK(k) {
			return nil, errors.New("the JWK Set holds private or symmetric key material")
		}
	}
	return &clientKeys{set: set, sel: map[string]selectedKey{}}, nil
}

// lookup returns the raw public key for a kid and alg, choosing it on
// first use (selectClientAssertionKey) and remembering the outcome.
func (k *clientKeys) lookup(kid, alg string) (any, string) {
	memo := kid + "\x00" + alg
	k.mu.Lock()
	s, ok := k.sel[memo]
	k.mu.Unlock()
	if ok {
		return s.key, s.why
	}
	key, why := selectClientAssertionKey(k.set, kid, alg)
	if key != nil {
		var raw any
		if err := jwk.Export(key, &raw); err != nil {
			key, why = nil, "the registered key cannot be used"
		} else {
			s.key = raw
		}
	}
	s.why = why
	k.mu.Lock()
	// Attackers choose kids: bound the memo.
	if len(k.sel) < 64 {
		k.sel[memo] = s
	}
	k.mu.Unlock()
	return s.key, s.why
}
