package smartauth

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/handlers/authz"
	"github.com/smartcaddy/smartauth/handlers/users"
)

// signInIdentityProvider is the sign_in method of the identity providers.
const signInIdentityProvider = "identity_provider"

// IdentityProviderConfig is an OpenID Provider (the hospital's single
// sign-on: Microsoft Entra ID, Okta, Keycloak, ADFS, Ping…) users sign in
// through; smart_auth is its relying party (a confidential client using
// the authorization code flow with PKCE) and stays the SMART
// authorization server of the apps. Register at the provider the
// redirect URI {issuer}/login/idp/callback and, for sign-out there, the
// post-logout redirect URI {issuer}/logout.
type IdentityProviderConfig struct {
	// Name identifies the provider: in URLs, in sign-in sessions, and in
	// the user names of its unlisted users ("<name>|<id>"). Letters,
	// digits, - and _.
	Name string `json:"name"`
	// DisplayName labels the sign-in button ("Sign in with …").
	// Default: the name.
	DisplayName string `json:"display_name,omitempty"`
	// Issuer is the provider's issuer URL (https; http only on
	// localhost), exactly as its discovery document and id_tokens spell
	// it (a trailing slash included or not); the discovery document is
	// read from {issuer}/.well-known/openid-configuration. Required.
	Issuer string `json:"issuer"`
	// ClientID is smart_auth's client id at the provider. Required.
	ClientID string `json:"client_id"`
	// ClientSecret is smart_auth's client secret at the provider, best a
	// placeholder ({env.*}, {file.*}) so that it stays out of the JSON
	// config. Empty: a public client (PKCE alone).
	ClientSecret string `json:"client_secret,omitempty"`
	// Scopes are asked of the provider; openid is always added.
	// Default: openid profile email.
	Scopes []string `json:"scopes,omitempty"`
	// UsernameClaim is the id_token claim whose value is matched against
	// the configured users' names (and is the id of an unlisted user).
	// Default: sub, the only identifier OpenID Connect guarantees to be
	// stable and unique per provider.
	UsernameClaim string `json:"username_claim,omitempty"`
	// AcceptUnlisted lets in users whose UsernameClaim names no
	// configured user; they are named "<name>|<value>" and built from
	// the claims below. Default: refused.
	AcceptUnlisted bool `json:"accept_unlisted,omitempty"`
	// FHIRUserClaim gives an unlisted user's fhirUser: a claim name
	// (fhirUser), or a template with {claims.<name>}
	// (Practitioner/{claims.employee_id}). A value that is not a FHIR
	// user reference (relative, or absolute under fhir_base) is dropped.
	FHIRUserClaim string `json:"fhir_user_claim,omitempty"`
	// DisplayNameClaim gives an unlisted user's display name. Default:
	// name.
	DisplayNameClaim string `json:"display_name_claim,omitempty"`
	// ScopesClaim, when set, narrows each unlisted user's bound to the
	// scopes this claim lists (a space-separated string or a list); a
	// user without the claim, or with nothing left, may not sign in.
	ScopesClaim string `json:"scopes_claim,omitempty"`
	// UserScopes is the operator's bound on unlisted users: patient/ and
	// user/ resource scopes, as a user's scopes. Without it they get no
	// user/ scopes at all.
	UserScopes []string `json:"user_scopes,omitempty"`
	// RequireClaims restrict who may sign in at all: each claim must
	// hold one of its values (e.g. groups smart-app-users).
	RequireClaims []ClaimRequirement `json:"require_claims,omitempty"`
	// ClockSkew is tolerated on the id_token's exp and auth_time.
	// Default 2m; at most 5m.
	ClockSkew caddy.Duration `json:"clock_skew,omitempty"`
}

// ClaimRequirement requires a claim to hold one of Values.
type ClaimRequirement struct {
	Claim  string   `json:"claim"`
	Values []string `json:"values"`
}

var (
	idpNamePattern  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	claimNameOption = regexp.MustCompile(`^[A-Za-z0-9_:.\-/]{1,128}$`)
)

// maxIDPClockSkew bounds clock_skew.
const maxIDPClockSkew = 5 * time.Minute

// defaultIDPScopes are asked of a provider without scopes.
var defaultIDPScopes = []string{"openid", "profile", "email"}

// check validates a provider. Errors name the offending option and never
// repeat the client secret.
func (p *IdentityProviderConfig) check() error {
	if !idpNamePattern.MatchString(p.Name) {
		return fmt.Errorf("name %q: letters, digits, - and _ only", p.Name)
	}
	if _, err := checkServerURL(p.Issuer); err != nil {
		return fmt.Errorf("issuer: %v", err)
	}
	if p.ClientID == "" {
		return errors.New("client_id: is required")
	}
	for opt, v := range map[string]string{"username_claim": p.UsernameClaim, "display_name_claim": p.DisplayNameClaim, "scopes_claim": p.ScopesClaim} {
		if v != "" && !claimNameOption.MatchString(v) {
			return fmt.Errorf("%s: %q is not a claim name", opt, v)
		}
	}
	if _, err := authz.ParseClaimTemplate(p.FHIRUserClaim); err != nil {
		return fmt.Errorf("fhir_user_claim: %v", err)
	}
	bound := UserConfig{Name: "x", Scopes: p.UserScopes}
	if err := bound.check(); err != nil {
		return fmt.Errorf("user_%v", err)
	}
	for _, r := range p.RequireClaims {
		if !claimNameOption.MatchString(r.Claim) || len(r.Values) == 0 {
			return fmt.Errorf("require_claim %q: a claim name and at least one value are required", r.Claim)
		}
	}
	if p.ClockSkew < 0 || time.Duration(p.ClockSkew) > maxIDPClockSkew {
		return fmt.Errorf("clock_skew: between 0 and %s", maxIDPClockSkew)
	}
	if !p.AcceptUnlisted && (p.FHIRUserClaim != "" || p.DisplayNameClaim != "" || p.ScopesClaim != "" || len(p.UserScopes) > 0) {
		return errors.New("fhir_user_claim, display_name_claim, scopes_claim and user_scopes describe unlisted users: add accept_unlisted")
	}
	return nil
}

