// Package register is dynamic client registration: the registration
// endpoint of RFC 7591 at {issuer}/register (register.go), the client
// configuration endpoint of RFC 7592 at {issuer}/register/{client_id}
// (manage.go), the checks on a client's metadata (metadata.go) and on an
// inline JWK Set (jwks.go). A Registrar, built by New from Options, serves
// both endpoints; the router (package handlers) routes to it.
//
// The rules on a client's URLs and keys are the clients package's, the
// same the configuration and the token endpoint apply. It never imports
// the authorization server, the guard nor the router.
package register

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/handlers/internal/throttle"
	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/internal/audit"
	"github.com/smartcaddy/smartauth/internal/metrics"
	"github.com/smartcaddy/smartauth/store"
)

// Settings are the operator's choices for dynamic client registration
// (RFC 7591) and the management of registered clients (RFC 7592), from the
// configuration; the zero value leaves registration off.
type Settings struct {
	// Enabled turns the registration endpoint on.
	Enabled bool
	// Open lets anyone register a client, without an initial access
	// token. Clients registered this way cannot use client_credentials:
	// backend access to system/ scopes needs an operator's approval.
	Open bool
	// InitialAccessTokenHash is the initial access token a registration
	// request must present as a Bearer token, hashed with
	// store.HashSecret. With Enabled set and neither Open nor a hash, every
	// registration is refused.
	InitialAccessTokenHash string
	// AllowPrivateJWKSURI lets registered clients' jwks_uri reach private
	// and loopback addresses. Off: they are fetched only from public
	// addresses (clients/publicnet.go), so that registering cannot make
	// the server call internal services. The client registry
	// (clients.Options) applies it when it fetches the keys.
	AllowPrivateJWKSURI bool
}

// Store is the part of the store registration uses: dynamically
// registered clients. *store.DB satisfies it.
type Store interface {
	// GetClient returns a dynamically registered client or
	// store.ErrNotFound.
	GetClient(ctx context.Context, id string) (*store.Client, error)
	// PutClient creates or replaces a dynamically registered client.
	PutClient(ctx context.Context, c *store.Client) error
	// UpdateClient reads a dynamically registered client and writes back
	// what fn returns, in one transaction (store.Store.UpdateClient).
	UpdateClient(ctx context.Context, id string, fn func(c *store.Client) (*store.Client, error)) error
	// RemoveClient deletes a dynamically registered client and revokes
	// every token issued to it until revokeUntil, in one transaction
	// that check may refuse (store.Store.RemoveClient).
	RemoveClient(ctx context.Context, id string, check func(c *store.Client) error, revokeUntil time.Time) error
}

// Options configure a Registrar: the operator's Settings and what the
// router wires in.
type Options struct {
	Settings

	// Issuer is the authorization server's URL: the realm of the Bearer
	// challenges of the registration and client configuration endpoints.
	Issuer string
	// Endpoint is the registration endpoint's URL ({issuer}/register).
	// A registered client's configuration endpoint, its
	// registration_client_uri, is Endpoint + "/" + client_id.
	Endpoint string
	// Path is the registration endpoint's request path (Endpoint's path,
	// without a trailing slash). The client configuration endpoint takes
	// the client id from what follows Path + "/".
	Path string
	// Configured are the clients from the configuration, by id: a new
	// client never takes one of their ids, and the client configuration
	// endpoint never finds them.
	Configured map[string]*store.Client
	// Store holds the registered clients.
	Store Store
	// Limiter counts open registrations per address
	// (OpenRegistrationsPerIP in OpenRegistrationWindow). It is the
	// issuer's and survives config reloads (the router keeps it); make
	// one with NewLimiter. Used only when Open is set.
	Limiter *throttle.Limiter
	// TokenLifetime is the longest any token issued to a client can live
	// (access, refresh and backend tokens): deleting a registered client
	// revokes its tokens for this long, plus a margin.
	TokenLifetime time.Duration
	// Logger receives registrations, updates, deletions and refusals
	// (never a secret); nil for none.
	Logger *zap.Logger
	// Metrics counts registrations; Audit records them. Nil: none.
	Metrics *metrics.Set
	Audit   *audit.Trail
}

// Registrar serves dynamic client registration (RFC 7591) and the client
// configuration endpoint (RFC 7592). It is immutable after New and safe
// for concurrent use; it holds no background work and needs no closing.
type Registrar struct {
	opts   Options
	logger *zap.Logger
}

