// Package clients is who a client is and how it authenticates: the
// registry of clients (from the configuration, then from dynamic
// registration in the store), client authentication at the token,
// introspection and revocation endpoints (client_secret_basic,
// client_secret_post, private_key_jwt with its jti replay check), the
// fetcher of clients' JWK Sets (only public addresses for dynamically
// registered clients), redirect URI matching, and the one policy on a
// client's URLs and keys that the configuration, registration and the
// token endpoint all apply (policy.go).
//
// It never imports the endpoints that use it.
package clients

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/store"
)

// Store is the part of the store a Registry uses: dynamically registered
// clients and the single-use record of client assertions' jti.
// *store.DB satisfies it.
type Store interface {
	// GetClient returns a dynamically registered client or
	// store.ErrNotFound.
	GetClient(ctx context.Context, id string) (*store.Client, error)
	// UseJTI records a JWT id for an issuer (a client id) until exp, or
	// fails with store.ErrReplayed when it was already recorded.
	UseJTI(ctx context.Context, issuer, jti string, exp time.Time) error
}

// Options configure a Registry.
type Options struct {
	// Issuer is the authorization server's URL. It is the realm of the
	// Basic challenge and the key under which the JWKS fetchers and the
	// inline key cache are shared across Caddy reloads.
	Issuer string
	// TokenEndpoint is the token endpoint's URL: the audience a client
	// assertion must name.
	TokenEndpoint string
	// Configured are the clients from the configuration, by id; they
	// take precedence over the store's.
	Configured map[string]*store.Client
	// Store holds dynamically registered clients and used jti values.
	Store Store
	// AllowPrivateJWKSURI lets dynamically registered clients' jwks_uri
	// reach private and loopback addresses (a closed network).
	AllowPrivateJWKSURI bool
	// Logger receives the registry's warnings and errors; nil for none.
	Logger *zap.Logger
}

// Registry finds clients and authenticates them. It is safe for
// concurrent use. New acquires its shared state; Close releases it.
type Registry struct {
	opts   Options
	logger *zap.Logger
	shared *sharedState

	// now is the time of assertion checks, time.Now when nil; jwxOnly
	// sends every client assertion to jwx. Both are for tests
	// (FuzzAssertionFast).
	now     func() time.Time
	jwxOnly bool
	// configuredKeys holds the parsed inline keys of the configured
	// clients, by client (inlineKeys).
	configuredKeys sync.Map

	closeOnce sync.Once
}

// sharedState is what outlives one configuration: the parsed keys of
// clients, fetched (both fetchers) or inline. A Caddy reload builds a new
// Registry for the same issuer before the old one is closed, so the new
// one finds the caches warm.
type sharedState struct {
	// fetcher fetches the jwks_uri of clients from the configuration.
	fetcher *jwksFetcher
	// publicFetcher fetches the jwks_uri of dynamically registered
	// clients and connects only to public addresses (publicnet.go).
	publicFetcher *jwksFetcher
	// inline caches parsed inline JWK Sets.
	inline *inlineKeys
}

// Destruct implements caddy.Destructor. The fetchers hold no goroutine
// beyond a fetch in flight, which ends by its own timeout; their idle
// connections are closed.
func (s *sharedState) Destruct() error {
	s.fetcher.client.CloseIdleConnections()
	s.publicFetcher.client.CloseIdleConnections()
	return nil
}

// pool shares one sharedState per issuer across Caddy configurations.
var pool = caddy.NewUsagePool()

// New builds a Registry and acquires the shared state of its issuer. Every
// Registry must be closed.
func New(o Options) (*Registry, error) {
	if o.Store == nil || o.Issuer == "" || o.TokenEndpoint == "" {
		return nil, errors.New("clients: issuer, token endpoint and store are required")
	}
	logger := o.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	v, _, err := pool.LoadOrNew(o.Issuer, func() (caddy.Destructor, error) {
		return &sharedState{
			fetcher:       newJWKSFetcher(jwksFetchTimeout, jwksMaxBytes),
			publicFetcher: newPublicJWKSFetcher(jwksFetchTimeout, jwksMaxBytes),
			inline:        newInlineKeys(),
		}, nil
	})
	if err != nil {
		return nil, err
	}
	return &Registry{opts: o, logger: logger, shared: v.(*sharedState)}, nil
}

// Close releases the Registry's shared state; the last holder of an
// issuer's state drops it. It is safe to call more than once.
func (r *Registry) Close() error {
	var err error
	r.closeOnce.Do(func() {
		_, err = pool.Delete(r.opts.Issuer)
	})
	return err
}

// Lookup returns a client from the configuration or, failing that, from
// the store (store.ErrNotFound when neither has it).
func (r *Registry) Lookup(ctx context.Context, id string) (*store.Client, error) {
	if c := r.opts.Configured[id]; c != nil {
		return c, nil
	}
	return r.opts.Store.GetClient(ctx, id)
}

// Configured returns the clients from the configuration, in no particular
// order. The slice is the caller's; the clients are shared and must not
// be modified.
func (r *Registry) Configured() []*store.Client {
	out := make([]*store.Client, 0, len(r.opts.Configured))
	for _, c := range r.opts.Configured {
		out = append(out, c)
	}
	return out
}

// IsConfigured tells whether a client id names a client from the
// configuration (which takes precedence over a registered one).
func (r *Registry) IsConfigured(id string) bool {
	return r.opts.Configured[id] != nil
}

// Interface guards
var _ caddy.Destructor = (*sharedState)(nil)
