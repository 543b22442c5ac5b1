// Package smartauth is a Caddy HTTP handler that makes Caddy a SMART App
// Launch 2.2 authorization server and a guard for the FHIR API behind it.
package smartauth

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/handlers"
	"github.com/smartcaddy/smartauth/handlers/authz"
	"github.com/smartcaddy/smartauth/handlers/users"
	"github.com/smartcaddy/smartauth/internal/metrics"
	"github.com/smartcaddy/smartauth/keys"

	_ "github.com/smartcaddy/smartauth/smartcli" // the `caddy smart-auth` command
)

func init() {
	caddy.RegisterModule(&SmartAuth{})
}

// Defaults; the lifetimes' defaults are authz.DefaultLifetimes.
const (
	defaultKeyRotation = 30 * 24 * time.Hour
	// keyPublishAhead is how long a new signing key is in the JWKS before
	// it signs: the JWKS cache lifetime.
	keyPublishAhead = 5 * time.Minute
	// clockLeeway is added to how long a retired key stays published.
	clockLeeway = 5 * time.Minute
)

// SmartAuth is the `smart_auth` HTTP handler: a SMART App Launch 2.2
// authorization server (discovery, JWKS, authorize, token, OpenID Connect)
// and a guard for the FHIR API behind it.
//
// It answers its own endpoints under the issuer URL's path, serves
// `{fhir_base}/.well-known/smart-configuration`, and checks every other
// request under the FHIR base's path before passing it to the next handler
// (typically `reverse_proxy` to the FHIR server). Requests for other paths
// pass through untouched.
//
// State (registered clients, codes, sessions, refresh tokens, signing keys,
// revocations) is kept in a Badger database, shared by every `smart_auth`
// handler that names the same directory and kept across `caddy reload`, or
// in a PostgreSQL database (StoragePostgres), shared the same way per DSN.
//
// Once the guard allows a request to the FHIR API, it sets the following
// placeholders for the handlers after it (`reverse_proxy` `header_up`, the
// guard's own `header` option, `log_append`, matchers). A value the token
// does not carry is left unset, and reads as empty.
//
//	Placeholder | Description
//	------------|-------------
//	`{smart.patient}` | The token's patient context (the `patient` launch context): a Patient id
//	`{smart.encounter}` | The token's encounter context (the `encounter` launch context): an Encounter id
//	`{smart.user}` | The user's FHIR resource (`fhirUser`) as an absolute URL, e.g. `https://fhir.example.org/r4/Practitioner/alice`
//	`{smart.sub}` | The token's subject: the user's name, or the client_id of a backend services token
//	`{smart.client_id}` | The client_id of the app the token was issued to
//	`{smart.scope}` | The token's granted scopes, space-separated
//	`{smart.jti}` | The token's id (`jti`), as in the audit log and in revocations
//	`{http.auth.user.id}` | The token's subject, as Caddy's authentication handlers set it (= `{smart.sub}`)
type SmartAuth struct {
	// Issuer is the authorization server's URL: the `iss` of its tokens
	// and the base of its endpoints (`{issuer}/authorize`,
	// `{issuer}/token`, `{issuer}/jwks`, …). https, except on localhost.
	// Required.
	Issuer string `json:"issuer,omitempty"`

	// FHIRBase is the FHIR server's base URL: the `aud` apps must send and
	// the `iss` given to launched apps. Requests under its path are
	// guarded. https, except on localhost. Required.
	FHIRBase string `json:"fhir_base,omitempty"`

	// Storage is the directory of the Badger database. Default: a
	// `smart_auth` folder in Caddy's data directory. Handlers naming the
	// same directory share one database. Placeholders ({env.*},
	// {file.*}) are resolved at provisioning; an unset one is an error.
	Storage string `json:"storage,omitempty"`

	// StoragePostgres chooses a PostgreSQL database instead of Badger:
	// its DSN (a postgres:// URL or keyword/value pairs; TLS with
	// sslmode=verify-full and sslrootcert=, pool size with
	// pool_max_conns=). The DSN is a secret: give it as a placeholder,
	// {env.SMART_AUTH_DSN} or {file./run/secrets/dsn}, resolved at
	// provisioning, so that only the placeholder is in the JSON config; a
	// literal password is accepted with a warning. Caddyfile: `storage
	// postgres <dsn>`. Handlers (and reloaded configs) with the same DSN
	// share one connection pool. Give Storage or StoragePostgres, not both.
	//
	// A separate string field rather than a store module namespace: there
	// are two built-in stores and no third-party ones, a module namespace
	// would add a `{"module": …}` object for one string, and Storage keeps
	// its meaning, so existing JSON configs stay valid.
	StoragePostgres string `json:"storage_postgres,omitempty"`

	// SigningKeys are PEM files to sign with instead of generated keys,
	// one per algorithm (RS256, ES256). By default both keys are
	// generated on first start and kept in the store.
	SigningKeys []SigningKey `json:"signing_keys,omitempty"`

	// KeyRotation is how long a generated signing key signs before a new
	// one replaces it. Retired keys stay in the JWKS until every token
	// they signed has expired. Default: 30 days. Negative: never rotate.
	KeyRotation caddy.Duration `json:"key_rotation,omitempty"`

	// AccessTokenLifetime is how long an access token (and an id_token)
	// is valid. Default: 1 hour.
	AccessTokenLifetime caddy.Duration `json:"access_token_lifetime,omitempty"`

	// RefreshTokenLifetime is how long a refresh token is valid. Each
	// refresh rotates it. Default: 90 days.
	RefreshTokenLifetime caddy.Duration `json:"refresh_token_lifetime,omitempty"`

	// CodeLifetime is how long an authorization code may be redeemed.
	// Default: 1 minute.
	CodeLifetime caddy.Duration `json:"code_lifetime,omitempty"`

	// LaunchLifetime is how long an EHR launch context waits for the app.
	// Default: 5 minutes.
	LaunchLifetime caddy.Duration `json:"launch_lifetime,omitempty"`

	// SessionLifetime is how long a sign-in session lasts. Default: 8
	// hours.
	SessionLifetime caddy.Duration `json:"session_lifetime,omitempty"`

	// BackendTokenLifetime is how long access tokens from the
	// client_credentials grant (backend services) live. Default: 5m.
	BackendTokenLifetime caddy.Duration `json:"backend_token_lifetime,omitempty"`

	// RefreshGracePeriod is how long after a refresh token was rotated
	// the same client may present it again (its answer was lost) and get
	// a new successor, which invalidates the previous one, provided that
	// one was not used. Outside it, a rotated token presented again
	// revokes its family. 0 to 5m; default 0: strict rotation.
	RefreshGracePeriod caddy.Duration `json:"refresh_grace_period,omitempty"`

	// AccessTokenAlg is the algorithm access tokens are signed with:
	// "ES256" (default; about thirty times cheaper to sign than RS256) or
	// "RS256". id_tokens are RS256, the OpenID Connect default, unless
	// the client registered id_token_signed_response_alg ES256.
	AccessTokenAlg string `json:"access_token_alg,omitempty"`

	// SignIn lists how users sign in: "password" (the built-in sign-in
	// form against the configured users), "trusted_identity" (the
	// identity a preceding Caddy authentication handler such as
	// basic_auth or forward_auth set in {http.auth.user.id}, mapped to a
	// configured user by name) and "identity_provider" (the configured
	// IdentityProviders, offered on the sign-in page; with no password
	// sign-in and one provider, the page goes straight to it).
	// Default: ["password"].
	SignIn []string `json:"sign_in,omitempty"`

	// RememberConsent, when set, remembers a user's consent for a client
	// and scope set for this long, so that the consent page is skipped
	// next time. Default: ask every time.
	RememberConsent caddy.Duration `json:"remember_consent,omitempty"`

	// FrameAncestors are the origins (such as an EHR's) allowed to show
	// the consent, patient-picker and launcher pages in a frame. The
	// sign-in page can only be framed by its own origin. Default: none
	// but the server's own origin.
	FrameAncestors []string `json:"frame_ancestors,omitempty"`

	// Templates is a directory of HTML templates that replace the
	// built-in pages by file name (login.html, consent.html, …).
	// Placeholders are resolved at provisioning, as for Storage.
	Templates string `json:"templates,omitempty"`

	// PatientSearch is the base URL of the FHIR server the patient picker
	// searches by name (`GET Patient?name=…`), for users who have no
	// configured `patients` list. The server calls it directly, without a
	// token, so give the upstream's internal address (the one
	// reverse_proxy uses), not the guarded public FHIR base. Off when
	// empty.
	PatientSearch string `json:"patient_search,omitempty"`

	// Pages brands the pages and names where they read patients' names
	// from. See PagesConfig.
	Pages *PagesConfig `json:"pages,omitempty"`

	// Guard configures the checks in front of the FHIR API: CORS origins,
	// operations, resource types outside the patient compartment, headers
	// passed upstream. See GuardConfig.
	Guard *GuardConfig `json:"guard,omitempty"`

	// Registration enables dynamic client registration (RFC 7591/7592),
	// off when absent. See RegistrationConfig.
	Registration *RegistrationConfig `json:"registration,omitempty"`

	// Clients are the applications registered in the configuration.
	Clients []ClientConfig `json:"clients,omitempty"`

	// Users are the people who can sign in.
	Users []UserConfig `json:"users,omitempty"`

	// IdentityProviders are the OpenID Providers users may sign in
	// through (sign_in identity_provider). See IdentityProviderConfig.
	IdentityProviders []IdentityProviderConfig `json:"identity_providers,omitempty"`
	// AuditEvents also writes the audit trail as FHIR AuditEvent
	// resources, to a file or a FHIR server. See AuditEventsConfig.
	AuditEvents *AuditEventsConfig `json:"audit_events,omitempty"`

	logger     *zap.Logger
	storageDir string // Badger directory, set once acquired
	pgKey      string // key of the PostgreSQL store in pgPool, set once acquired
	server     *handlers.Server
	// adminUnregister removes the handler from the admin API (admin.go).
	adminUnregister func()
	// auditSink and releaseKeys are the audit trail's AuditEvent writer
	// and the key ring's metrics registration (telemetry.go).
	auditSink   interface{ Close() error }
	releaseKeys func()
}

