// Package authz is the authorization server of SMART App Launch. Its front
// channel, which browsers visit, is here: the authorization endpoint and
// its pages (sign-in, patient picker, consent, launcher, the user's
// authorized apps), the EHR launch API, the discovery documents and the
// JWKS. Its back channel, which apps' servers call (the token endpoint
// and its grants, userinfo, introspection, revocation), is the
// sub-package token: New builds a token.Service from the same Options and
// Routes merges its routes.
//
// A Server answers nothing by itself: Routes gives the router (package
// handlers) a handler per request path. The parts it shares with the guard
// and registration come in through Options: the client registry
// (clients.Registry), the access-token profile (accesstoken.Profile), the
// reach rule (users.Rule), and the issuer's state that survives a Caddy
// reload (the sign-in limiter), which the router keeps. Pending
// authorization requests are kept by no one: the browser carries each,
// sealed (pending.go, seal.go), so that every instance of a scaled-out
// authorization server continues it.
package authz

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/handlers/accesstoken"
	"github.com/smartcaddy/smartauth/handlers/authz/token"
	"github.com/smartcaddy/smartauth/handlers/clients"
	"github.com/smartcaddy/smartauth/handlers/internal/throttle"
	"github.com/smartcaddy/smartauth/handlers/users"
	"github.com/smartcaddy/smartauth/internal/audit"
	"github.com/smartcaddy/smartauth/internal/metrics"
	"github.com/smartcaddy/smartauth/keys"
)

// Endpoint names, appended to the issuer URL.
const (
	PathAuthorize  = "/authorize"
	PathToken      = token.PathToken
	PathUserinfo   = token.PathUserinfo
	PathJWKS       = "/jwks"
	PathIntrospect = token.PathIntrospect
	PathRevoke     = token.PathRevoke
	PathLaunch     = "/launch"
	PathManage     = "/manage"
)

// Paths of the pages under the issuer.
const (
	pathLogin    = "/login"
	pathLogout   = "/logout"
	pathConsent  = "/consent"
	pathPicker   = "/select-patient"
	pathLauncher = "/launcher"
)

// Options configure a Server. Issuer, FHIRBase, Store, Keys, Clients,
// Tokens, Rule and Logins are required.
type Options struct {
	// Issuer is the authorization server's URL, without a trailing
	// slash: the iss of its tokens and the base of its endpoints.
	Issuer *url.URL
	// FHIRBase is the FHIR server's base URL, without a trailing slash:
	// the aud an authorization request must name, the base of fhirUser
	// and of the discovery document at
	// {FHIRBase}/.well-known/smart-configuration.
	FHIRBase *url.URL
	// Store holds sessions, codes, launches, refresh tokens, consents
	// and revocations, and lists the registered clients. The token
	// service gets it too.
	Store Store
	// Keys sign the id_tokens and are published at the JWKS endpoint.
	Keys *keys.Ring
	// Clients finds and authenticates the clients, configured or
	// registered.
	Clients *clients.Registry
	// Tokens mints and verifies the access tokens (shared with the
	// guard).
	Tokens *accesstoken.Profile
	// Users are the users from the configuration, by name.
	Users map[string]*users.User
	// Rule is the reach rule: which patients a user may have in context
	// and which scopes a user may grant (shared with the guard).
	Rule *users.Rule
	// Federation finds the identity providers' users without a
	// configured entry (shared with the guard); nil for none.
	Federation *users.Federation
	// Lifetimes are how long issued artifacts live; zero fields take
	// DefaultLifetimes.
	Lifetimes Lifetimes
	// Settings are the operator's sign-in and page settings.
	Settings
	// RegistrationEndpoint is the URL of dynamic client registration,
	// listed in the discovery documents; empty when registration is off.
	RegistrationEndpoint string
	// Logins is the issuer's sign-in throttle (NewLoginLimiter). The
	// router keeps it across config reloads.
	Logins *throttle.Limiter
	// Logger receives the server's logs; nil for none.
	Logger *zap.Logger
	// Metrics counts sign-ins; TokenMetrics the token endpoint's answers
	// (its recorder knows the configured clients). Nil: none.
	Metrics      *metrics.Set
	TokenMetrics *metrics.Tokens
	// Audit records sign-ins, consents, token issuance and revocations;
	// nil: none.
	Audit *audit.Trail
}

