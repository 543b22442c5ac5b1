// Package handlers holds the HTTP endpoints of the authorization server and
// the guard in front of the FHIR API, one file per endpoint or concern.
//
// Server routes a request by path: the discovery documents and the JWKS,
// the OAuth endpoints under the issuer's path, and everything under the
// FHIR base to the guard. Requests for any other path go to the next
// handler untouched.
package handlers

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/handlers/accesstoken"
	"github.com/smartcaddy/smartauth/handlers/clients"
	"github.com/smartcaddy/smartauth/handlers/guard"
	"github.com/smartcaddy/smartauth/handlers/internal/throttle"
	"github.com/smartcaddy/smartauth/handlers/users"
	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/store"
)

// User is a person who can sign in, from the configuration (users.User;
// the alias keeps the files of the authorization server short until they
// move to their own package).
type User = users.User

// Lifetimes are how long issued artifacts live.
type Lifetimes struct {
	AccessToken  time.Duration
	RefreshToken time.Duration
	Code         time.Duration
	Launch       time.Duration
	Session      time.Duration
	// Backend is the access-token lifetime of the client_credentials
	// grant (SMART Backend Services: 5 minutes).
	Backend time.Duration
	// RefreshGrace, when positive, lets a client present a refresh token
	// again this long after it was rotated (its answer was lost) and get
	// a new successor instead of having the family revoked, as long as
	// the previous successor was not used (store.Rotation.Grace). Zero,
	// also by default: strict rotation.
	RefreshGrace time.Duration
}

// DefaultLifetimes apply to every lifetime the configuration leaves zero.
var DefaultLifetimes = Lifetimes{
	AccessToken:  time.Hour,
	RefreshToken: 90 * 24 * time.Hour,
	Code:         time.Minute,
	Launch:       5 * time.Minute,
	Session:      8 * time.Hour,
	Backend:      5 * time.Minute,
}

// withDefaults fills zero lifetimes from DefaultLifetimes.
func (l Lifetimes) withDefaults() Lifetimes {
	for _, f := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&l.AccessToken, DefaultLifetimes.AccessToken},
		{&l.RefreshToken, DefaultLifetimes.RefreshToken},
		{&l.Code, DefaultLifetimes.Code},
		{&l.Launch, DefaultLifetimes.Launch},
		{&l.Session, DefaultLifetimes.Session},
		{&l.Backend, DefaultLifetimes.Backend},
	} {
		if *f.v <= 0 {
			*f.v = f.def
		}
	}
	return l
}

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
	Lifetimes Lifetimes
	Logger    *zap.Logger
	// Context, when set (Caddy's), also stops the guard's background
	// work when it is done; Close stops it in any case.
	Context context.Context

	// AccessTokenAlg signs access tokens: "ES256" (default) or "RS256".
	// id_tokens are always RS256.
	AccessTokenAlg string
	// PasswordLogin enables the built-in sign-in form.
	PasswordLogin bool
	// TrustedIdentity signs a user in from {http.auth.user.id}, set by a
	// preceding Caddy authentication handler, mapped to a configured
	// user by name.
	TrustedIdentity bool
	// RememberConsent, when positive, remembers a user's consent for a
	// client and scope set for this long.
	RememberConsent time.Duration
	// FrameAncestors are the origins allowed to frame the consent,
	// picker and launcher pages (an EHR embedding apps). The login page
	// is only ever framable by 'self'. Empty: 'self' only.
	FrameAncestors []string
	// TemplatesDir, when set, holds operator templates that replace the
	// embedded ones by file name.
	TemplatesDir string

	// PatientSearch, when set, is the FHIR base URL the patient picker
	// searches by name (GET Patient?name=…) for users without a configured
	// patient list. The server calls it directly, without a token.
	PatientSearch *url.URL

	// Guard configures the FHIR API guard (package guard).
	Guard guard.Options
	// Registration configures dynamic client registration (register.go).
	Registration RegistrationOptions
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

	smartConfig []byte
	oidcConfig  []byte

	// Filled by the endpoint files' init functions (see routes.go).
	pages *pages

	// guard stands in front of the FHIR API; Close stops its poller.
	guard *guard.Guard

	// registry finds and authenticates clients; New acquires its shared
	// state (the JWKS caches), Close releases it.
	registry *clients.Registry
	// tokens mints and verifies access tokens (the issuer and the guard).
	tokens *accesstoken.Profile
	// users is the reach rule (the authorization server and the guard).
	users *users.Rule
	// The issuer's state that survives a config reload, from statePool
	// (state.go): pending authorization requests (pending.go), the
	// sign-in throttle (login.go) and the open-registration throttle
	// (register.go). Released once, by Close.
	pending       *throttle.Map[pendingAuthorization]
	logins        *throttle.Limiter
	registrations *throttle.Limiter
	releaseOnce   sync.Once
}

