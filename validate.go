package smartauth

import (
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/smartcaddy/smartauth/handlers/authz"
)

// This file fills in the configuration's defaults and validates it
// (Provision in smartauth.go calls both; Caddy calls Validate too).

// setDefaults fills in unset lifetimes.
func (s *SmartAuth) setDefaults() {
	for _, d := range []struct {
		v   *caddy.Duration
		def time.Duration
	}{
		{&s.AccessTokenLifetime, authz.DefaultLifetimes.AccessToken},
		{&s.RefreshTokenLifetime, authz.DefaultLifetimes.RefreshToken},
		{&s.CodeLifetime, authz.DefaultLifetimes.Code},
		{&s.LaunchLifetime, authz.DefaultLifetimes.Launch},
		{&s.SessionLifetime, authz.DefaultLifetimes.Session},
		{&s.BackendTokenLifetime, authz.DefaultLifetimes.Backend},
		{&s.KeyRotation, defaultKeyRotation},
	} {
		if *d.v == 0 {
			*d.v = caddy.Duration(d.def)
		}
	}
	if s.AccessTokenAlg == "" {
		s.AccessTokenAlg = "ES256"
	}
	if len(s.SignIn) == 0 {
		s.SignIn = []string{signInPassword}
	}
	for i := range s.Clients {
		s.Clients[i].normalize()
	}
}

// Validate checks the configuration. It runs before anything is opened, so
// a bad configuration costs nothing; the Caddyfile parser runs the same
// checks and adds line numbers.
func (s *SmartAuth) Validate() error {
	if _, err := checkServerURL(s.Issuer); err != nil {
		return fmt.Errorf("issuer: %w", err)
	}
	if _, err := checkServerURL(s.FHIRBase); err != nil {
		return fmt.Errorf("fhir_base: %w", err)
	}
	if s.Storage != "" && s.StoragePostgres != "" {
		return errors.New("storage and storage_postgres: give one store, not both")
	}
	if looksLikeDSN(s.Storage) {
		return errors.New("storage: the value is a PostgreSQL URL, not a directory: give it as storage_postgres")
	}
	for name, d := range map[string]caddy.Duration{
		"access_token_lifetime":  s.AccessTokenLifetime,
		"refresh_token_lifetime": s.RefreshTokenLifetime,
		"code_lifetime":          s.CodeLifetime,
		"launch_lifetime":        s.LaunchLifetime,
		"session_lifetime":       s.SessionLifetime,
		"backend_token_lifetime": s.BackendTokenLifetime,
	} {
		if d < 0 {
			return fmt.Errorf("%s: must be positive", name)
		}
	}
	if s.AccessTokenAlg != "" && s.AccessTokenAlg != "ES256" && s.AccessTokenAlg != "RS256" {
		return fmt.Errorf("access_token_alg: %q: must be ES256 or RS256", s.AccessTokenAlg)
	}
	for _, m := range s.SignIn {
		if m != signInPassword && m != signInTrusted && m != signInIdentityProvider {
			return fmt.Errorf("sign_in: %q: must be password, trusted_identity or identity_provider", m)
		}
	}
	if err := s.checkIdentityProviders(); err != nil {
		return err
	}
	if err := checkRefreshGrace(time.Duration(s.RefreshGracePeriod)); err != nil {
		return fmt.Errorf("refresh_grace_period: %w", err)
	}
	if s.RememberConsent < 0 {
		return errors.New("remember_consent: must be positive")
	}
	for _, o := range s.FrameAncestors {
		if err := checkOrigin(o); err != nil {
			return fmt.Errorf("frame_ancestors: %w", err)
		}
	}
	algs := map[string]bool{}
	for _, k := range s.SigningKeys {
		if err := k.check(); err != nil {
			return err
		}
		if algs[k.Alg] {
			return fmt.Errorf("signing_key: %s given twice", k.Alg)
		}
		algs[k.Alg] = true
	}
	seen := map[string]bool{}
	for i := range s.Clients {
		c := &s.Clients[i]
		if seen[c.ID] {
			return fmt.Errorf("client %q: duplicate client id", c.ID)
		}
		seen[c.ID] = true
		if err := c.check(); err != nil {
			return fmt.Errorf("client %q: %w", c.ID, err)
		}
	}
	if s.PatientSearch != "" {
		if _, err := checkUpstreamURL(s.PatientSearch); err != nil {
			return fmt.Errorf("patient_search: %w", err)
		}
	}
	if err := s.Guard.validate(); err != nil {
		return fmt.Errorf("guard: %w", err)
	}
	if err := s.Registration.validate(); err != nil {
		return fmt.Errorf("registration: %w", err)
	}
	if err := s.AuditEvents.validate(); err != nil {
		return fmt.Errorf("audit_events: %w", err)
	}
	seenUser := map[string]bool{}
	for i := range s.Users {
		u := &s.Users[i]
		if seenUser[u.Name] {
			return fmt.Errorf("user %q: duplicate user name", u.Name)
		}
		seenUser[u.Name] = true
		if seen[u.Name] {
			return fmt.Errorf("user %q: %s", u.Name, errClientNamedAsUser)
		}
		if err := u.check(); err != nil {
			return fmt.Errorf("user %q: %w", u.Name, err)
		}
	}
	return nil
}

// errClientNamedAsUser refuses a user and a client of the same name: a
// token whose sub equals its client_id is a client's own (backend) token,
// so a user of that name would be mistaken for no user at the guard.
const errClientNamedAsUser = "a client and a user may not have the same name (a token whose sub is its client_id has no user)"
