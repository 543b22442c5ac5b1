package clients

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// testJWKS is a JWK Set with one P-384 key, kid "ec1".
func testJWKS(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jk, err := jwk.Import(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	_ = jk.Set(jwk.KeyIDKey, "ec1")
	set := jwk.NewSet()
	_ = set.AddKey(jk)
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jwksServer serves a JWK Set with a Cache-Control header and counts the
// fetches.
func jwksServer(t *testing.T, body []byte, cacheControl string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	n := new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if r.Header.Get("Accept") != "application/json" {
			http.Error(w, "Accept", http.StatusNotAcceptable)
			return
		}
		if cacheControl != "" {
			w.Header().Set("Cache-Control", cacheControl)
		}
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv, n
}

// fakeClock is a settable clock for the fetcher.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newTestFetcher(timeout time.Duration) (*jwksFetcher, *fakeClock) {
	f := newJWKSFetcher(timeout, jwksMaxBytes)
	c := &fakeClock{now: time.Now()}
	f.now = c.Now
	return f, c
}

func TestJWKSFetcherHonoursCacheControl(t *testing.T) {
	body := testJWKS(t)
	for _, tc := range []struct {
		cacheControl string
		after        time.Duration // clock advance before the second use
		fetches      int64
	}{
		{"max-age=600", 5 * time.Minute, 1},
		{"max-age=600", 11 * time.Minute, 2},
		{"", 59 * time.Minute, 1}, // default one hour
		{"", 61 * time.Minute, 2},
		{"public, max-age=172800", 25 * time.Hour, 2}, // capped at 24 hours
		{"max-age=9227000000", 23 * time.Hour, 1},     // capped, not overflowed (FuzzCacheLifetime)
		{"no-store", 0, 2},
		{"no-cache", 0, 2},
		{"max-age=0", 0, 2},
	} {
		t.Run(tc.cacheControl+"/"+tc.after.String(), func(t *testing.T) {
			srv, n := jwksServer(t, body, tc.cacheControl)
			f, clock := newTestFetcher(time.Second)
			for i := range 2 {
				k, _, err := f.keys(context.Background(), srv.URL, false)
				if err != nil {
					t.Fatal(err)
				}
				if key, why := k.lookup("ec1", "ES384"); key == nil {
					t.Fatalf("use %d: %s", i, why)
				}
				clock.Advance(tc.after)
			}
			if got := n.Load(); got != tc.fetches {
				t.Errorf("%d fetches, want %d", got, tc.fetches)
			}
		})
	}
}

func TestJWKSFetcherRefetchIsRateLimited(t *testing.T) {
	srv, n := jwksServer(t, testJWKS(t), "max-age=3600")
	f, clock := newTestFetcher(time.Second)
	ctx := context.Background()
	if _, _, err := f.keys(ctx, srv.URL, false); err != nil {
		t.Fatal(err)
	}
	// An unknown kid right after the fetch: no new request.
	if _, refreshed, err := f.keys(ctx, srv.URL, true); err != nil || refreshed {
		t.Fatalf("refetched at once: %v %v", refreshed, err)
	}
	clock.Advance(jwksRefetchInterval + time.Second)
	if _, refreshed, err := f.keys(ctx, srv.URL, true); err != nil || !refreshed {
		t.Fatalf("no refetch after the interval: %v %v", refreshed, err)
	}
	// Random kids do not cause more requests.
	for range 20 {
		_, _, _ = f.keys(ctx, srv.URL, true)
	}
	if got := n.Load(); got != 2 {
		t.Errorf("%d fetches, want 2", got)
	}
}

func TestJWKSFetcherSharesConcurrentFetches(t *testing.T) {
	body := testJWKS(t)
	release := make(chan struct{})
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n.Add(1)
		<-release
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	f, _ := newTestFetcher(5 * time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Go(func() {
			_, _, err := f.keys(context.Background(), srv.URL, false)
			errs <- err
		})
	}
	// Every caller is waiting on the one fetch in flight.
	for {
		f.mu.Lock()
		inFlight := f.entries[srv.URL] != nil && f.entries[srv.URL].call != nil
		f.mu.Unlock()
		if inFlight && n.Load() == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := n.Load(); got != 1 {
		t.Errorf("%d fetches for 10 concurrent callers, want 1", got)
	}
}

func TestJWKSFetcherFailures(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	large, _ := jwksServer(t, []byte(`{"keys":[],"x":"`+strings.Repeat("a", jwksMaxBytes)+`"}`), "")
	private := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}`))
	}))
	t.Cleanup(private.Close)
	status := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(status.Close)
	sameHost := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/old" {
			http.Redirect(w, r, "/new", http.StatusMovedPermanently)
			return
		}
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	t.Cleanup(sameHost.Close)
	otherHost := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, strings.Replace("http://"+r.Host, "127.0.0.1", "localhost", 1)+"/x", http.StatusFound)
	}))
	t.Cleanup(otherHost.Close)

	for _, tc := range []struct{ name, uri, want string }{
		{"slow", slow.URL, "timed out"},
		{"too large", large.URL, "larger than"},
		{"symmetric key", private.URL, "private or symmetric"},
		{"not found", status.URL, "HTTP 404"},
		{"redirect to another host", otherHost.URL, "redirect refused: to another host"},
		{"plain http off loopback", "http://jwks.example.org/keys", "must use https"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The slow server never answers, so the timeout may be
			// generous: a loaded machine must not turn the other cases
			// into timeouts.
			f, _ := newTestFetcher(2 * time.Second)
			_, _, err := f.keys(context.Background(), tc.uri, false)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("redirect on the same host is followed", func(t *testing.T) {
		f, _ := newTestFetcher(time.Second)
		if _, _, err := f.keys(context.Background(), sameHost.URL+"/old", false); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a failure is not retried at once", func(t *testing.T) {
		f, clock := newTestFetcher(time.Second)
		var n atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			n.Add(1)
			w.WriteHeader(http.StatusInternalServerError)
		}))
		t.Cleanup(srv.Close)
		for range 5 {
			if _, _, err := f.keys(context.Background(), srv.URL, false); err == nil {
				t.Fatal("no error")
			}
		}
		clock.Advance(jwksRefetchInterval + time.Second)
		_, _, _ = f.keys(context.Background(), srv.URL, false)
		if got := n.Load(); got != 2 {
			t.Errorf("%d fetches, want 2", got)
		}
	})
}

func TestCheckJWKSRedirectHosts(t *testing.T) {
	mk := func(s string) *http.Request { u, _ := url.Parse(s); return &http.Request{URL: u} }
	first := []*http.Request{mk("https://keys.example.org/a")}
	if err := checkJWKSRedirect(mk("https://keys.example.org/b"), first); err != nil {
		t.Errorf("same host: %v", err)
	}
	for _, to := range []string{"https://other.example.org/b", "http://keys.example.org/b", "https://keys.example.org:8443/b"} {
		if err := checkJWKSRedirect(mk(to), first); err == nil {
			t.Errorf("redirect to %s followed", to)
		}
	}
}
