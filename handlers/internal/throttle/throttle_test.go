package throttle

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestMapExpiry(t *testing.T) {
	m := NewMap[string](10)
	m.Set("a", "x", t0.Add(time.Minute), t0)
	if v, ok := m.Get("a", t0.Add(59*time.Second)); !ok || v != "x" {
		t.Fatalf("live entry: %q %v", v, ok)
	}
	if _, ok := m.Get("a", t0.Add(time.Minute)); ok {
		t.Fatal("an entry is live at its expiry")
	}
	if _, ok := m.Take("a", t0.Add(time.Minute)); ok {
		t.Fatal("Take of an expired entry")
	}
	if m.Len() != 0 {
		t.Fatalf("Take left %d entries", m.Len())
	}
}

func TestMapTakeOnce(t *testing.T) {
	m := NewMap[int](10)
	m.Set("k", 7, t0.Add(time.Hour), t0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := 0
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v, ok := m.Take("k", t0); ok && v == 7 {
				mu.Lock()
				got++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if got != 1 {
		t.Fatalf("taken %d times", got)
	}
}

func TestMapBound(t *testing.T) {
	m := NewMap[int](3)
	m.Set("expired", 0, t0.Add(time.Second), t0)
	m.Set("soon", 1, t0.Add(time.Hour), t0)
	m.Set("late", 2, t0.Add(3*time.Hour), t0)
	now := t0.Add(time.Minute)
	// Full: the expired entry is swept first.
	m.Set("new", 3, t0.Add(2*time.Hour), now)
	if m.Len() != 3 {
		t.Fatalf("%d entries, want 3", m.Len())
	}
	for _, k := range []string{"soon", "late", "new"} {
		if _, ok := m.Get(k, now); !ok {
			t.Fatalf("%s was evicted", k)
		}
	}
	// Full of live entries: the one closest to expiry goes.
	m.Set("newer", 4, t0.Add(4*time.Hour), now)
	if _, ok := m.Get("soon", now); ok || m.Len() != 3 {
		t.Fatalf("soon kept (%d entries)", m.Len())
	}
	// Replacing an existing key evicts nothing.
	m.Set("late", 5, t0.Add(5*time.Hour), now)
	for _, k := range []string{"late", "new", "newer"} {
		if _, ok := m.Get(k, now); !ok {
			t.Fatalf("%s was evicted by a replacement", k)
		}
	}
	for i := range 100 {
		m.Set(fmt.Sprint(i), i, now.Add(time.Duration(i)*time.Minute), now)
	}
	if m.Len() != 3 {
		t.Fatalf("%d entries after 100 sets, want 3", m.Len())
	}
}

func TestMapUpdate(t *testing.T) {
	m := NewMap[int](10)
	inc := func(cur int, found bool) (int, time.Time, bool) { return cur + 1, t0.Add(time.Minute), true }
	if v := m.Update("k", t0, inc); v != 1 {
		t.Fatalf("first update %d", v)
	}
	if v := m.Update("k", t0, inc); v != 2 {
		t.Fatalf("second update %d", v)
	}
	// An expired entry reads as absent.
	m.Update("k", t0.Add(time.Minute), func(cur int, found bool) (int, time.Time, bool) {
		if found || cur != 0 {
			t.Errorf("expired entry seen: %d %v", cur, found)
		}
		return cur, t0, true
	})
	m.Set("d", 1, t0.Add(time.Hour), t0)
	m.Update("d", t0, func(cur int, found bool) (int, time.Time, bool) { return cur, t0, false })
	if _, ok := m.Get("d", t0); ok {
		t.Fatal("keep false kept the entry")
	}
	m.Set("r", 1, t0.Add(time.Hour), t0)
	m.Remove("r")
	if _, ok := m.Get("r", t0); ok {
		t.Fatal("Remove kept the entry")
	}
}

func TestLimiter(t *testing.T) {
	l := NewLimiter(15*time.Minute, 100)
	for i := range 3 {
		if _, ok := l.Reserve("k", 3, t0.Add(time.Duration(i)*time.Minute)); !ok {
			t.Fatalf("attempt %d refused", i+1)
		}
	}
	wait, ok := l.Reserve("k", 3, t0.Add(5*time.Minute))
	if ok || wait != 10*time.Minute {
		t.Fatalf("fourth attempt: %v %v, want refused for 10m", wait, ok)
	}
	if _, ok := l.Reserve("other", 3, t0.Add(5*time.Minute)); !ok {
		t.Fatal("another key is refused")
	}
	// Giving one back lets one more in.
	l.Release("k", false, t0.Add(6*time.Minute))
	if _, ok := l.Reserve("k", 3, t0.Add(6*time.Minute)); !ok {
		t.Fatal("released attempt still refused")
	}
	if _, ok := l.Reserve("k", 3, t0.Add(6*time.Minute)); ok {
		t.Fatal("past the limit again")
	}
	// The window ends 15 minutes after the first attempt.
	if _, ok := l.Reserve("k", 3, t0.Add(15*time.Minute)); !ok {
		t.Fatal("refused after the window")
	}
	// A reset clears the count.
	l.Reserve("k", 3, t0.Add(15*time.Minute))
	l.Reserve("k", 3, t0.Add(15*time.Minute))
	l.Release("k", true, t0.Add(16*time.Minute))
	for i := range 3 {
		if _, ok := l.Reserve("k", 3, t0.Add(16*time.Minute)); !ok {
			t.Fatalf("after reset, attempt %d refused", i+1)
		}
	}
}

func TestLimiterParallel(t *testing.T) {
	l := NewLimiter(time.Hour, 100)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, ok := l.Reserve("k", 5, t0); ok {
				mu.Lock()
				allowed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if allowed != 5 {
		t.Fatalf("%d parallel attempts allowed, want 5", allowed)
	}
}

func TestClientIP(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "192.0.2.7:4321"
	if got := ClientIP(r); got != "192.0.2.7" {
		t.Errorf("peer address: %q", got)
	}
	r.RemoteAddr = "no-port"
	if got := ClientIP(r); got != "no-port" {
		t.Errorf("unsplittable address: %q", got)
	}
	ctx := context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: "203.0.113.9"})
	if got := ClientIP(r.WithContext(ctx)); got != "203.0.113.9" {
		t.Errorf("Caddy's client_ip: %q", got)
	}
}