// New builds a Registrar. With registration off (Settings.Enabled false)
// it answers every request with a 404 error.
func New(o Options) (*Registrar, error) {
	if o.Store == nil || o.Limiter == nil || o.Issuer == "" || o.Endpoint == "" || o.Path == "" {
		return nil, errors.New("register: issuer, endpoint and its path, store and limiter are required")
	}
	logger := o.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	return &Registrar{opts: o, logger: logger}, nil
}

// Enabled tells whether registration is on.
func (s *Registrar) Enabled() bool { return s.opts.Enabled }

// Limits on registration requests.
const (
	// registrationMaxBody bounds a registration request's JSON body.
	registrationMaxBody = 64 << 10
	// registrationMaxRedirects bounds the redirect URIs of one client.
	registrationMaxRedirects = 20
	// registrationMaxKeys bounds the keys of an inline JWK Set.
	registrationMaxKeys = 10
	// registrationMaxScopes bounds the scopes of one client.
	registrationMaxScopes = 100
	// registrationMaxName bounds client_name, in bytes.
	registrationMaxName = 200
)

// ServeRegister is the client registration endpoint (RFC 7591): POST
// {issuer}/register with the client's metadata as JSON. It answers 201
// with the registered metadata, the new client_id, a client_secret for a
// symmetric client, and a registration access token for the client
// configuration endpoint at registration_client_uri (manage.go).
func (s *Registrar) ServeRegister(w http.ResponseWriter, r *http.Request) {
	if !s.opts.Enabled {
		oauth.Write(w, registrationDisabled())
		return
	}
	if oauth.AllowAnyOrigin(w, r, "POST, OPTIONS") {
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		oauth.Write(w, &oauth.Error{Status: http.StatusMethodNotAllowed, Code: oauth.CodeInvalidRequest,
			Description: "the registration endpoint accepts only POST"})
		return
	}
	if !s.registrationAllowed(w, r) {
		s.recordRegistration(r, "", &oauth.Error{Code: oauth.CodeInvalidToken, Description: "no valid initial access token"})
		return
	}
	md, fault := readClientMetadata(w, r)
	if fault != nil {
		s.refuseNew(w, r, fault)
		return
	}
	if md.SoftwareStatement != "" {
		s.refuseNew(w, r, oauth.New(oauth.CodeInvalidSoftwareStatement, "software statements are not supported; send the metadata as plain JSON fields"))
		return
	}
	reg, fault := s.checkClientMetadata(md, s.opts.Open)
	if fault != nil {
		s.refuseNew(w, r, fault)
		return
	}

	if wait, ok := s.reserveOpenRegistration(r); !ok {
		s.recordRegistration(r, "", &oauth.Error{Code: "throttled", Description: "too many registrations from this address"})
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		oauth.Write(w, &oauth.Error{Status: http.StatusTooManyRequests, Code: oauth.CodeInvalidRequest,
			Description: "too many registrations from this address; try again later"})
		return
	}
	info, fault := s.createClient(r, reg)
	s.recordRegistration(r, info.id(), fault)
	if fault != nil {
		oauth.Write(w, fault)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	oauth.WriteJSON(w, http.StatusCreated, info)
}

// createClient stores a checked registration under a new client id, with
// a new registration access token and, for a symmetric client, a new
// secret, and returns the registration response (RFC 7591 §3.2.1).
func (s *Registrar) createClient(r *http.Request, reg *registration) (*clientInformation, *oauth.Error) {
	id, err := s.newClientID(r)
	if err != nil {
		return nil, s.registrationServerFault("choosing a client id", err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	regToken := store.NewSecret()
	c := reg.client(id)
	c.IssuedAt = now
	c.RegistrationTokenHash = store.HashID(regToken)
	var secret string
	if c.Type == store.ClientConfidentialSymmetric {
		secret = store.NewSecret()
		c.SecretHash = store.HashSecret(secret)
	}
	if err := s.opts.Store.PutClient(r.Context(), c); err != nil {
		return nil, s.registrationServerFault("storing a registered client", err)
	}
	s.logger.Info("client registered",
		zap.String("client_id", c.ID),
		zap.String("client_type", c.Type),
		zap.Strings("grant_types", c.GrantTypes),
		zap.String("remote_ip", r.RemoteAddr))
	return s.clientInformation(c, secret, regToken), nil
}

// Open registration throttling: OpenRegistrationsPerIP bounds the clients
// one address may register in OpenRegistrationWindow when registration is
// open: each is a synced write to the store that nobody had to
// authenticate for. The counts (Options.Limiter, made by NewLimiter) are
// the issuer's and live in the router's reload-surviving state.
const (
	// OpenRegistrationsPerIP is how many clients one address may register
	// in a window.
	OpenRegistrationsPerIP = 20
	// OpenRegistrationWindow is the window of OpenRegistrationsPerIP.
	OpenRegistrationWindow = 15 * time.Minute
	// openRegistrationMaxAddresses bounds the addresses counted at once.
	openRegistrationMaxAddresses = 50000
)

// NewLimiter returns a fresh throttle of open registrations, for
// Options.Limiter.
func NewLimiter() *throttle.Limiter {
	return throttle.NewLimiter(OpenRegistrationWindow, openRegistrationMaxAddresses)
}

// reserveOpenRegistration counts a registration against the caller's
// address when registration is open; with an initial access token the
// caller is trusted and nothing is counted.
func (s *Registrar) reserveOpenRegistration(r *http.Request) (time.Duration, bool) {
	if !s.opts.Open {
		return 0, true
	}
	return s.opts.Limiter.Reserve(throttle.ClientIP(r), OpenRegistrationsPerIP, time.Now())
}

// registrationAllowed checks the initial access token, unless
// registration is open. It writes the error response when it refuses.
func (s *Registrar) registrationAllowed(w http.ResponseWriter, r *http.Request) bool {
	opts := s.opts
	if opts.Open {
		return true
	}
	tok, ok := oauth.BearerToken(r)
	switch {
	case !ok:
		oauth.Write(w, s.registrationTokenRefused(false, "an initial access token is required (Authorization: Bearer)"))
		return false
	case opts.InitialAccessTokenHash == "" || !store.VerifySecret(opts.InitialAccessTokenHash, tok):
		s.logger.Debug("registration refused: wrong initial access token", zap.String("remote_ip", r.RemoteAddr))
		oauth.Write(w, s.registrationTokenRefused(true, "the initial access token is not valid"))
		return false
	}
	return true
}

// registrationTokenRefused is the 401 answer to a registration or client
// configuration request whose Bearer token (initial or registration access
// token, RFC 6750) is missing or refused. The challenge names the issuer
// as the realm and carries invalid_token only when a token was presented
// (§3.1), never a description; the body's error is invalid_token either
// way.
func (s *Registrar) registrationTokenRefused(presented bool, description string) *oauth.Error {
	code := ""
	if presented {
		code = oauth.CodeInvalidToken
	}
	return &oauth.Error{Status: http.StatusUnauthorized, Code: oauth.CodeInvalidToken, Description: description,
		Challenge: oauth.BearerChallenge(s.opts.Issuer, code, "", "")}
}

// registrationDisabled is the 404 answer of the registration and client
// configuration endpoints when registration is off.
func registrationDisabled() *oauth.Error {
	return &oauth.Error{Status: http.StatusNotFound, Code: oauth.CodeInvalidRequest,
		Description: "dynamic client registration is not enabled"}
}

// newClientID returns a random client id (128 bits) that no configured or
// registered client has.
func (s *Registrar) newClientID(r *http.Request) (string, error) {
	for range 3 {
		var b [16]byte
		_, _ = rand.Read(b[:])
		// Lower-case base32: 26 characters of [a-z2-7], safe in URLs and
		// on a command line (never starting with '-').
		id := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
		if s.opts.Configured[id] != nil {
			continue
		}
		_, err := s.opts.Store.GetClient(r.Context(), id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return id, nil
		case err != nil:
			return "", err
		}
	}
	return "", errors.New("no free client id after three tries")
}

// refuseRegistration logs a refused registration or client update and
// writes its RFC 7591 §3.2.2 error.
func (s *Registrar) refuseRegistration(w http.ResponseWriter, f *oauth.Error) {
	s.logger.Debug("registration request refused", zap.String("error", f.Code), zap.String("error_description", f.Description))
	oauth.Write(w, f)
}

// registrationServerFault answers a failure of the server itself: 503
// temporarily_unavailable when the store cannot be reached now
// (store.ErrUnavailable), server_error otherwise. The cause is logged,
// never sent.
func (s *Registrar) registrationServerFault(what string, err error) *oauth.Error {
	s.logger.Error("registration: "+what, zap.Error(err))
	if errors.Is(err, store.ErrUnavailable) {
		return oauth.Unavailable()
	}
	return oauth.New(oauth.CodeServerError, "internal error")
}
