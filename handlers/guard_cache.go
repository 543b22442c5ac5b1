package handlers

import (
	"context"
	"crypto/sha256"
	"net/url"
	"sync"
	"time"

	"go.uber.org/zap"

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
)

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
	// userScopes: the user's reach allows user/ scopes (reach.go);
	// confined: the user is a patient, and every scope is confined to
	// their own compartment (patient is then their own record).
	userScopes, confined bool
}

// guardState is the guard's mutable state: the verified-token cache, the
// revocations seen in the store's log, and the dynamic clients' origins.
// One lives per Server; Close stops its poller.
type guardState struct {
	mu        sync.RWMutex
	tokens    map[[sha256.Size]byte]*principal
	revJTI    map[string]time.Time // jti → until
	revFamily map[string]time.Time // family → until
	revClient map[string]time.Time // client → latest At

	// origins are the CORS origins; dynOrigins those of dynamically
	// registered clients, refreshed by the poller.
	anyOrigin  bool
	origins    map[string]bool
	dynOrigins map[string]bool // guarded by mu

	outside map[string]bool // resource types allowed outside the compartment
	audit   *zap.Logger     // the decisions' logger (guard_audit.go)

	since    time.Time // where the next revocation read starts
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// initGuard builds the guard state: it loads the revocation log and the
// dynamic clients' origins, then starts the poller that keeps them up to
// date until Close.
func (s *Server) initGuard() error {
	g := &guardState{
		tokens:     map[[sha256.Size]byte]*principal{},
		revJTI:     map[string]time.Time{},
		revFamily:  map[string]time.Time{},
		revClient:  map[string]time.Time{},
		origins:    map[string]bool{},
		dynOrigins: map[string]bool{},
		outside:    map[string]bool{},
		audit:      s.logger.Named("guard"),
		since:      time.Unix(0, 0),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	for _, t := range s.cfg.Guard.OutsideCompartment {
		g.outside[t] = true
	}
	if len(s.cfg.Guard.CORSOrigins) > 0 {
		for _, o := range s.cfg.Guard.CORSOrigins {
			if o == "*" {
				g.anyOrigin = true
			}
			g.origins[o] = true
		}
	} else {
		for _, c := range s.cfg.Clients {
			addClientOrigins(g.origins, c)
		}
	}
	s.gs = g
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.pollRevocations(ctx); err != nil {
		return err
	}
	s.refreshOrigins(ctx)
	go s.guardPoller()
	return nil
}

// Close stops the guard's background work, gives back the issuer's
// reload-surviving state (state.go) and releases the client registry's
// shared state. It is safe to call more than once.
func (s *Server) Close() error {
	s.releaseSiteState()
	if s.gs != nil {
		s.gs.stopOnce.Do(func() { close(s.gs.stop) })
		<-s.gs.done
	}
	if s.registry != nil {
		return s.registry.Close()
	}
	return nil
}

// guardPoller reads the revocation log every revocationPoll and the
// dynamic clients' origins every originsRefresh polls.
func (s *Server) guardPoller() {
	g := s.gs
	defer close(g.done)
	t := time.NewTicker(revocationPoll)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-g.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.pollRevocations(ctx); err != nil {
			s.logger.Error("guard: reading the revocation log", zap.Error(err))
		}
		if n%originsRefresh == 0 {
			s.refreshOrigins(ctx)
		}
		cancel()
	}
}

// pollRevocations reads the revocations recorded since the last read,
// remembers them and drops the cached tokens they hit.
func (s *Server) pollRevocations(ctx context.Context) error {
	g := s.gs
	revs, err := s.cfg.Store.RevokedSince(ctx, g.since)
	if err != nil {
		return err
	}
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, rev := range revs {
		switch rev.Kind {
		case store.RevokedToken:
			g.revJTI[rev.ID] = rev.Until
		case store.RevokedFamily:
			g.revFamily[rev.ID] = rev.Until
		case store.RevokedClient:
			if rev.At.After(g.revClient[rev.ID]) {
				g.revClient[rev.ID] = rev.At
			}
		}
		if rev.At.After(g.since) {
			g.since = rev.At
		}
	}
	if len(revs) > 0 {
		for k, p := range g.tokens {
			if g.revokedLocked(p) {
				delete(g.tokens, k)
			}
		}
	}
	for id, until := range g.revJTI {
		if until.Before(now) {
			delete(g.revJTI, id)
		}
	}
	for id, until := range g.revFamily {
		if until.Before(now) {
			delete(g.revFamily, id)
		}
	}
	return nil
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

// remember caches a verified principal unless a revocation already hits
// it; it tells whether the principal is still good.
func (g *guardState) remember(key [sha256.Size]byte, p *principal, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.revokedLocked(p) {
		return false
	}
	if len(g.tokens) >= tokenCacheMax {
		for k, q := range g.tokens {
			if !now.Before(q.exp) {
				delete(g.tokens, k)
			}
		}
		if len(g.tokens) >= tokenCacheMax {
			clear(g.tokens)
		}
	}
	g.tokens[key] = p
	return true
}

// refreshOrigins reloads the origins of dynamically registered clients
// (only when CORS origins are not configured).
func (s *Server) refreshOrigins(ctx context.Context) {
	if len(s.cfg.Guard.CORSOrigins) > 0 {
		return
	}
	clients, err := s.cfg.Store.ListClients(ctx)
	if err != nil {
		s.logger.Error("guard: listing registered clients", zap.Error(err))
		return
	}
	dyn := map[string]bool{}
	for _, c := range clients {
		addClientOrigins(dyn, c)
	}
	s.gs.mu.Lock()
	s.gs.dynOrigins = dyn
	s.gs.mu.Unlock()
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
