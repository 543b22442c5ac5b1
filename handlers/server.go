// Package handlers is smart_auth's router: it builds the parts of the
// authorization server and the guard from one Config and sends each
// request to the one that answers it.
//
// The parts live in sub-packages, one per concern, which never import one
// another (internal/depcheck enforces it):
//
//   - authz: the authorization server (authorize, sign-in, consent,
//     picker, launcher, EHR launch API, token and one file per grant,
//     userinfo, introspection, revocation, management, discovery, JWKS);
//   - register: dynamic client registration (RFC 7591/7592);
//   - guard: the FHIR resource server in front of the upstream.
//
// Below them, what two of them share: clients (who a client is and how it
// authenticates), accesstoken (the access-token profile: mint, verify,
// revocation check), users (the configured users and the reach rule),
// oauth (the one error type, its writer and the Bearer challenge) and
// internal/throttle (bounded maps and limiters).
//
// Server routes by path: exact paths first (authz's routes, then
// {issuer}/register), then the RFC 7592 client configuration endpoints
// under {issuer}/register/, then everything under the FHIR base to the
// guard. Requests for any other path go to the next handler untouched.
package handlers

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/handlers/accesstoken"
	"github.com/smartcaddy/smartauth/handlers/authz"
	"github.com/smartcaddy/smartauth/handlers/clients"
	"github.com/smartcaddy/smartauth/handlers/guard"
	"github.com/smartcaddy/smartauth/handlers/internal/throttle"
	"github.com/smartcaddy/smartauth/handlers/register"
	"github.com/smartcaddy/smartauth/handlers/users"
	"github.com/smartcaddy/smartauth/internal/audit"
	"github.com/smartcaddy/smartauth/internal/metrics"
	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/store"
)

// Config is everything a Server needs, provisioned by the Caddy module.
type Config struct {
	// Issuer is the authorization server's URL, without a trailing slash.
	Issuer *url.URL
	// FHIRBase is the FHIR server's base URL, without a trailing slash.
	FHIRBase *url.URL
	Store    store.Store
	Keys     *keys.Ring
	// Clients are the clients from the configuration, by id.
	Clients map[string]*store.Client
	// Users are the users from the configuration, by name.
	Users     map[string]*users.User
	Lifetimes authz.Lifetimes
	Logger    *zap.Logger
	// Context, when set (Caddy's), also stops the guard's background
	// work when it is done; Close stops it in any case.
	Context context.Context

	// AccessTokenAlg signs access tokens: "ES256" (default) or "RS256".
	// id_tokens are RS256 unless the client registered ES256.
	AccessTokenAlg string
	// Authz are the authorization server's sign-in and page settings
	// (handlers/authz).
	Authz authz.Settings

	// Guard configures the FHIR API guard (handlers/guard).
	Guard guard.Options
	// Registration configures dynamic client registration
	// (handlers/register).
	Registration register.Settings

	// Metrics records the Prometheus metrics (internal/metrics); nil:
	// none. The module passes metrics.Default(), registered in Caddy's
	// registry.
	Metrics *metrics.Set
	// Audit is the audit trail of token issuance, refusals, sign-ins,
	// consents, revocations and registrations (internal/audit); nil:
	// none.
	Audit *audit.Trail
}

// Server serves the authorization server's endpoints and guards the FHIR
// API. It is immutable after New and safe for concurrent use.
type Server struct {
	cfg    Config
	logger *zap.Logger

	issuerPath string // issuer path without trailing slash, "" for the root
	fhirPath   string // FHIR base path without trailing slash

	// routes maps exact request paths to endpoint handlers.
	routes map[string]http.HandlerFunc

	// authz is the authorization server (handlers/authz).
	authz *authz.Server

	// guard stands in front of the FHIR API; Close stops its poller.
	guard *guard.Guard

	// registry finds and authenticates clients; New acquires its shared
	// state (the JWKS caches), Close releases it.
	registry *clients.Registry
	// tokens mints and verifies access tokens (the issuer and the guard).
	tokens *accesstoken.Profile
	// users is the reach rule (the authorization server and the guard).
	users *users.Rule
	// registrar serves dynamic client registration (RFC 7591/7592).
	registrar *register.Registrar
	// The issuer's state that survives a config reload, from statePool
	// (state.go): the sign-in throttle (authz.Options) and the
	// open-registration throttle (register.go). Released once, by Close.
	// (Pending authorization requests are not state: the browser
	// carries each, sealed; authz's pending.go.)
	logins        *throttle.Limiter
	registrations *throttle.Limiter
	releaseOnce   sync.Once
}