// Settings are the operator's settings of the authorization server's
// sign-in and pages, from the Caddyfile; the router passes them through
// unchanged (handlers.Config.Authz).
type Settings struct {
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
	// searches by name (GET Patient?name=…) for users without a
	// configured patient list. The server calls it directly, without a
	// token.
	PatientSearch *url.URL
	// PatientNames, when set, is the FHIR base URL the pages read
	// patients from (GET Patient/{id}, without a token) to show their
	// name, birth date, gender and MRN; New defaults it to
	// PatientSearch. Nil: patients are shown by id.
	PatientNames *url.URL
	// Branding is the organisation's name, logo and accent colour on
	// every page (branding.go).
	Branding Branding
	// IdentityProviders are the OpenID Providers users may sign in
	// through (idp.go), in the order the sign-in page offers them.
	IdentityProviders []IdentityProvider
}

// Server is the authorization server of one issuer. It is immutable after
// New and safe for concurrent use. It holds nothing that needs releasing:
// its reload-surviving state and the client registry are the caller's.
type Server struct {
	cfg    Options
	logger *zap.Logger

	issuerPath string // issuer path without trailing slash, "" for the root
	fhirPath   string // FHIR base path without trailing slash

	// routes maps exact request paths to endpoint handlers, the token
	// service's included.
	routes map[string]http.HandlerFunc

	// tokenService is the back channel (package token), built from
	// the same Options.
	tokenService *token.Service

	smartConfig []byte
	oidcConfig  []byte

	// pages renders the pages (pages.go).
	pages *pageRenderer
	// sessions are the sign-in sessions and the forms' CSRF check
	// (session.go).
	sessions *sessions

	// registry finds and authenticates clients (Options.Clients).
	registry *clients.Registry
	// tokens mints and verifies access tokens (Options.Tokens).
	tokens *accesstoken.Profile
	// users is the reach rule (Options.Rule).
	users *users.Rule
	// pending seals and opens the issuer's pending authorization
	// requests (pending.go).
	pending *pendingRequests
	// logins is the issuer's sign-in throttle (login.go), from
	// Options.Logins.
	logins *throttle.Limiter
	// keys are the site keys (seal.go); the identity providers' sign-in
	// state is sealed with them (idp_state.go).
	keys *siteKeys
	// idps are the identity providers' relying parties by name, idpOrder
	// their names as configured (idp.go).
	idps     map[string]*idpClient
	idpOrder []string
	// patientNames caches patients read for the pages (patientnames.go).
	patientNames *patientNameCache
}

// siteKeysTimeout bounds reading the site secret when a Server is built.
const siteKeysTimeout = 30 * time.Second

