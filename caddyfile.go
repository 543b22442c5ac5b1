package smartauth

import (
	"fmt"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("smart_auth", parseCaddyfile)
	// After forward_auth, so that an identity set by basic_auth or
	// forward_auth is visible; before handle, route and reverse_proxy, so
	// that the FHIR API is guarded before it is proxied.
	httpcaddyfile.RegisterDirectiveOrder("smart_auth", httpcaddyfile.After, "forward_auth")
}

// parseCaddyfile sets up the handler from Caddyfile tokens.
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	s := new(SmartAuth)
	err := s.UnmarshalCaddyfile(h.Dispenser)
	return s, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	smart_auth [<matcher>] {
//		issuer    <url>
//		fhir_base <url>
//		storage   <directory>
//		storage   postgres <dsn>  # e.g. {env.SMART_AUTH_DSN}
//
//		# signing keys (default: generated and stored)
//		signing_key  RS256|ES256 <pem_file>
//		key_rotation <duration>|off
//
//		# lifetimes
//		access_token_lifetime  <duration>
//		refresh_token_lifetime <duration>
//		code_lifetime          <duration>
//		launch_lifetime        <duration>
//		session_lifetime       <duration>
//		backend_token_lifetime <duration>
//		refresh_grace_period   <duration>
//
//		# tokens and pages
//		access_token_alg ES256|RS256
//		sign_in          password|trusted_identity|identity_provider ...
//		remember_consent <duration>
//		frame_ancestors  <origin> [<origin>...]
//		templates        <directory>
//		patient_search   <fhir_url>
//		pages {
//			organization  <name>
//			logo          <path>
//			accent_color  "#rrggbb"  # quoted: # starts a comment
//			patient_names <fhir_url>
//		}
//
//		client <client_id> {
//			name        <display_name>
//			type        public|confidential_symmetric|confidential_asymmetric
//			secret      <secret>
//			secret_hash <hash>
//			redirect_uri <uri> [<uri>...]
//			launch_uri  <uri>
//			jwks        <jwk_set_json>
//			jwks_file   <path>
//			jwks_uri    <url>
//			scopes      <scope> [<scope>...]
//			grant_types authorization_code|refresh_token|client_credentials ...
//			allow_secret_for_client_credentials
//			create_launch
//			id_token_signed_response_alg RS256|ES256
//		}
//
//		identity_provider <name> {
//			display_name       <text>
//			issuer             <url>
//			client_id          <id>
//			client_secret      <secret>  # e.g. {env.HOSPITAL_OIDC_SECRET}
//			scopes             <scope> [<scope>...]
//			username_claim     <claim>
//			accept_unlisted
//			fhir_user_claim    <claim>|<template>  # e.g. Practitioner/{claims.employee_id}
//			display_name_claim <claim>
//			scopes_claim       <claim>
//			user_scopes        <scope> [<scope>...]  # patient/ and user/ resource scopes
//			require_claim      <claim> <value> [<value>...]
//			clock_skew         <duration>
//		}
//
//		user <name> {
//			password_hash <bcrypt_hash>
//			fhir_user     <Patient|Practitioner|PractitionerRole|RelatedPerson|Person>/<id>
//			display_name  <name>
//			patients      <id> [<id>...]
//			scopes        <scope> [<scope>...]  # patient/ and user/ resource scopes
//		}
//
//		guard {
//			cors_origins <origin> [<origin>...] | *
//			operation    <$name> <ResourceType|*> <permissions>
//			allow_outside_compartment <ResourceType> [<ResourceType>...]
//			header       <Name> <value>
//			revocation_staleness <duration>|off
//		}
//
//		registration open
//		registration [open] {
//			initial_access_token      <token>
//			initial_access_token_hash <hash>
//			allow_private_jwks_uri
//		}
//
//		# the audit trail also as FHIR AuditEvents
//		audit_events file <path> | fhir <fhir_base_url>
//	}
//
// issuer and fhir_base are required; every other option is optional.
// storage names a Badger directory, or with postgres a PostgreSQL DSN (best
// a placeholder: {env.*} or {file.*}); it may appear once.
// Repeatable: signing_key (once per algorithm), frame_ancestors, client, user, identity_provider;
// inside an identity_provider scopes, user_scopes and require_claim; inside a client
// redirect_uri, scopes and grant_types; inside a user patients and scopes; every option of guard
// but revocation_staleness (lists add up). guard, registration and audit_events may appear once; registration must say who may register
// (open, or one of initial_access_token and initial_access_token_hash). Secrets (secret,
// initial_access_token) are best given as placeholders ({env.VAR}, {file.path}) or as their hashes
// (secret_hash, initial_access_token_hash from `caddy smart-auth hash-secret`). The fields of
// SmartAuth, ClientConfig, UserConfig, GuardConfig and RegistrationConfig document each option.
func (s *SmartAuth) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	startFile, startLine := d.File(), d.Line()
	set := map[string]bool{}
	once := func(name string) error {
		if set[name] {
			return d.Errf("%s already specified", name)
		}
		set[name] = true
		return nil
	}
	// scalar reads the single value of an option that may appear once.
	scalar := func() (string, error) {
		if err := once(d.Val()); err != nil {
			return "", err
		}
		return oneArg(d)
	}
	for d.NextBlock(0) {
		opt := d.Val()
		switch opt {
		case "issuer", "fhir_base":
			v, err := scalar()
			if err != nil {
				return err
			}
			if _, err := checkServerURL(v); err != nil {
				return d.Errf("%s: %v", opt, err)
			}
			if opt == "issuer" {
				s.Issuer = v
			} else {
				s.FHIRBase = v
			}
		case "storage":
			if err := parseStorage(d, s, once); err != nil {
				return err
			}
		case "signing_key":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("signing_key: expected an algorithm and a PEM file, got %d arguments", len(args))
			}
			k := SigningKey{Alg: args[0], File: args[1]}
			if err := k.check(); err != nil {
				return d.Err(err.Error())
			}
			for _, o := range s.SigningKeys {
				if o.Alg == k.Alg {
					return d.Errf("signing_key: %s already specified", k.Alg)
				}
			}
			s.SigningKeys = append(s.SigningKeys, k)
		case "key_rotation":
			v, err := scalar()
			if err != nil {
				return err
			}
			if v == "off" {
				s.KeyRotation = -1
				continue
			}
			dur, err := parseDuration(d, opt, v)
			if err != nil {
				return err
			}
			s.KeyRotation = dur
		case "access_token_lifetime", "refresh_token_lifetime", "code_lifetime", "launch_lifetime", "session_lifetime", "backend_token_lifetime":
			v, err := scalar()
			if err != nil {
				return err
			}
			dur, err := parseDuration(d, opt, v)
			if err != nil {
				return err
			}
			*s.lifetime(opt) = dur
		case "refresh_grace_period":
			v, err := scalar()
			if err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(v)
			if err == nil {
				err = checkRefreshGrace(dur)
			}
			if err != nil {
				return d.Errf("%s: %v", opt, err)
			}
			s.RefreshGracePeriod = caddy.Duration(dur)
		case "access_token_alg":
			v, err := scalar()
			if err != nil {
				return err
			}
			if v != "ES256" && v != "RS256" {
				return d.Errf("access_token_alg: %q: must be ES256 or RS256", v)
			}
			s.AccessTokenAlg = v
		case "sign_in":
			if err := once(opt); err != nil {
				return err
			}
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Err("sign_in: at least one method is required")
			}
			for _, a := range args {
				if a != signInPassword && a != signInTrusted && a != signInIdentityProvider {
					return d.Errf("sign_in: %q: must be password, trusted_identity or identity_provider", a)
				}
			}
			s.SignIn = args
		case "remember_consent":
			v, err := scalar()
			if err != nil {
				return err
			}
			dur, err := parseDuration(d, opt, v)
			if err != nil {
				return err
			}
			s.RememberConsent = dur
		case "frame_ancestors":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Err("frame_ancestors: at least one origin is required")
			}
			for _, a := range args {
				if err := checkOrigin(a); err != nil {
					return d.Errf("frame_ancestors: %v", err)
				}
			}
			s.FrameAncestors = append(s.FrameAncestors, args...)
		case "templates":
			v, err := scalar()
			if err != nil {
				return err
			}
			s.Templates = v
		case "patient_search":
			v, err := scalar()
			if err != nil {
				return err
			}
			if _, err := checkUpstreamURL(v); err != nil {
				return d.Errf("patient_search: %v", err)
			}
			s.PatientSearch = v
		case "audit_events":
			if err := once(opt); err != nil {
				return err
			}
			c, err := parseAuditEvents(d) // telemetry.go
			if err != nil {
				return err
			}
			s.AuditEvents = c
		case "client":
			c, err := parseClient(d)
			if err != nil {
				return err
			}
			for _, o := range s.Clients {
				if o.ID == c.ID {
					return d.Errf("client %q: duplicate client id", c.ID)
				}
			}
			for _, o := range s.Users {
				if o.Name == c.ID {
					return d.Errf("client %q: %s", c.ID, errClientNamedAsUser)
				}
			}
			s.Clients = append(s.Clients, c)
		case "guard":
			if err := once(opt); err != nil {
				return err
			}
			g, err := parseGuard(d)
			if err != nil {
				return err
			}
			s.Guard = g
		case "pages":
			if err := once(opt); err != nil {
				return err
			}
			p, err := parsePages(d) // pages_config.go
			if err != nil {
				return err
			}
			s.Pages = p
		case "registration":
			if err := once(opt); err != nil {
				return err
			}
			r, err := parseRegistration(d)
			if err != nil {
				return err
			}
			s.Registration = r
		case "identity_provider":
			p, err := parseIdentityProvider(d)
			if err != nil {
				return err
			}
			for _, o := range s.IdentityProviders {
				if o.Name == p.Name {
					return d.Errf("identity_provider %q: duplicate name", p.Name)
				}
			}
			s.IdentityProviders = append(s.IdentityProviders, p)
		case "user":
			u, err := parseUser(d)
			if err != nil {
				return err
			}
			for _, o := range s.Users {
				if o.Name == u.Name {
					return d.Errf("user %q: duplicate user name", u.Name)
				}
			}
			for _, o := range s.Clients {
				if o.ID == u.Name {
					return d.Errf("user %q: %s", u.Name, errClientNamedAsUser)
				}
			}
			s.Users = append(s.Users, u)
		default:
			return d.Errf("unrecognized subdirective '%s'", opt)
		}
	}
	for _, opt := range []string{"issuer", "fhir_base"} {
		if !set[opt] {
			return fmt.Errorf("smart_auth: %s is required, at %s:%d", opt, startFile, startLine)
		}
	}
	return nil
}

