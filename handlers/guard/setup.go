package guard

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/handlers/accesstoken"
	"github.com/smartcaddy/smartauth/handlers/clients"
	"github.com/smartcaddy/smartauth/handlers/users"
	"github.com/smartcaddy/smartauth/internal/metrics"
	"github.com/smartcaddy/smartauth/store"
)

// Guard stands in front of the FHIR API (ServeHTTP). Its configuration is
// immutable after New; its token cache and revocation view are kept up to
// date by a background poller until Close. It is safe for concurrent use.
type Guard struct {
	opts     Options
	base     string // the FHIR base URL: the challenges' realm, the base of references
	fhirPath string // the FHIR base's path without a trailing slash
	tokens   *accesstoken.Profile
	registry *clients.Registry
	users    map[string]*users.User
	// federation finds identity providers' users without a configured
	// entry (Deps.Federation).
	federation *users.Federation
	reach      *users.Rule
	store      Store
	logger     *zap.Logger
	endpoints  Endpoints
	metrics    *metrics.Guard // nil: metrics off

	// gs is the token cache, the revocations seen and the dynamic
	// clients' origins (guard_cache.go).
	gs *guardState
}

// Deps are what the guard needs at run time besides the operator's
// Options, wired by the router from its configuration.
type Deps struct {
	// FHIRBase is the FHIR server's base URL, without a trailing slash:
	// the guarded path, the realm of the Bearer challenges and the base
	// of absolute references. Required.
	FHIRBase *url.URL
	// Tokens verifies the access tokens (signature, typ, iss, aud, exp,
	// nbf, revocation). Required.
	Tokens *accesstoken.Profile
	// Clients finds a token's client, whose configured scopes bound
	// system/ scopes and whose removal invalidates its tokens. Required.
	Clients *clients.Registry
	// ConfiguredClients are the clients from the configuration, by id:
	// their redirect and launch URIs' origins are the default CORS
	// origins (with those of dynamically registered clients).
	ConfiguredClients map[string]*store.Client
	// Users are the users from the configuration, by name: a token's user
	// must still be one, and their configured scopes bound user/ and
	// patient/ scopes.
	Users map[string]*users.User
	// Federation finds identity providers' users without a configured
	// entry, from what their access token says; nil for none.
	Federation *users.Federation
	// Reach is the reach rule: which patients a token's user may have in
	// context, and whether user/ scopes count. Required.
	Reach *users.Rule
	// Store holds the revocation log and the dynamically registered
	// clients. Required.
	Store Store
	// Logger is the module's logger; the audit entries go to its child
	// "guard". Nil: none.
	Logger *zap.Logger
	// Endpoints are the URLs the CapabilityStatement advertises.
	Endpoints Endpoints
	// Context, when not nil, stops the guard's background work when it is
	// done (Caddy's context), as Close does.
	Context context.Context
	// Metrics records decisions, the token cache and the revocation lag;
	// nil: none.
	Metrics *metrics.Guard
}

// Endpoints are the authorization server's URLs that the guard adds to the
// FHIR server's CapabilityStatement (the oauth-uris extension). An empty
// one is left out (Register, when registration is off).
type Endpoints struct {
	Authorize  string
	Token      string
	Register   string
	Manage     string
	Introspect string
	Revoke     string
}

// Store is the part of the store the guard reads: the revocation log,
// polled into the token cache, and the dynamically registered clients,
// whose origins are CORS origins. *store.DB satisfies it.
type Store interface {
	// RevokedSince lists the revocations recorded at or after since,
	// oldest first.
	RevokedSince(ctx context.Context, since time.Time) ([]store.Revocation, error)
	// ListClients returns every dynamically registered client, by id.
	ListClients(ctx context.Context) ([]*store.Client, error)
}

// New builds a Guard: it loads the revocation log and the dynamic
// clients' origins, and starts the poller that keeps them current until
// Close (or until deps.Context is done). Every Guard must be closed.
func New(opts Options, deps Deps) (*Guard, error) {
	if deps.FHIRBase == nil || deps.Tokens == nil || deps.Clients == nil || deps.Reach == nil || deps.Store == nil {
		return nil, errors.New("guard: FHIR base, token profile, clients, reach rule and store are required")
	}
	logger := deps.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	g := &Guard{
		opts:       opts,
		base:       deps.FHIRBase.String(),
		fhirPath:   strings.TrimSuffix(deps.FHIRBase.Path, "/"),
		tokens:     deps.Tokens,
		registry:   deps.Clients,
		users:      deps.Users,
		federation: deps.Federation,
		reach:      deps.Reach,
		store:      deps.Store,
		logger:     logger,
		endpoints:  deps.Endpoints,
		metrics:    deps.Metrics,
	}
	if err := g.initState(deps.Context, deps.ConfiguredClients); err != nil { // guard_cache.go
		return nil, err
	}
	return g, nil
}
