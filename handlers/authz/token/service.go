// Package token is the back channel of the authorization server: the token
// endpoint with one file per grant (authorization_code, refresh_token,
// client_credentials), the token response with the id_token, OpenID
// Connect UserInfo, introspection (RFC 7662) and revocation (RFC 7009).
// Apps' servers and libraries call these endpoints, not browsers: they
// need no sign-in session, page, pending request nor CSRF token.
//
// A Service answers nothing by itself: Routes gives its handlers by
// request path, which the front channel (package authz, its parent)
// merges into its own routes. This package never imports authz. The
// parts it shares with the front channel and the guard come in through
// Options: the client registry (clients.Registry), the access-token
// profile (accesstoken.Profile), the users and the reach rule
// (users.Rule).
package token

import (
	"errors"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/handlers/accesstoken"
	"github.com/smartcaddy/smartauth/handlers/clients"
	"github.com/smartcaddy/smartauth/handlers/users"
	"github.com/smartcaddy/smartauth/internal/audit"
	"github.com/smartcaddy/smartauth/internal/metrics"
	"github.com/smartcaddy/smartauth/keys"
)

// Endpoint names, appended to the issuer URL.
const (
	PathToken      = "/token"
	PathUserinfo   = "/userinfo"
	PathIntrospect = "/introspect"
	PathRevoke     = "/revoke"
)

// Lifetimes are the lifetimes the back channel uses. All but RefreshGrace
// must be positive (the front channel passes its configured lifetimes
// with their defaults applied).
type Lifetimes struct {
	// AccessToken is the lifetime of the id_token, and of the access
	// tokens the family revocation must outlive. The access tokens'
	// own lifetime is the accesstoken.Profile's.
	AccessToken time.Duration
	// RefreshToken is the refresh-token lifetime.
	RefreshToken time.Duration
	// Backend is the access-token lifetime of the client_credentials
	// grant (SMART Backend Services: 5 minutes).
	Backend time.Duration
	// RefreshGrace, when positive, lets a client present a refresh token
	// again this long after it was rotated (store.Rotation.Grace). Zero:
	// strict rotation.
	RefreshGrace time.Duration
}

// FamilyRevocation is how long a family revocation must last so that
// every token issued from the family has expired by then.
func (l Lifetimes) FamilyRevocation() time.Duration {
	return max(l.AccessToken, l.RefreshToken)
}

// Options configure a Service. Every field but Logger is required.
type Options struct {
	// Issuer is the authorization server's URL, without a trailing
	// slash: the iss of the id_tokens and introspection answers, the
	// realm of the challenges and the base of the endpoints' paths.
	Issuer *url.URL
	// FHIRBase is the FHIR server's base URL, without a trailing slash:
	// the base of relative fhirUser references.
	FHIRBase *url.URL
	// IntrospectEndpoint and RevokeEndpoint are the absolute URLs of the
	// introspection and revocation endpoints: the audience a client
	// assertion must name there. (At the token endpoint it is the
	// Clients registry's token endpoint.)
	IntrospectEndpoint string
	RevokeEndpoint     string
	// Store redeems codes, keeps and rotates refresh tokens, records
	// revocations and reads sign-in sessions (online_access).
	Store Store
	// Keys sign the id_tokens.
	Keys *keys.Ring
	// Clients finds and authenticates the clients.
	Clients *clients.Registry
	// Tokens mints and verifies the access tokens (shared with the
	// guard).
	Tokens *accesstoken.Profile
	// Users are the users from the configuration, by name.
	Users map[string]*users.User
	// Rule is the reach rule: the refresh grant ends a grant whose
	// patient the user may no longer reach.
	Rule *users.Rule
	// Federation finds the identity providers' users without a
	// configured entry; nil for none.
	Federation *users.Federation
	// Lifetimes are the lifetimes of what the service issues.
	Lifetimes Lifetimes
	// Logger receives the service's logs; nil for none.
	Logger *zap.Logger
	// Metrics counts and times the token endpoint's answers; nil: none.
	Metrics *metrics.Tokens
	// Audit records token issuance, refusals and revocations; nil: none.
	Audit *audit.Trail
}

// Service is the back channel of one issuer. It is immutable after New
// and safe for concurrent use; it holds nothing that needs releasing.
type Service struct {
	cfg    Options
	logger *zap.Logger

	// routes maps exact request paths to endpoint handlers.
	routes map[string]http.HandlerFunc

	// registry finds and authenticates clients (Options.Clients).
	registry *clients.Registry
	// tokens mints and verifies access tokens (Options.Tokens).
	tokens *accesstoken.Profile
	// users is the reach rule (Options.Rule).
	users *users.Rule
}

// New builds a Service and lays out its routes.
func New(opts Options) (*Service, error) {
	if opts.Issuer == nil || opts.FHIRBase == nil || opts.IntrospectEndpoint == "" || opts.RevokeEndpoint == "" ||
		opts.Store == nil || opts.Keys == nil || opts.Clients == nil || opts.Tokens == nil || opts.Rule == nil {
		return nil, errors.New("token: issuer, FHIR base, introspection and revocation endpoints, store, keys, clients, tokens and rule are required")
	}
	if l := opts.Lifetimes; l.AccessToken <= 0 || l.RefreshToken <= 0 || l.Backend <= 0 {
		return nil, errors.New("token: the access-token, refresh-token and backend lifetimes must be positive")
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	s := &Service{
		cfg:      opts,
		logger:   opts.Logger,
		registry: opts.Clients,
		tokens:   opts.Tokens,
		users:    opts.Rule,
	}
	issuerPath := strings.TrimSuffix(opts.Issuer.Path, "/")
	s.routes = map[string]http.HandlerFunc{
		issuerPath + PathToken:      s.serveToken,      // token.go (grants in grant_*.go)
		issuerPath + PathUserinfo:   s.serveUserinfo,   // userinfo.go
		issuerPath + PathIntrospect: s.serveIntrospect, // introspect.go: RFC 7662
		issuerPath + PathRevoke:     s.serveRevoke,     // revoke.go: RFC 7009
	}
	return s, nil
}

// Routes returns the service's handlers keyed by the exact request path
// they answer: the token, userinfo, introspection and revocation
// endpoints under the issuer's path. The map is the caller's.
func (s *Service) Routes() map[string]http.HandlerFunc {
	return maps.Clone(s.routes)
}
