package clients

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// upperASCII upper-cases ASCII letters only.
func upperASCII(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, s)
}

// forbidsCaching tells whether Cache-Control values hold a no-store or
// no-cache directive (names are case-insensitive, RFC 9111 §5.2).
func forbidsCaching(values []string) bool {
	for _, v := range values {
		for _, d := range strings.Split(v, ",") {
			name, _, _ := strings.Cut(strings.TrimSpace(d), "=")
			if n := strings.ToLower(name); n == "no-store" || n == "no-cache" {
				return true
			}
		}
	}
	return false
}

// FuzzCacheLifetime checks how long a fetched JWK Set is kept
// (cacheLifetime) for any Cache-Control values (one per line of the
// input):
//   - never negative, never beyond a day, and whole seconds;
//   - an hour when there is no header;
//   - zero whenever no-store or no-cache appears, wherever;
//   - directive names are case-insensitive;
//   - adding no-store or max-age=0 to any header forbids caching.
func FuzzCacheLifetime(f *testing.F) {
	for _, s := range []string{
		"", "max-age=600", "public, max-age=172800", "no-store", "no-cache", "max-age=0", "max-age=-1",
		`max-age="60"`, "max-age=60\nno-cache", "private, max-age=99999999999999999999", "MAX-AGE=5",
		"max-age=5, max-age=0", " max-age = 5", "no-cache=\"Set-Cookie\", max-age=60", "s-maxage=10",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var values []string
		if in != "" {
			values = strings.Split(in, "\n")
		}
		h := http.Header{"Cache-Control": values}
		ttl := cacheLifetime(h)
		switch {
		case ttl < 0 || ttl > jwksMaxTTL:
			t.Fatalf("%q: lifetime %v", values, ttl)
		case ttl%time.Second != 0:
			t.Fatalf("%q: lifetime %v is not whole seconds", values, ttl)
		case len(values) == 0 && ttl != jwksDefaultTTL:
			t.Fatalf("no Cache-Control: lifetime %v", ttl)
		case forbidsCaching(values) && ttl != 0:
			t.Fatalf("%q forbids caching, lifetime %v", values, ttl)
		}
		upper := make([]string, len(values))
		for i, v := range values {
			upper[i] = upperASCII(v)
		}
		if got := cacheLifetime(http.Header{"Cache-Control": upper}); got != ttl {
			t.Fatalf("%q: lifetime %v, upper-cased %v", values, ttl, got)
		}
		for _, more := range [][]string{append(values[:len(values):len(values)], "no-store"), {in + ", no-cache"}, append(values[:len(values):len(values)], "max-age=0")} {
			if got := cacheLifetime(http.Header{"Cache-Control": more}); got != 0 {
				t.Fatalf("%q: lifetime %v, want 0", more, got)
			}
		}
	})
}

// jwksAnswer is what the fuzz JWKS server answers.
type jwksAnswer struct {
	body         []byte
	cacheControl []string
}

// FuzzJWKSFetch checks the jwks_uri fetcher on a fetched JWK Set (body
// and Cache-Control chosen by the fuzzer, served over loopback HTTP):
//   - the fetch succeeds exactly when the set parses without private or
//     symmetric key material;
//   - a key is chosen for a kid and alg only if exactly one key of the set
//     has that kid and fits the algorithm: RSA of 2048 bits or more for
//     RS256/RS384, EC on P-256 for ES256 and on P-384 for ES384;
//   - the set is used again without a fetch while Cache-Control allows,
//     fetched again when it does not, and never kept beyond its lifetime;
//     a failed fetch is not retried at once.
func FuzzJWKSFetch(f *testing.F) {
	var (
		mu     sync.Mutex
		answer jwksAnswer
		hits   atomic.Int64
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		mu.Lock()
		a := answer
		mu.Unlock()
		for _, v := range a.cacheControl {
			w.Header().Add("Cache-Control", v)
		}
		_, _ = w.Write(a.body)
	}))
	f.Cleanup(srv.Close)
	for _, s := range jwksSeeds() {
		f.Add(s.body, s.cc, s.kid, s.alg)
	}
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, body []byte, cc, kid, alg string) {
		var values []string
		if cc != "" {
			values = strings.Split(cc, "\n")
		}
		for _, v := range values {
			if !validHeader(v) {
				return // a server cannot send it
			}
		}
		mu.Lock()
		answer = jwksAnswer{body: body, cacheControl: values}
		mu.Unlock()
		fetcher, clock := newFuzzFetcher()
		uri := srv.URL + "/jwks?n=" + strconv.FormatInt(n.Add(1), 10)
		before := hits.Load()
		keys, _, err := fetcher.keys(context.Background(), uri, false)
		_, perr := parseClientKeys(body)
		if (err == nil) != (perr == nil && len(body) <= jwksMaxBytes) {
			t.Fatalf("fetch error %v, parse error %v", err, perr)
		}
		if err != nil {
			if _, _, again := fetcher.keys(context.Background(), uri, false); again == nil || hits.Load() != before+1 {
				t.Fatalf("a failed fetch was retried at once (%d fetches, %v)", hits.Load()-before, again)
			}
			return
		}
		checkKeySelection(t, keys, kid, alg)
		ttl := cacheLifetime(http.Header{"Cache-Control": values})
		if _, _, err := fetcher.keys(context.Background(), uri, false); err != nil {
			t.Fatalf("second use: %v", err)
		}
		if want := before + 1 + map[bool]int64{true: 0, false: 1}[ttl > 0]; hits.Load() != want {
			t.Fatalf("Cache-Control %q (lifetime %v): %d fetches for two uses", values, ttl, hits.Load()-before)
		}
		if ttl > 0 {
			clock.Advance(ttl)
			now := hits.Load()
			if _, _, err := fetcher.keys(context.Background(), uri, false); err != nil || hits.Load() != now+1 {
				t.Fatalf("Cache-Control %q: the set was kept beyond %v (%v)", values, ttl, err)
			}
		}
	})
}