// checkIdentityProviders validates the providers together with sign_in
// and the configured users.
func (s *SmartAuth) checkIdentityProviders() error {
	names := map[string]bool{}
	for i := range s.IdentityProviders {
		p := &s.IdentityProviders[i]
		if err := p.check(); err != nil {
			return fmt.Errorf("identity_provider %q: %w", p.Name, err)
		}
		if names[p.Name] {
			return fmt.Errorf("identity_provider %q: given twice", p.Name)
		}
		names[p.Name] = true
		for _, u := range s.Users {
			if strings.HasPrefix(u.Name, p.Name+users.FederatedSeparator) {
				return fmt.Errorf("user %q: names starting with %q are the unlisted users of identity_provider %q", u.Name, p.Name+users.FederatedSeparator, p.Name)
			}
		}
	}
	uses := slices.Contains(s.SignIn, signInIdentityProvider)
	switch {
	case uses && len(s.IdentityProviders) == 0:
		return errors.New("sign_in identity_provider: no identity_provider is configured")
	case !uses && len(s.IdentityProviders) > 0:
		return errors.New("identity_provider: add identity_provider to sign_in to offer it")
	}
	return nil
}

// provisionIdentityProviders resolves the client secrets' placeholders.
func (s *SmartAuth) provisionIdentityProviders() ([]authz.IdentityProvider, error) {
	repl := caddy.NewReplacer()
	out := make([]authz.IdentityProvider, 0, len(s.IdentityProviders))
	for _, p := range s.IdentityProviders {
		secret := ""
		if p.ClientSecret != "" {
			v, err := repl.ReplaceOrErr(p.ClientSecret, true, true)
			if err != nil {
				return nil, fmt.Errorf("identity_provider %q: client_secret: a placeholder could not be resolved", p.Name)
			}
			if secret = strings.TrimSpace(v); secret == "" {
				return nil, fmt.Errorf("identity_provider %q: client_secret: resolves to an empty value", p.Name)
			}
			if secret == p.ClientSecret {
				s.logger.Warn("identity provider client secret written in the configuration: use {env.*} or {file.*} so it stays out of the JSON config",
					zap.String("identity_provider", p.Name))
			}
		}
		scopes := p.Scopes
		if len(scopes) == 0 {
			scopes = defaultIDPScopes
		}
		rules := make([]authz.ClaimRule, 0, len(p.RequireClaims))
		for _, r := range p.RequireClaims {
			rules = append(rules, authz.ClaimRule{Claim: r.Claim, Values: r.Values})
		}
		out = append(out, authz.IdentityProvider{
			Name: p.Name, DisplayName: p.DisplayName, Issuer: p.Issuer, ClientID: p.ClientID, ClientSecret: secret,
			Scopes: scopes, UsernameClaim: p.UsernameClaim, AcceptUnlisted: p.AcceptUnlisted, FHIRUser: p.FHIRUserClaim,
			DisplayNameClaim: p.DisplayNameClaim, ScopesClaim: p.ScopesClaim, UserScopes: p.UserScopes, Require: rules,
			ClockSkew: time.Duration(p.ClockSkew),
		})
	}
	return out, nil
}

// parseIdentityProvider parses an `identity_provider <name> { … }` block.
func parseIdentityProvider(d *caddyfile.Dispenser) (IdentityProviderConfig, error) {
	var p IdentityProviderConfig
	var file string
	var line int
	var err error
	if p.Name, file, line, err = namedBlock(d, "identity_provider", "a name"); err != nil {
		return p, err
	}
	prefix := fmt.Sprintf("identity_provider %q", p.Name)
	set := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "scopes", "user_scopes":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return p, d.Errf("%s: %s: at least one value is required", prefix, opt)
			}
			if opt == "scopes" {
				p.Scopes = append(p.Scopes, args...)
			} else {
				p.UserScopes = append(p.UserScopes, args...)
			}
			continue
		case "require_claim":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return p, d.Errf("%s: require_claim: a claim and at least one value are required", prefix)
			}
			p.RequireClaims = append(p.RequireClaims, ClaimRequirement{Claim: args[0], Values: args[1:]})
			continue
		case "accept_unlisted":
			if d.NextArg() {
				return p, d.ArgErr()
			}
			p.AcceptUnlisted = true
			continue
		}
		v, err := onceArg(d, set, prefix)
		if err != nil {
			return p, err
		}
		switch opt {
		case "display_name":
			p.DisplayName = v
		case "issuer":
			p.Issuer = v
		case "client_id":
			p.ClientID = v
		case "client_secret":
			p.ClientSecret = v
		case "username_claim":
			p.UsernameClaim = v
		case "fhir_user_claim":
			p.FHIRUserClaim = v
		case "display_name_claim":
			p.DisplayNameClaim = v
		case "scopes_claim":
			p.ScopesClaim = v
		case "clock_skew":
			dur, err := caddy.ParseDuration(v)
			if err != nil {
				return p, d.Errf("%s: clock_skew: %v", prefix, err)
			}
			p.ClockSkew = caddy.Duration(dur)
		default:
			return p, d.Errf("%s: unrecognized subdirective '%s'", prefix, opt)
		}
	}
	if err := p.check(); err != nil {
		return p, fmt.Errorf("%s: %v, at %s:%d", prefix, err, file, line)
	}
	return p, nil
}
