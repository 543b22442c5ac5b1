package clients

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestIsPublicAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"93.184.215.14":        true,
		"8.8.8.8":              true,
		"2606:4700::1111":      true,
		"127.0.0.1":            false,
		"127.9.9.9":            false,
		"::1":                  false,
		"10.1.2.3":             false,
		"172.16.0.1":           false,
		"192.168.1.1":          false,
		"169.254.169.254":      false, // cloud metadata
		"100.64.0.1":           false,
		"0.0.0.0":              false,
		"::":                   false,
		"fd00::1":              false,
		"fe80::1":              false,
		"::ffff:127.0.0.1":     false,
		"::ffff:10.0.0.1":      false,
		"64:ff9b::a00:1":       false, // NAT64 of 10.0.0.1
		"224.0.0.1":            false,
		"255.255.255.255":      false,
		"198.18.0.1":           false,
		"2001:db8::1":          false,
		"::ffff:93.184.215.14": true,
	} {
		if got := isPublicAddr(netip.MustParseAddr(addr)); got != want {
			t.Errorf("isPublicAddr(%s) = %v, want %v", addr, got, want)
		}
	}
}

// TestPublicJWKSFetcherRefusesLoopback fetches from a loopback server with
// both fetchers: the public-only one refuses to connect, the other works.
func TestPublicJWKSFetcherRefusesLoopback(t *testing.T) {
	var hits int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits++
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	for _, u := range []string{srv.URL, "http://localhost:" + port} {
		_, _, err := newPublicJWKSFetcher(time.Second, jwksMaxBytes).keys(ctx, u+"/jwks", false)
		if !errors.Is(err, errJWKSFetch) || !strings.Contains(err.Error(), errNotPublic.Error()) {
			t.Fatalf("public-only fetch of %s: %v", u, err)
		}
	}
	if hits != 0 {
		t.Fatalf("the loopback server was reached %d times", hits)
	}
	if _, _, err := newJWKSFetcher(time.Second, jwksMaxBytes).keys(ctx, srv.URL+"/jwks", false); err != nil {
		t.Fatalf("the unrestricted fetcher: %v", err)
	}
	if hits != 1 {
		t.Fatalf("hits %d", hits)
	}
}