// CaddyModule returns the Caddy module information.
func (*SmartAuth) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.smart_auth",
		New: func() caddy.Module { return new(SmartAuth) },
	}
}

// Provision validates the configuration, resolves secrets, opens (or
// shares) the store and loads the signing keys.
func (s *SmartAuth) Provision(ctx caddy.Context) error {
	s.logger = ctx.Logger()
	s.setDefaults()
	if err := s.Validate(); err != nil {
		return err
	}
	config := configIdentity(ctx)
	if err := s.checkSiblings(config); err != nil { // config_warnings.go
		return err
	}
	for _, w := range append(s.warnings(), s.routeWarnings(ctx)...) { // routes_check.go
		s.logger.Warn(w)
	}
	issuer, _ := checkServerURL(s.Issuer)
	fhirBase, _ := checkServerURL(s.FHIRBase)
	if issuer.Scheme == "http" || fhirBase.Scheme == "http" {
		s.logger.Warn("issuer or fhir_base uses plain http: acceptable for local development only",
			zap.String("issuer", issuer.String()), zap.String("fhir_base", fhirBase.String()))
	}

	clients, err := s.provisionClients()
	if err != nil {
		return err
	}
	idps, err := s.provisionIdentityProviders()
	if err != nil {
		return err
	}
	people := make(map[string]*users.User, len(s.Users))
	for _, u := range s.Users {
		people[u.Name] = &users.User{Name: u.Name, PasswordHash: u.PasswordHash, FHIRUser: u.FHIRUser, DisplayName: u.DisplayName, Patients: u.Patients, Scopes: u.Scopes}
	}
	files, err := s.keyFiles()
	if err != nil {
		return err
	}
	templates, err := expandPath("templates", s.Templates)
	if err != nil {
		return err
	}

	rawDB, err := s.acquireStore(ctx)
	if err != nil {
		return err
	}
	db, trail, err := s.provisionTelemetry(ctx, rawDB) // telemetry.go
	if err != nil {
		return err
	}

	rotation := time.Duration(s.KeyRotation)
	if rotation < 0 {
		rotation = 0
	}
	if rotation > 0 && rotation < 2*keyPublishAhead {
		// Accepted (tests shorten it), but said: a successor is published
		// keyPublishAhead before it signs and rings check for due
		// rotations once a minute, so keys change less often than asked.
		s.logger.Warn("key_rotation is shorter than twice the successor's publication lead: keys rotate at most every few minutes",
			zap.Duration("key_rotation", rotation), zap.Duration("publish_ahead", keyPublishAhead))
	}
	ring, err := keys.New(ctx, keys.Options{
		Store:          db,
		Logger:         s.logger.Named("keys"),
		RotationPeriod: rotation,
		PublishAhead:   keyPublishAhead,
		Retain:         time.Duration(s.AccessTokenLifetime) + clockLeeway,
		Files:          files,
	})
	if err != nil {
		return fmt.Errorf("signing_key: %w", err)
	}
	go ring.Maintain(ctx)
	s.watchKeys(ring)

	var patientSearch *url.URL
	if s.PatientSearch != "" {
		patientSearch, _ = checkUpstreamURL(s.PatientSearch)
	}
	branding, patientNames, err := s.Pages.options()
	if err != nil {
		return fmt.Errorf("pages: %w", err)
	}
	guardOpts, err := s.Guard.options()
	if err != nil {
		return fmt.Errorf("guard: %w", err)
	}
	regOpts, err := s.Registration.options()
	if err != nil {
		return fmt.Errorf("registration: %w", err)
	}
	s.server, err = handlers.New(handlers.Config{
		Issuer:   issuer,
		FHIRBase: fhirBase,
		Store:    db,
		Keys:     ring,
		Clients:  clients,
		Users:    people,
		Lifetimes: authz.Lifetimes{
			AccessToken:  time.Duration(s.AccessTokenLifetime),
			RefreshToken: time.Duration(s.RefreshTokenLifetime),
			Code:         time.Duration(s.CodeLifetime),
			Launch:       time.Duration(s.LaunchLifetime),
			Session:      time.Duration(s.SessionLifetime),
			Backend:      time.Duration(s.BackendTokenLifetime),
			RefreshGrace: time.Duration(s.RefreshGracePeriod),
		},
		Logger:         s.logger,
		Context:        ctx,
		AccessTokenAlg: s.AccessTokenAlg,
		Authz: authz.Settings{
			PasswordLogin:   slices.Contains(s.SignIn, signInPassword),
			TrustedIdentity: slices.Contains(s.SignIn, signInTrusted),
			RememberConsent: time.Duration(s.RememberConsent),
			FrameAncestors:  s.FrameAncestors,
			TemplatesDir:    templates,
			PatientSearch:   patientSearch,
			PatientNames:    patientNames,
			Branding:        branding,

			IdentityProviders: idps,
		},
		Guard:        guardOpts,
		Registration: regOpts,
		Metrics:      metrics.Default(),
		Audit:        trail,
	})
	if err != nil {
		return err
	}
	s.registerAdmin(config, rawDB, db, ring, clients, trail) // admin.go
	return nil
}

// Cleanup releases the store, if this instance acquired it. Caddy calls
// Cleanup after a failed Provision too, so it must not release what it
// never took.
func (s *SmartAuth) Cleanup() error {
	s.unregisterAdmin() // admin.go
	if s.server != nil {
		_ = s.server.Close() // stops the guard's poller before the store goes
	}
	s.cleanupTelemetry() // telemetry.go
	return s.releaseStore()
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (s *SmartAuth) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if s.server == nil {
		return caddyhttp.Error(http.StatusInternalServerError, errors.New("smart_auth is not provisioned"))
	}
	return s.server.ServeHTTP(w, r, next)
}

// Interface guards
var (
	_ caddy.Module                = (*SmartAuth)(nil)
	_ caddy.Provisioner           = (*SmartAuth)(nil)
	_ caddy.Validator             = (*SmartAuth)(nil)
	_ caddy.CleanerUpper          = (*SmartAuth)(nil)
	_ caddyhttp.MiddlewareHandler = (*SmartAuth)(nil)
)
