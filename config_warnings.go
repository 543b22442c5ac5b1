package smartauth

import (
	"fmt"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/smartcaddy/smartauth/adminapi"
)

// This file finds configurations that are valid one option at a time but
// cannot work as a whole (issue 15, "configuration that cannot fail
// silently"): Provision in smartauth.go refuses the ones that are always
// broken (checkSiblings) and logs a warning for the others (warnings).

// configIdentity identifies the Caddy config a handler is provisioned in:
// the config context's Done channel, which every module of one config
// shares (Caddy derives no context per module) and no other config has.
// nil when the context cannot be told apart (a bare context in tests).
func configIdentity(ctx caddy.Context) any {
	if ctx.Context == nil {
		return nil
	}
	done := ctx.Done()
	if done == nil {
		return nil
	}
	return done
}

// checkSiblings refuses a second smart_auth handler of the same config
// that guards the same fhir_base for another issuer: whichever handler a
// FHIR request reaches accepts only its own issuer's tokens, so every
// token of the other would be refused. Handlers of one issuer (one per
// site, say) may share a FHIR base. The handlers already provisioned are
// found in the admin API's registry (adminapi.Guarding).
func (s *SmartAuth) checkSiblings(config any) error {
	own := strings.TrimSuffix(s.Issuer, "/")
	for _, iss := range adminapi.Guarding(config, s.FHIRBase) {
		if iss != own {
			return fmt.Errorf("fhir_base %s: already guarded by the smart_auth handler of issuer %s in this configuration; "+
				"a FHIR base has one issuer (the first handler a request reaches accepts only its own issuer's tokens): "+
				"give both handlers the same issuer, or each its own fhir_base", s.FHIRBase, iss)
		}
	}
	return nil
}

// warnings lists what in a valid configuration makes part of it useless:
// nobody can sign in, a sign-in method that has nobody to sign in, a
// client scope its grant types never grant, no client. Each names the options to change.
func (s *SmartAuth) warnings() []string {
	var out []string
	password := slices.Contains(s.SignIn, signInPassword)
	trusted := slices.Contains(s.SignIn, signInTrusted)
	federated := slices.Contains(s.SignIn, signInIdentityProvider)
	var withPassword []string
	for _, u := range s.Users {
		if u.PasswordHash != "" {
			withPassword = append(withPassword, u.Name)
		}
	}
	unlisted := false
	for _, p := range s.IdentityProviders {
		unlisted = unlisted || p.AcceptUnlisted
	}
	canSignIn := (password && len(withPassword) > 0) || (trusted && len(s.Users) > 0) ||
		(federated && (unlisted || len(s.Users) > 0))
	if !canSignIn && s.userFacing() {
		out = append(out, fmt.Sprintf("nobody can sign in (sign_in %s; %d user(s), %d with a password_hash): "+
			"apps using authorization_code will never get a token; add user blocks with password_hash, "+
			"or sign_in trusted_identity or identity_provider", strings.Join(s.SignIn, " "), len(s.Users), len(withPassword)))
	}
	if password && len(withPassword) == 0 && canSignIn {
		out = append(out, "sign_in password: no user has a password_hash, so the sign-in form signs nobody in")
	}
	if !password && len(withPassword) > 0 {
		out = append(out, fmt.Sprintf("user %s has a password_hash but sign_in does not include password: the password is never asked for",
			withPassword[0]))
	}
	for i := range s.Clients {
		out = append(out, s.Clients[i].ungrantableScopes()...)
	}
	if len(s.Clients) == 0 && s.Registration == nil {
		out = append(out, "no client is configured and registration is off: no app can get a token until a client block is added "+
			"or one is registered through the admin API (POST /smart-auth/clients)")
	}
	return out
}

// userFacing tells whether an app could ask for a user's authorization:
// a configured client with authorization_code, open or protected dynamic
// registration, or no configured client at all (the admin API may add
// one).
func (s *SmartAuth) userFacing() bool {
	if s.Registration != nil || len(s.Clients) == 0 {
		return true
	}
	for _, c := range s.Clients {
		if slices.Contains(c.GrantTypes, grantAuthorizationCode) {
			return true
		}
	}
	return false
}
