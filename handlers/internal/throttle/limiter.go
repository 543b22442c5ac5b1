package throttle

import (
	"net"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Limiter counts attempts per key over a fixed window. Once a key's count
// reaches its limit, Reserve refuses it, with the time left, until the
// window that began with the key's first attempt ends. An attempt is
// counted when it starts, so that parallel attempts cannot race past the
// limit; a caller may give it back (Release). It is safe for concurrent
// use; the number of keys it remembers is bounded (Map).
type Limiter struct {
	window time.Duration
	counts *Map[count]
}

// count is a key's attempts in its current window.
type count struct {
	n     int
	until time.Time // end of the window
}

// NewLimiter returns a Limiter with the given window that remembers at
// most maxKeys keys.
func NewLimiter(window time.Duration, maxKeys int) *Limiter {
	return &Limiter{window: window, counts: NewMap[count](maxKeys)}
}

// Reserve counts an attempt against key unless its limit is reached; then
// it returns how long to wait and false.
func (l *Limiter) Reserve(key string, limit int, now time.Time) (wait time.Duration, ok bool) {
	l.counts.Update(key, now, func(cur count, found bool) (count, time.Time, bool) {
		if !found {
			cur = count{until: now.Add(l.window)}
		}
		if cur.n >= limit {
			wait = cur.until.Sub(now)
			return cur, cur.until, true
		}
		cur.n++
		ok = true
		return cur, cur.until, true
	})
	return wait, ok
}

// Release gives back one attempt of key (a sign-in that succeeded); reset
// clears the key's count altogether.
func (l *Limiter) Release(key string, reset bool, now time.Time) {
	l.counts.Update(key, now, func(cur count, found bool) (count, time.Time, bool) {
		if !found || reset || cur.n <= 1 {
			return cur, now, false
		}
		cur.n--
		return cur, cur.until, true
	})
}

// ClientIP is the address a request comes from, the key of per-address
// limits: Caddy's client_ip (which honours trusted_proxies), else the
// peer address.
func ClientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
