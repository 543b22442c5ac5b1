package handlers

import (
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
	"github.com/smartcaddy/smartauth/store"
)

// RegistrationOptions configure dynamic client registration (RFC 7591)
// and the management of registered clients (RFC 7592); the zero value
// leaves it off.
type RegistrationOptions struct {
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
	// addresses (publicnet.go), so that registering cannot make the
	// server call internal services.
	AllowPrivateJWKSURI bool
}

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

// serveRegister is the client registration endpoint (RFC 7591): POST
// {issuer}/register with the client's metadata as JSON. It answers 201
// with the registered metadata, the new client_id, a client_secret for a
// symmetric client, and a registration access token for the client
// configuration endpoint at registration_client_uri (register_manage.go).
func (s *Server) serveRegister(w http.ResponseWriter, r *http.Request) {
	if !s.cfg.Registration.Enabled {
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
		return
	}
	md, fault := readClientMetadata(w, r)
	if fault != nil {
		s.refuseRegistration(w, fault)
		return
	}
	if md.SoftwareStatement != "" {
		s.refuseRegistration(w, oauth.New(oauth.CodeInvalidSoftwareStatement, "software statements are not supported; send the metadata as plain JSON fields"))
		return
	}
	reg, fault := s.checkClientMetadata(md)
	if fault != nil {
		s.refuseRegistration(w, fault)
		return
	}

	if wait, ok := s.reserveOpenRegistration(r); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		oauth.Write(w, &oauth.Error{Status: http.StatusTooManyRequests, Code: oauth.CodeInvalidRequest,
			Description: "too many registrations from this address; try again later"})
		return
	}
	id, err := s.newClientID(r)
	if err != nil {
		oauth.Write(w, s.registrationServerFault("choosing a client id", err))
		return
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
	if err := s.cfg.Store.PutClient(r.Context(), c); err != nil {
		oauth.Write(w, s.registrationServerFault("storing a registered client", err))
		return
	}
	s.logger.Info("client registered",
		zap.String("client_id", c.ID),
		zap.String("client_type", c.Type),
		zap.Strings("grant_types", c.GrantTypes),
		zap.String("remote_ip", r.RemoteAddr))
	s.writeClientInformation(w, http.StatusCreated, c, secret, regToken)
}

// Open registration throttling: openRegistrationsPerIP bounds the clients
// one address may register in openRegistrationWindow when registration is
// open: each is a synced write to the store that nobody had to
// authenticate for. The counts (Server.registrations, a throttle.Limiter)
// are the issuer's and live in the reload-surviving state (state.go).
const (
	openRegistrationsPerIP       = 20
	openRegistrationWindow       = 15 * time.Minute
	openRegistrationMaxAddresses = 50000
)

// reserveOpenRegistration counts a registration against the caller's
// address when registration is open; with an initial access token the
// caller is trusted and nothing is counted.
func (s *Server) reserveOpenRegistration(r *http.Request) (time.Duration, bool) {
	if !s.cfg.Registration.Open {
		return 0, true
	}
	return s.registrations.Reserve(throttle.ClientIP(r), openRegistrationsPerIP, time.Now())
}

// registrationAllowed checks the initial access token, unless
// registration is open. It writes the error response when it refuses.
func (s *Server) registrationAllowed(w http.ResponseWriter, r *http.Request) bool {
	opts := s.cfg.Registration
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
func (s *Server) registrationTokenRefused(presented bool, description string) *oauth.Error {
	code := ""
	if presented {
		code = oauth.CodeInvalidToken
	}
	return &oauth.Error{Status: http.StatusUnauthorized, Code: oauth.CodeInvalidToken, Description: description,
		Challenge: oauth.BearerChallenge(s.cfg.Issuer.String(), code, "", "")}
}

// registrationDisabled is the 404 answer of the registration and client
// configuration endpoints when registration is off.
func registrationDisabled() *oauth.Error {
	return &oauth.Error{Status: http.StatusNotFound, Code: oauth.CodeInvalidRequest,
		Description: "dynamic client registration is not enabled"}
}

// newClientID returns a random client id (128 bits) that no configured or
// registered client has.
func (s *Server) newClientID(r *http.Request) (string, error) {
	for range 3 {
		var b [16]byte
		_, _ = rand.Read(b[:])
		// Lower-case base32: 26 characters of [a-z2-7], safe in URLs and
		// on a command line (never starting with '-').
		id := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
		if s.cfg.Clients[id] != nil {
			continue
		}
		_, err := s.cfg.Store.GetClient(r.Context(), id)
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
func (s *Server) refuseRegistration(w http.ResponseWriter, f *oauth.Error) {
	s.logger.Debug("registration request refused", zap.String("error", f.Code), zap.String("error_description", f.Description))
	oauth.Write(w, f)
}

// registrationServerFault answers a failure of the server itself; the
// cause is logged, never sent.
func (s *Server) registrationServerFault(what string, err error) *oauth.Error {
	s.logger.Error("registration: "+what, zap.Error(err))
	return oauth.New(oauth.CodeServerError, "internal error")
}