// New builds a Server: it reads the site secret (creating it on the
// store's first start) and derives the flow's keys from it, parses the
// page templates and the discovery documents and lays out the routes.
func New(opts Options) (*Server, error) {
	if opts.Issuer == nil || opts.FHIRBase == nil || opts.Store == nil || opts.Keys == nil ||
		opts.Clients == nil || opts.Tokens == nil || opts.Rule == nil || opts.Logins == nil {
		return nil, errors.New("authz: issuer, FHIR base, store, keys, clients, tokens, rule and sign-in limiter are required")
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	opts.Lifetimes = opts.Lifetimes.WithDefaults()
	s := &Server{
		cfg:        opts,
		logger:     opts.Logger,
		issuerPath: strings.TrimSuffix(opts.Issuer.Path, "/"),
		fhirPath:   strings.TrimSuffix(opts.FHIRBase.Path, "/"),
		registry:   opts.Clients,
		tokens:     opts.Tokens,
		users:      opts.Rule,
		logins:     opts.Logins,

		patientNames: &patientNameCache{},
	}
	if s.cfg.PatientNames == nil {
		s.cfg.PatientNames = s.cfg.PatientSearch
	}
	ctx, cancel := context.WithTimeout(context.Background(), siteKeysTimeout)
	defer cancel()
	keys, err := loadSiteKeys(ctx, opts.Store)
	if err != nil {
		return nil, err
	}
	s.keys = keys
	if s.idps, s.idpOrder, err = newIDPClients(opts.IdentityProviders, opts.Logger); err != nil {
		return nil, err
	}
	if s.tokenService, err = token.New(token.Options{
		Issuer:             opts.Issuer,
		FHIRBase:           opts.FHIRBase,
		IntrospectEndpoint: s.Endpoint(PathIntrospect),
		RevokeEndpoint:     s.Endpoint(PathRevoke),
		Store:              opts.Store,
		Keys:               opts.Keys,
		Clients:            opts.Clients,
		Tokens:             opts.Tokens,
		Users:              opts.Users,
		Rule:               opts.Rule,
		Federation:         opts.Federation,
		Lifetimes:          opts.Lifetimes.token(),
		Logger:             opts.Logger,
		Metrics:            opts.TokenMetrics,
		Audit:              opts.Audit,
	}); err != nil {
		return nil, err
	}
	if s.smartConfig, err = s.buildSMARTConfiguration(); err != nil {
		return nil, err
	}
	if s.oidcConfig, err = s.buildOpenIDConfiguration(); err != nil {
		return nil, err
	}
	if s.pages, err = newPageRenderer(opts.TemplatesDir, opts.Branding, opts.FrameAncestors, opts.Logger); err != nil {
		return nil, err
	}
	s.sessions = &sessions{
		store:      opts.Store,
		issuer:     opts.Issuer,
		issuerPath: s.issuerPath,
		lifetime:   opts.Lifetimes.Session,
		users:      opts.Users,
		federation: opts.Federation,
		pages:      s.pages,
		logger:     opts.Logger,
		keys:       keys,
	}
	s.pending = &pendingRequests{
		keys:     keys,
		issuer:   opts.Issuer.String(),
		used:     opts.Store,
		sessions: s.sessions,
		pages:    s.pages,
		now:      time.Now,
	}
	s.addRoutes()
	return s, nil
}

// addRoutes lays out the routes: the discovery documents and the JWKS
// first, then SMART's site-root fallback, then the OAuth and OpenID
// endpoints and the pages under the issuer's path, the token service's
// included, each only where no earlier route took its path. Each endpoint
// lives in its own file.
func (s *Server) addRoutes() {
	s.routes = map[string]http.HandlerFunc{
		s.fhirPath + "/.well-known/smart-configuration":          s.serveSMARTConfiguration,
		s.issuerPath + "/.well-known/openid-configuration":       s.serveOpenIDConfiguration,
		"/.well-known/oauth-authorization-server" + s.issuerPath: s.serveOpenIDConfiguration,
		s.issuerPath + PathJWKS:                                  s.serveJWKS,
	}
	// SMART clients that strip the base path look at the site root too.
	if s.fhirPath != "" {
		if _, taken := s.routes["/.well-known/smart-configuration"]; !taken {
			s.routes["/.well-known/smart-configuration"] = s.serveSMARTConfiguration
		}
	}
	endpoints := s.tokenService.Routes() // token, userinfo, introspect, revoke: package token
	for p, h := range map[string]http.HandlerFunc{
		PathAuthorize: s.serveAuthorize, // authorize.go
		pathLogin:     s.serveLogin,     // login.go
		pathLogout:    s.serveLogout,    // login.go
		pathConsent:   s.serveConsent,   // consent.go
		pathPicker:    s.servePicker,    // picker.go
		PathLaunch:    s.serveLaunch,    // launch.go: the EHR launch API
		pathLauncher:  s.serveLauncher,  // launcher.go: the launcher page
		PathManage:    s.serveManage,    // manage.go: the user's authorized apps
	} {
		endpoints[s.issuerPath+p] = h
	}
	for p, h := range map[string]http.HandlerFunc{
		pathIDPStart:    s.serveIDPStart,    // idp_flow.go: sign-in through an identity provider
		pathIDPCallback: s.serveIDPCallback, // idp_flow.go
	} {
		if len(s.idps) == 0 {
			break
		}
		endpoints[s.issuerPath+p] = h
	}
	for p, h := range endpoints {
		if _, taken := s.routes[p]; !taken {
			s.routes[p] = h
		}
	}
}

// Routes returns the server's handlers keyed by the exact request path
// they answer: the discovery documents (at the FHIR base, the issuer and
// the site root), the JWKS, the OAuth endpoints and the pages. The map is
// the caller's.
func (s *Server) Routes() map[string]http.HandlerFunc {
	return maps.Clone(s.routes)
}

// Endpoint returns the absolute URL of an endpoint under the issuer.
func (s *Server) Endpoint(name string) string {
	return s.cfg.Issuer.String() + name
}
