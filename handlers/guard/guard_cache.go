package guard

import (
	"context"
	"crypto/sha256"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/internal/metrics"
	"github.com/smartcaddy/smartauth/scopes"
	"github.com/smartcaddy/smartauth/store"
)

// Cache and revocation-poll parameters of the guard.
const (
	// revocationPoll is how often the guard reads the store's revocation
	// log: a revocation reaches the guard within this (plus a read).
	revocationPoll = 250 * time.Millisecond
	// originsRefresh is how often the origins of dynamically registered
	// clients are reloaded, in revocation polls.
	originsRefresh = 8
	// tokenCacheMax bounds the verified-token cache; when full, expired
	// entries are dropped, and if that is not enough, all of them.
	tokenCacheMax = 1 << 16
	// revocationOverlap is how far back before the newest revocation seen
	// each read starts again. A store shared by several instances (or
	// with concurrent writers) can make a revocation visible after a
	// later-stamped one: its transaction commits late, or its instance's
	// clock is behind. Reading again is harmless: a revocation already
	// known changes nothing.
	revocationOverlap = 30 * time.Second
)

// farFuture is pruneAt while no jti or family revocation is known.
var farFuture = time.Unix(1<<62, 0)

// principal is a verified access token: who, for which client, with what.
// It is immutable once cached.
type principal struct {
	clientID, sub, scope   string
	patient, encounter     string
	fhirUser, jti, family  string
	iat, exp               time.Time
	granted                []scopes.Scope
	userBound, clientBound []scopes.Scope // nil: no bound
	hasUser                bool           // sub is a configured user
	// userScopes: the user's reach allows user/ scopes (users.Rule);
	// confined: the user is a patient, and every scope is confined to
	// their own compartment (patient is then their own record).
	userScopes, confined bool
}

// guardState is the guard's mutable state: the verified-token cache, the
// revocations seen in the store's log, and the dynamic clients' origins.
// One lives per Guard; Close stops its poller.
type guardState struct {
	mu        sync.RWMutex
	tokens    map[[sha256.Size]byte]*principal
	refused   negCache             // tokens refused for good (negcache.go)
	revJTI    map[string]time.Time // jti → until
	revFamily map[string]time.Time // family → until
	revClient map[string]time.Time // client → latest At
	revUser   map[string]time.Time // user (sub) → latest At

	// origins are the CORS origins; dynOrigins those of dynamically
	// registered clients, refreshed by the poller.
	anyOrigin  bool
	origins    map[string]bool
	dynOrigins map[string]bool // guarded by mu

	outside map[string]bool // resource types allowed outside the compartment
	audit   *zap.Logger     // the decisions' logger (guard_audit.go)
	// metrics records the cache's size and the revocation lag (nil:
	// off); loaded is set once the initial read of the revocation log is
	// done (its revocations are old: no lag is recorded for them).
	metrics *metrics.Guard
	loaded  bool // only the poller reads and sets it, after initState
	closed  bool // guarded by mu: Close emptied the cache, which stays empty

	since time.Time // where the next revocation read starts; only the poller reads and sets it
	// readAt is when the last successful read of the revocation log
	// started (Unix nanoseconds); staleAfter is how old it may get before
	// cached tokens are refused (0: never).
	readAt     atomic.Int64
	staleAfter time.Duration
	pruneAt    time.Time // when the first jti or family revocation runs out
	stop       chan struct{}
	done       chan struct{}
	stopOnce   sync.Once
}