// newFuzzFetcher is a fetcher with a settable clock.
func newFuzzFetcher() (*jwksFetcher, *fakeClock) {
	f := newJWKSFetcher(2*time.Second, jwksMaxBytes)
	c := &fakeClock{now: time.Now()}
	f.now = c.Now
	return f, c
}

// checkKeySelection checks lookup for a fuzzed kid and alg and for every
// kid of the set with every accepted algorithm.
func checkKeySelection(t *testing.T, keys *clientKeys, kid, alg string) {
	t.Helper()
	kids := []string{kid}
	for i := range keys.set.Len() {
		k, _ := keys.set.Key(i)
		if k == nil {
			continue
		}
		if isPrivateJWK(k) {
			t.Fatalf("key %d holds private material", i)
		}
		if id, ok := k.KeyID(); ok {
			kids = append(kids, id)
		}
	}
	algs := []string{alg, "RS256", "RS384", "ES256", "ES384"}
	for _, id := range kids {
		for _, a := range algs {
			key, why := keys.lookup(id, a)
			if key == nil {
				if why == "" {
					t.Fatalf("lookup(%q, %q): no key and no reason", id, a)
				}
				continue
			}
			switch pub := key.(type) {
			case *rsa.PublicKey:
				if a != "RS256" && a != "RS384" || pub.N.BitLen() < MinRSABits {
					t.Fatalf("lookup(%q, %q) chose an RSA key of %d bits", id, a, pub.N.BitLen())
				}
			case *ecdsa.PublicKey:
				if !(a == "ES256" && pub.Curve == elliptic.P256() || a == "ES384" && pub.Curve == elliptic.P384()) {
					t.Fatalf("lookup(%q, %q) chose an EC key on %s", id, a, pub.Curve.Params().Name)
				}
			default:
				t.Fatalf("lookup(%q, %q) chose a %T", id, a, key)
			}
			if n := fittingKeys(keys, id, a); n != 1 {
				t.Fatalf("lookup(%q, %q) chose a key, but %d keys have that kid and fit", id, a, n)
			}
			if again, _ := keys.lookup(id, a); again != key {
				t.Fatalf("lookup(%q, %q) is not stable", id, a)
			}
		}
	}
}

// fittingKeys counts the keys of a set that have a kid and fit an
// algorithm: its key type (and curve), and their own alg and use, when
// present, agree (SMART asymmetric authentication: the key is chosen by
// kid among the keys that can verify the algorithm; several are
// ambiguous).
func fittingKeys(keys *clientKeys, kid, alg string) int {
	n := 0
	for i := range keys.set.Len() {
		k, _ := keys.set.Key(i)
		if k == nil {
			continue
		}
		if id, _ := k.KeyID(); id != kid {
			continue
		}
		if ka, ok := k.Algorithm(); ok && ka.String() != alg {
			continue
		}
		if use, ok := k.KeyUsage(); ok && use != "sig" {
			continue
		}
		var raw any
		if jwk.Export(k, &raw) != nil {
			continue
		}
		switch pub := raw.(type) {
		case *rsa.PublicKey:
			if alg == "RS256" || alg == "RS384" {
				n++
			}
		case *ecdsa.PublicKey:
			if alg == "ES256" && pub.Curve == elliptic.P256() || alg == "ES384" && pub.Curve == elliptic.P384() {
				n++
			}
		}
	}
	return n
}