// storagePostgres is the first argument of `storage` that chooses
// PostgreSQL.
const storagePostgres = "postgres"

// parseStorage reads `storage <directory>` (Badger) or `storage postgres
// <dsn>`; once records the option. Errors never repeat the DSN.
func parseStorage(d *caddyfile.Dispenser, s *SmartAuth, once func(string) error) error {
	if err := once(d.Val()); err != nil {
		return err
	}
	args := d.RemainingArgs()
	switch {
	case len(args) == 0:
		return d.Err("storage: a directory, or postgres and a DSN, is required")
	case args[0] == storagePostgres && len(args) == 1:
		return d.Err("storage postgres: a DSN is required, best as a placeholder: storage postgres {env.SMART_AUTH_DSN} " +
			"(for a Badger directory named postgres, write ./postgres)")
	case args[0] == storagePostgres && len(args) > 2:
		return d.Errf("storage postgres: one DSN expected, got %d arguments (quote a keyword/value DSN)", len(args)-1)
	case args[0] == storagePostgres:
		if strings.TrimSpace(args[1]) == "" {
			return d.Err("storage postgres: the DSN is empty")
		}
		s.StoragePostgres = args[1]
	case len(args) > 1:
		return d.Errf("storage: one directory expected, got also %q (for PostgreSQL: storage postgres <dsn>)", args[1])
	case strings.TrimSpace(args[0]) == "":
		return d.Err("storage: the value is empty")
	case looksLikeDSN(args[0]):
		return d.Err("storage: the value is a PostgreSQL URL, not a directory: write storage postgres <dsn>")
	default:
		s.Storage = args[0]
	}
	return nil
}