// initState builds the guard state: it loads the revocation log and the
// dynamic clients' origins, then starts the poller that keeps them up to
// date until Close or until ctx (when not nil) is done.
func (g *Guard) initState(ctx context.Context, configured map[string]*store.Client) error {
	gs := &guardState{
		tokens:     map[[sha256.Size]byte]*principal{},
		revJTI:     map[string]time.Time{},
		revFamily:  map[string]time.Time{},
		revClient:  map[string]time.Time{},
		revUser:    map[string]time.Time{},
		origins:    map[string]bool{},
		dynOrigins: map[string]bool{},
		outside:    map[string]bool{},
		audit:      g.logger.Named("guard"),
		metrics:    g.metrics,
		since:      time.Unix(0, 0),
		pruneAt:    farFuture,
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	switch st := g.opts.RevocationStaleness; {
	case st == 0:
		gs.staleAfter = DefaultRevocationStaleness
	case st > 0:
		gs.staleAfter = st
	}
	for _, t := range g.opts.OutsideCompartment {
		gs.outside[t] = true
	}
	if len(g.opts.CORSOrigins) > 0 {
		for _, o := range g.opts.CORSOrigins {
			if o == "*" {
				gs.anyOrigin = true
			}
			gs.origins[o] = true
		}
	} else {
		for _, c := range configured {
			addClientOrigins(gs.origins, c)
		}
	}
	g.gs = gs
	load, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.pollRevocations(load); err != nil {
		return err
	}
	g.refreshOrigins(load)
	gs.loaded = true
	var stopped <-chan struct{} // nil: only Close stops the poller
	if ctx != nil {
		stopped = ctx.Done()
	}
	go g.poll(stopped)
	return nil
}

// Close stops the guard's background work (the revocation poller and the
// refresh of the dynamic clients' origins). It is safe to call more than
// once, and after the context given in Deps is done.
func (g *Guard) Close() error {
	g.gs.stopOnce.Do(func() { close(g.gs.stop) })
	<-g.gs.done
	gs := g.gs
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if !gs.closed {
		gs.closed = true
		gs.metrics.CacheSize(-len(gs.tokens)) // the cache leaves the gauge with the guard
		clear(gs.tokens)
	}
	return nil
}

// poll reads the revocation log every revocationPoll and the dynamic
// clients' origins every originsRefresh polls, until Close or until
// stopped is closed.
func (g *Guard) poll(stopped <-chan struct{}) {
	defer close(g.gs.done)
	t := time.NewTicker(revocationPoll)
	defer t.Stop()
	var failingSince time.Time // zero while reads succeed
	refusing := false          // cached tokens are refused: the view is stale
	for n := 1; ; n++ {
		select {
		case <-g.gs.stop:
			return
		case <-stopped:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		// A failing store is logged when reads start failing, then once a
		// minute, and when they succeed again: not four times a second.
		switch err := g.pollRevocations(ctx); {
		case err != nil && (failingSince.IsZero() || n%(int(time.Minute/revocationPoll)) == 0):
			if failingSince.IsZero() {
				failingSince = time.Now()
			}
			g.logger.Error("guard: reading the revocation log", zap.Error(err),
				zap.Duration("failing_for", time.Since(failingSince).Round(time.Second)))
		case err == nil && !failingSince.IsZero():
			g.logger.Info("guard: reading the revocation log again",
				zap.Duration("failed_for", time.Since(failingSince).Round(time.Second)))
			failingSince = time.Time{}
		}
		switch stale := g.gs.stale(time.Now()); {
		case stale && !refusing:
			g.logger.Error("guard: the revocation log has not been read for longer than revocation_staleness: cached tokens are refused (503) until it is",
				zap.Duration("revocation_staleness", g.gs.staleAfter))
		case !stale && refusing:
			g.logger.Info("guard: the revocation log is current again: cached tokens are served")
		}
		refusing = g.gs.stale(time.Now())
		if n%originsRefresh == 0 {
			g.refreshOrigins(ctx)
		}
		cancel()
	}
}

// pollRevocations reads the revocations recorded since the newest one
// seen, less revocationOverlap, remembers the new ones and drops the
// cached tokens they hit.
func (g *Guard) pollRevocations(ctx context.Context) error {
	gs := g.gs
	from := gs.since
	if !from.IsZero() && from.After(time.Unix(0, 0).Add(revocationOverlap)) {
		from = from.Add(-revocationOverlap)
	}
	started := time.Now()
	revs, err := g.store.RevokedSince(ctx, from)
	if err != nil {
		return err
	}
	// Whatever this read brings is applied below before the next poll
	// runs, and only the poller writes readAt.
	defer gs.readAt.Store(started.UnixNano())
	for _, rev := range revs {
		if rev.At.After(gs.since) {
			gs.since = rev.At
		}
	}
	now := time.Now()
	// The overlap re-reads revocations already known on every poll: when
	// none is new and none has run out, the cache is left alone and the
	// write lock (which stalls requests) is never taken.
	gs.mu.RLock()
	idle := !now.After(gs.pruneAt)
	for i := 0; idle && i < len(revs); i++ {
		idle = !gs.newRevocationLocked(revs[i], now)
	}
	gs.mu.RUnlock()
	if idle {
		return nil
	}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	changed := false
	for _, rev := range revs {
		if !gs.newRevocationLocked(rev, now) {
			continue
		}
		switch rev.Kind {
		case store.RevokedToken:
			gs.revJTI[rev.ID] = rev.Until
		case store.RevokedFamily:
			gs.revFamily[rev.ID] = rev.Until
		case store.RevokedClient:
			gs.revClient[rev.ID] = rev.At
		case store.RevokedUser:
			gs.revUser[rev.ID] = rev.At
		}
		if !rev.Kind.ByIssueTime() && rev.Until.Before(gs.pruneAt) {
			gs.pruneAt = rev.Until
		}
		if gs.loaded {
			gs.metrics.RevocationApplied(rev.At)
		}
		changed = true
	}
	if changed {
		before := len(gs.tokens)
		for k, p := range gs.tokens {
			if gs.revokedLocked(p) {
				delete(gs.tokens, k)
			}
		}
		gs.metrics.CacheSize(len(gs.tokens) - before)
	}
	if now.After(gs.pruneAt) {
		gs.pruneLocked(now)
	}
	return nil
}

// newRevocationLocked tells whether rev tells the guard something it does
// not know yet: a revocation still in force that it has not recorded, or
// one that lasts longer or (for a client) reaches later tokens. g.mu is
// held, for reading at least.
func (g *guardState) newRevocationLocked(rev store.Revocation, now time.Time) bool {
	if !rev.Kind.ByIssueTime() && rev.Until.Before(now) {
		return false // over: no token it names is still valid
	}
	switch rev.Kind {
	case store.RevokedToken:
		until, ok := g.revJTI[rev.ID]
		return !ok || rev.Until.After(until)
	case store.RevokedFamily:
		until, ok := g.revFamily[rev.ID]
		return !ok || rev.Until.After(until)
	case store.RevokedClient:
		return rev.At.After(g.revClient[rev.ID])
	case store.RevokedUser:
		return rev.At.After(g.revUser[rev.ID])
	}
	return false
}

// pruneLocked drops the jti and family revocations that have run out (no
// token they name is still valid) and sets pruneAt to when the next one
// runs out; g.mu is held for writing.
func (g *guardState) pruneLocked(now time.Time) {
	g.pruneAt = farFuture
	for _, m := range [...]map[string]time.Time{g.revJTI, g.revFamily} {
		for id, until := range m {
			switch {
			case until.Before(now):
				delete(m, id)
			case until.Before(g.pruneAt):
				g.pruneAt = until
			}
		}
	}
}

// revokedLocked tells whether a known revocation hits p; g.mu is held.
func (g *guardState) revokedLocked(p *principal) bool {
	if _, ok := g.revJTI[p.jti]; ok {
		return true
	}
	if p.family != "" {
		if _, ok := g.revFamily[p.family]; ok {
			return true
		}
	}
	if at, ok := g.revClient[p.clientID]; ok && !p.iat.After(at) {
		return true
	}
	if at, ok := g.revUser[p.sub]; ok && p.sub != p.clientID && !p.iat.After(at) {
		return true
	}
	return false
}

// cached returns the live, unrevoked principal of a token hash.
func (g *guardState) cached(key [sha256.Size]byte, now time.Time) *principal {
	g.mu.RLock()
	defer g.mu.RUnlock()
	p := g.tokens[key]
	if p == nil || !now.Before(p.exp) || g.revokedLocked(p) {
		return nil
	}
	return p
}

// stale tells whether the last successful read of the revocation log
// started more than staleAfter before now, so that cached tokens must not
// be served (Options.RevocationStaleness).
func (g *guardState) stale(now time.Time) bool {
	return g.staleAfter > 0 && now.UnixNano()-g.readAt.Load() > int64(g.staleAfter)
}

// remember caches a verified principal unless a revocation already hits
// it; it tells whether the principal is still good.
func (g *guardState) remember(key [sha256.Size]byte, p *principal, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.revokedLocked(p) {
		return false
	}
	if g.closed {
		return true // the guard is closed: good, but no longer cached
	}
	before := len(g.tokens)
	defer func() { g.metrics.CacheSize(len(g.tokens) - before) }()
	makeRoom(g.tokens, tokenCacheMax, func(q *principal) bool { return !now.Before(q.exp) })
	g.tokens[key] = p
	return true
}

// refreshOrigins reloads the origins of dynamically registered clients
// (only when CORS origins are not configured).
func (g *Guard) refreshOrigins(ctx context.Context) {
	if len(g.opts.CORSOrigins) > 0 {
		return
	}
	clients, err := g.store.ListClients(ctx)
	if err != nil {
		g.logger.Error("guard: listing registered clients", zap.Error(err))
		return
	}
	dyn := map[string]bool{}
	for _, c := range clients {
		addClientOrigins(dyn, c)
	}
	g.gs.mu.Lock()
	g.gs.dynOrigins = dyn
	g.gs.mu.Unlock()
}

// addClientOrigins adds the origins of a client's redirect and launch URIs.
func addClientOrigins(set map[string]bool, c *store.Client) {
	for _, raw := range append(append([]string(nil), c.RedirectURIs...), c.LaunchURI) {
		if u, err := url.Parse(raw); err == nil && u.Scheme != "" && u.Host != "" {
			set[u.Scheme+"://"+u.Host] = true
		}
	}
}

// originAllowed tells whether browser apps on origin may call the API.
func (g *guardState) originAllowed(origin string) bool {
	if g.anyOrigin || g.origins[origin] {
		return true
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.dynOrigins[origin]
}