// The kinds of reload-surviving state of an issuer (statePool).
const (
	stateLogins        = "logins"
	stateRegistrations = "registrations"
)

// Endpoint names, appended to the issuer URL (the authorization server's
// are authz's).
const (
	pathAuthorize  = authz.PathAuthorize
	pathToken      = authz.PathToken
	pathUserinfo   = authz.PathUserinfo
	pathJWKS       = authz.PathJWKS
	pathRegister   = "/register"
	pathIntrospect = authz.PathIntrospect
	pathRevoke     = authz.PathRevoke
	pathLaunch     = authz.PathLaunch
	pathManage     = authz.PathManage
)

// New builds a Server from a provisioned configuration.
func New(cfg Config) (*Server, error) {
	if cfg.Issuer == nil || cfg.FHIRBase == nil || cfg.Store == nil || cfg.Keys == nil {
		return nil, errors.New("handlers: issuer, FHIR base, store and keys are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	cfg.Lifetimes = cfg.Lifetimes.WithDefaults()
	s := &Server{
		cfg:        cfg,
		logger:     cfg.Logger,
		issuerPath: strings.TrimSuffix(cfg.Issuer.Path, "/"),
		fhirPath:   strings.TrimSuffix(cfg.FHIRBase.Path, "/"),
		users:      users.New(users.Options{PatientSearch: cfg.Authz.PatientSearch != nil}),
	}
	var err error
	if s.tokens, err = accesstoken.New(accesstoken.Options{
		Issuer:   cfg.Issuer.String(),
		Audience: cfg.FHIRBase.String(),
		Keys:     cfg.Keys,
		Alg:      cfg.AccessTokenAlg,
		Lifetime: cfg.Lifetimes.AccessToken,
		Store:    cfg.Store,
	}); err != nil {
		return nil, err
	}
	if s.registry, err = clients.New(clients.Options{
		Issuer:              cfg.Issuer.String(),
		TokenEndpoint:       s.Endpoint(pathToken),
		Configured:          cfg.Clients,
		Store:               cfg.Store,
		AllowPrivateJWKSURI: cfg.Registration.AllowPrivateJWKSURI,
		Logger:              cfg.Logger,
	}); err != nil {
		return nil, err
	}
	advertised := guard.Endpoints{ // in the CapabilityStatement
		Authorize: s.Endpoint(pathAuthorize), Token: s.Endpoint(pathToken), Manage: s.Endpoint(pathManage),
		Introspect: s.Endpoint(pathIntrospect), Revoke: s.Endpoint(pathRevoke),
	}
	if cfg.Registration.Enabled {
		advertised.Register = s.Endpoint(pathRegister)
	}
	federation := federationOf(cfg.Authz.IdentityProviders)
	if s.guard, err = guard.New(cfg.Guard, guard.Deps{ // stopped by Close
		FHIRBase: cfg.FHIRBase, Tokens: s.tokens, Clients: s.registry, ConfiguredClients: cfg.Clients,
		Users: cfg.Users, Federation: federation, Reach: s.users, Store: cfg.Store, Logger: cfg.Logger, Context: cfg.Context,
		Endpoints: advertised, Metrics: cfg.Metrics.Guard(),
	}); err != nil {
		_ = s.registry.Close()
		return nil, err
	}
	s.acquireSiteState() // released by Close
	if s.authz, err = authz.New(authz.Options{
		Issuer:               cfg.Issuer,
		FHIRBase:             cfg.FHIRBase,
		Store:                cfg.Store,
		Keys:                 cfg.Keys,
		Clients:              s.registry,
		Tokens:               s.tokens,
		Users:                cfg.Users,
		Rule:                 s.users,
		Federation:           federation,
		Lifetimes:            cfg.Lifetimes,
		Settings:             cfg.Authz,
		RegistrationEndpoint: s.registrationEndpoint(),
		Logins:               s.logins,
		Logger:               cfg.Logger,
		Metrics:              cfg.Metrics,
		TokenMetrics:         cfg.Metrics.Tokens(slices.Collect(maps.Keys(cfg.Clients))),
		Audit:                cfg.Audit,
	}); err != nil {
		_ = s.Close()
		return nil, err
	}
	if s.registrar, err = register.New(register.Options{
		Settings:      cfg.Registration,
		Issuer:        cfg.Issuer.String(),
		Endpoint:      s.Endpoint(pathRegister),
		Path:          s.issuerPath + pathRegister,
		Configured:    cfg.Clients,
		Store:         cfg.Store,
		Limiter:       s.registrations,
		TokenLifetime: max(cfg.Lifetimes.AccessToken, cfg.Lifetimes.RefreshToken, cfg.Lifetimes.Backend),
		Logger:        cfg.Logger,
		Metrics:       cfg.Metrics,
		Audit:         cfg.Audit,
	}); err != nil {
		_ = s.Close()
		return nil, err
	}
	s.routes = s.buildRoutes() // routes.go
	return s, nil
}

// federationOf is the policy of the identity providers' users without a
// configured entry, shared by the authorization server and the guard.
func federationOf(list []authz.IdentityProvider) *users.Federation {
	if len(list) == 0 {
		return nil
	}
	m := make(map[string]users.Provider, len(list))
	for _, p := range list {
		m[p.Name] = users.Provider{AcceptUnlisted: p.AcceptUnlisted, Scopes: p.UserScopes}
	}
	return users.NewFederation(m)
}

// acquireSiteState takes the issuer's reload-surviving state from the pool
// (state.go), sharing it with the Server of the config being replaced.
func (s *Server) acquireSiteState() {
	iss := s.cfg.Issuer.String()
	s.logins = acquireShared(stateLogins, iss, authz.NewLoginLimiter)
	s.registrations = acquireShared(stateRegistrations, iss, register.NewLimiter)
}

// releaseSiteState gives the issuer's state back to the pool, once.
func (s *Server) releaseSiteState() {
	if s.logins == nil {
		return // not acquired: New failed
	}
	s.releaseOnce.Do(func() {
		iss := s.cfg.Issuer.String()
		for _, kind := range []string{stateLogins, stateRegistrations} {
			releaseShared(kind, iss)
		}
	})
}

// registrationEndpoint is the dynamic registration URL, or "" when
// registration is off.
func (s *Server) registrationEndpoint() string {
	if !s.cfg.Registration.Enabled {
		return ""
	}
	return s.Endpoint(pathRegister)
}

// Endpoint returns the absolute URL of an endpoint under the issuer.
func (s *Server) Endpoint(name string) string {
	return s.cfg.Issuer.String() + name
}

// ServeHTTP answers the server's own endpoints, guards the FHIR API, and
// passes every other request to next.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h, ok := s.routes[r.URL.Path]; ok {
		h(w, r)
		return nil
	}
	if s.cfg.Registration.Enabled && strings.HasPrefix(r.URL.Path, s.issuerPath+pathRegister+"/") {
		s.registrar.ServeClientConfiguration(w, r) // handlers/register: RFC 7592
		return nil
	}
	if s.guard.Guards(r.URL.Path) { // also non-canonical spellings of the base
		return s.guard.ServeHTTP(w, r, next)
	}
	return next.ServeHTTP(w, r)
}

// Close stops the guard's background work, gives back the issuer's
// reload-surviving state (state.go) and releases the client registry's
// shared state. It is safe to call more than once.
func (s *Server) Close() error {
	s.releaseSiteState()
	if s.guard != nil {
		_ = s.guard.Close()
	}
	if s.registry != nil {
		return s.registry.Close()
	}
	return nil
}
