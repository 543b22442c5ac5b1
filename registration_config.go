package smartauth

import (
	"errors"
	"fmt"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/smartcaddy/smartauth/handlers/register"
	"github.com/smartcaddy/smartauth/store"
)

// minInitialAccessToken is the shortest initial access token accepted, in
// characters.
const minInitialAccessToken = 20

// RegistrationConfig enables dynamic client registration (RFC 7591) at
// `{issuer}/register` and the RFC 7592 client configuration endpoint at
// `{issuer}/register/{client_id}`. Registration is off unless the block is
// present, and the block must say who may register: anyone (`open`) or
// whoever holds the initial access token.
//
// Caddyfile:
//
//	registration open
//	registration {
//		initial_access_token {env.SMART_DCR_TOKEN}
//	}
//	registration {
//		initial_access_token_hash hmac-sha256$…
//		allow_private_jwks_uri
//	}
type RegistrationConfig struct {
	// Open lets anyone register a client without an initial access token.
	// Open registration never registers client_credentials clients.
	Open bool `json:"open,omitempty"`
	// InitialAccessToken is the Bearer token a registration request must
	// present, normally a placeholder ({env.SMART_DCR_TOKEN} or
	// {file./run/secrets/dcr}) resolved at start so that it stays out of
	// the JSON config. At least 20 characters. It is held in memory only
	// as a keyed hash.
	InitialAccessToken string `json:"initial_access_token,omitempty"`
	// InitialAccessTokenHash is the initial access token's hash as
	// `caddy smart-auth hash-secret` prints it, instead of the token.
	InitialAccessTokenHash string `json:"initial_access_token_hash,omitempty"`
	// AllowPrivateJWKSURI lets registered clients' jwks_uri reach
	// loopback, private and other non-public addresses. Off by default:
	// a registered client's keys are fetched only from public internet
	// addresses, so that registering a client cannot make the server send
	// requests to internal services (SSRF). Turn it on only where every
	// party that may register is trusted, e.g. a private network.
	AllowPrivateJWKSURI bool `json:"allow_private_jwks_uri,omitempty"`
}

// parseRegistration reads `registration open` or a `registration { … }`
// block; d is on the `registration` token.
func parseRegistration(d *caddyfile.Dispenser) (*RegistrationConfig, error) {
	r := &RegistrationConfig{}
	for i, arg := range d.RemainingArgs() {
		if i > 0 || arg != "open" {
			return nil, d.Errf("registration: unexpected argument %q (want `registration open` or a block with initial_access_token)", arg)
		}
		r.Open = true
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "initial_access_token", "initial_access_token_hash":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			v := d.Val()
			if d.NextArg() {
				return nil, d.Errf("registration: %s takes one value", opt)
			}
			if r.InitialAccessToken != "" || r.InitialAccessTokenHash != "" {
				return nil, d.Errf("registration: %s: give initial_access_token or initial_access_token_hash once", opt)
			}
			if opt == "initial_access_token" {
				r.InitialAccessToken = v
			} else {
				r.InitialAccessTokenHash = v
			}
		case "allow_private_jwks_uri":
			if d.NextArg() {
				return nil, d.Errf("registration: %s takes no value", opt)
			}
			r.AllowPrivateJWKSURI = true
		default:
			return nil, d.Errf("registration: unrecognized subdirective '%s'", opt)
		}
		if err := r.validate(); err != nil {
			return nil, d.Errf("registration: %v", err)
		}
	}
	if err := r.validate(); err != nil {
		return nil, d.Errf("registration: %v", err)
	}
	return r, nil
}

// validate checks a registration configuration; nil is valid (off).
func (r *RegistrationConfig) validate() error {
	if r == nil {
		return nil
	}
	given := 0
	for _, set := range []bool{r.Open, r.InitialAccessToken != "", r.InitialAccessTokenHash != ""} {
		if set {
			given++
		}
	}
	switch {
	case given == 0:
		return errors.New("say who may register: `registration open`, or initial_access_token in the block")
	case given > 1 && r.Open:
		return errors.New("open: an open registration takes no initial access token")
	case given > 1:
		return errors.New("initial_access_token and initial_access_token_hash: give one, not both")
	}
	if r.InitialAccessToken != "" && !strings.Contains(r.InitialAccessToken, "{") && len(r.InitialAccessToken) < minInitialAccessToken {
		return fmt.Errorf("initial_access_token: at least %d characters", minInitialAccessToken)
	}
	if r.InitialAccessTokenHash != "" {
		if err := store.CheckSecretHash(r.InitialAccessTokenHash); err != nil {
			return fmt.Errorf("initial_access_token_hash: %v", err)
		}
	}
	return nil
}

// options converts the configuration for the register package, resolving
// placeholders in the initial access token. The token is never logged.
func (r *RegistrationConfig) options() (register.Settings, error) {
	if r == nil {
		return register.Settings{}, nil
	}
	if err := r.validate(); err != nil {
		return register.Settings{}, err
	}
	opts := register.Settings{Enabled: true, Open: r.Open, InitialAccessTokenHash: r.InitialAccessTokenHash,
		AllowPrivateJWKSURI: r.AllowPrivateJWKSURI}
	if r.InitialAccessToken != "" {
		tok, err := caddy.NewReplacer().ReplaceOrErr(r.InitialAccessToken, true, true)
		if err != nil {
			return register.Settings{}, fmt.Errorf("initial_access_token: %w", err)
		}
		tok = strings.TrimSpace(tok)
		if len(tok) < minInitialAccessToken {
			return register.Settings{}, fmt.Errorf("initial_access_token: resolves to fewer than %d characters", minInitialAccessToken)
		}
		if tok == r.InitialAccessToken {
			caddy.Log().Named("http.handlers.smart_auth").Warn("registration: initial_access_token written in the configuration: use {env.*} or {file.*} so it stays out of the JSON config")
		}
		opts.InitialAccessTokenHash = store.HashSecret(tok)
	}
	if r.Open {
		caddy.Log().Named("http.handlers.smart_auth").Warn("registration is open: anyone who can reach the registration endpoint can register a client")
	}
	return opts, nil
}