// The kinds of reload-surviving state of an issuer (statePool).
const (
	statePending       = "pending"
	stateLogins        = "logins"
	stateRegistrations = "registrations"
)

// Endpoint names, appended to the issuer URL.
const (
	pathAuthorize  = "/authorize"
	pathToken      = "/token"
	pathUserinfo   = "/userinfo"
	pathJWKS       = "/jwks"
	pathRegister   = "/register"
	pathIntrospect = "/introspect"
	pathRevoke     = "/revoke"
	pathLaunch     = "/launch"
	pathManage     = "/manage"
)

// New builds a Server from a provisioned configuration.
func New(cfg Config) (*Server, error) {
	if cfg.Issuer == nil || cfg.FHIRBase == nil || cfg.Store == nil || cfg.Keys == nil {
		return nil, errors.New("handlers: issuer, FHIR base, store and keys are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	cfg.Lifetimes = cfg.Lifetimes.withDefaults()
	s := &Server{
		cfg:        cfg,
		logger:     cfg.Logger,
		issuerPath: strings.TrimSuffix(cfg.Issuer.Path, "/"),
		fhirPath:   strings.TrimSuffix(cfg.FHIRBase.Path, "/"),
		users:      users.New(users.Options{PatientSearch: cfg.PatientSearch != nil}),
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
	if s.smartConfig, err = s.buildSMARTConfiguration(); err != nil {
		return nil, err
	}
	if s.oidcConfig, err = s.buildOpenIDConfiguration(); err != nil {
		return nil, err
	}
	s.routes = map[string]http.HandlerFunc{
		s.fhirPath + "/.well-known/smart-configuration":          s.serveSMARTConfiguration,
		s.issuerPath + "/.well-known/openid-configuration":       s.serveOpenIDConfiguration,
		"/.well-known/oauth-authorization-server" + s.issuerPath: s.serveOpenIDConfiguration,
		s.issuerPath + pathJWKS:                                  s.serveJWKS,
	}
	// SMART clients that strip the base path look at the site root too.
	if s.fhirPath != "" {
		if _, taken := s.routes["/.well-known/smart-configuration"]; !taken {
			s.routes["/.well-known/smart-configuration"] = s.serveSMARTConfiguration
		}
	}
	if err := s.addRoutes(); err != nil {
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
	if s.guard, err = guard.New(cfg.Guard, guard.Deps{ // stopped by Close
		FHIRBase: cfg.FHIRBase, Tokens: s.tokens, Clients: s.registry, ConfiguredClients: cfg.Clients,
		Users: cfg.Users, Reach: s.users, Store: cfg.Store, Logger: cfg.Logger, Context: cfg.Context,
		Endpoints: advertised,
	}); err != nil {
		_ = s.registry.Close()
		return nil, err
	}
	s.acquireSiteState() // released by Close
	return s, nil
}

// acquireSiteState takes the issuer's reload-surviving state from the pool
// (state.go), sharing it with the Server of the config being replaced.
func (s *Server) acquireSiteState() {
	iss := s.cfg.Issuer.String()
	s.pending = acquireShared(statePending, iss, func() *throttle.Map[pendingAuthorization] {
		return throttle.NewMap[pendingAuthorization](pendingAuthorizationMax)
	})
	s.logins = acquireShared(stateLogins, iss, func() *throttle.Limiter {
		return throttle.NewLimiter(loginFailureWindow, loginLimiterMaxEntries)
	})
	s.registrations = acquireShared(stateRegistrations, iss, func() *throttle.Limiter {
		return throttle.NewLimiter(openRegistrationWindow, openRegistrationMaxAddresses)
	})
}

// releaseSiteState gives the issuer's state back to the pool, once.
func (s *Server) releaseSiteState() {
	if s.pending == nil {
		return // not acquired: New failed
	}
	s.releaseOnce.Do(func() {
		iss := s.cfg.Issuer.String()
		for _, kind := range []string{statePending, stateLogins, stateRegistrations} {
			releaseShared(kind, iss)
		}
	})
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
		s.serveClientConfiguration(w, r) // register_manage.go: RFC 7592
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
