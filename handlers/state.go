package handlers

import "github.com/caddyserver/caddy/v2"

// statePool holds the in-memory state of each issuer that must survive a
// Caddy config reload: the sign-in and open-registration throttles
// (Server.acquireSiteState). Pending authorization requests are not here:
// the browser carries each, sealed under the store's site secret, so they
// survive reloads and restarts and continue on any instance. Caddy
// provisions a new config before it cleans up the old one, so the new
// Server acquires the state while the old one still holds it, and nothing
// is lost; when the last Server of an issuer is closed, its state goes.
// Keys name the issuer, so that two sites with different issuers share
// nothing. This is the idiom of store/pool.go.
var statePool = caddy.NewUsagePool()

// pooledState makes any value a caddy.Destructor. Nothing needs undoing
// when the last holder lets go: the value is left to the garbage
// collector.
type pooledState struct{ v any }

// Destruct implements caddy.Destructor.
func (pooledState) Destruct() error { return nil }

// stateKey is the pool key of one kind of state of an issuer.
func stateKey(kind, issuer string) string {
	return kind + "\x00" + issuer
}

// acquireShared returns the issuer's state of a kind, made by fresh on
// first use and shared with every other holder of the same kind and
// issuer. Every acquireShared must be matched by exactly one
// releaseShared.
func acquireShared[T any](kind, issuer string, fresh func() *T) *T {
	v, _, _ := statePool.LoadOrNew(stateKey(kind, issuer), func() (caddy.Destructor, error) {
		return pooledState{v: fresh()}, nil
	})
	return v.(pooledState).v.(*T)
}

// releaseShared gives back one acquireShared of the issuer's state of a
// kind.
func releaseShared(kind, issuer string) {
	_, _ = statePool.Delete(stateKey(kind, issuer))
}

// Interface guards
var _ caddy.Destructor = pooledState{}