// lifetime returns the field a lifetime option sets.
func (s *SmartAuth) lifetime(opt string) *caddy.Duration {
	switch opt {
	case "access_token_lifetime":
		return &s.AccessTokenLifetime
	case "refresh_token_lifetime":
		return &s.RefreshTokenLifetime
	case "code_lifetime":
		return &s.CodeLifetime
	case "launch_lifetime":
		return &s.LaunchLifetime
	case "backend_token_lifetime":
		return &s.BackendTokenLifetime
	default:
		return &s.SessionLifetime
	}
}

// namedBlock reads the name of a `<kind> <name> { … }` block (what
// describes the name for the error) and where the block starts.
func namedBlock(d *caddyfile.Dispenser, kind, what string) (name, file string, line int, err error) {
	if !d.NextArg() {
		return "", "", 0, d.Errf("%s: %s is required", kind, what)
	}
	name = d.Val()
	if d.NextArg() {
		return name, "", 0, d.Errf("%s %q: unexpected argument %q (options go in a { } block)", kind, name, d.Val())
	}
	return name, d.File(), d.Line(), nil
}

// onceArg reads the single value of a block option that may appear once;
// set records the options seen, prefix names the block in errors.
func onceArg(d *caddyfile.Dispenser, set map[string]bool, prefix string) (string, error) {
	opt := d.Val()
	if set[opt] {
		return "", d.Errf("%s: %s already specified", prefix, opt)
	}
	set[opt] = true
	return oneArg(d)
}

// oneArg reads exactly one argument of the current option.
func oneArg(d *caddyfile.Dispenser) (string, error) {
	opt := d.Val()
	if !d.NextArg() {
		return "", d.Errf("%s: a value is required", opt)
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.Errf("%s: one value expected, got also %q", opt, d.Val())
	}
	if strings.TrimSpace(v) == "" {
		return "", d.Errf("%s: the value is empty", opt)
	}
	return v, nil
}

// parseDuration parses a positive duration option.
func parseDuration(d *caddyfile.Dispenser, opt, v string) (caddy.Duration, error) {
	dur, err := caddy.ParseDuration(v)
	if err != nil {
		return 0, d.Errf("%s: %v", opt, err)
	}
	if dur <= 0 {
		return 0, d.Errf("%s: must be positive", opt)
	}
	return caddy.Duration(dur), nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*SmartAuth)(nil)
