package smartauth

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/smartcaddy/smartauth/handlers"
)

// RegistrationConfig enables dynamic client registration.
type RegistrationConfig struct{}

// parseRegistration reads a `registration { … }` block.
func parseRegistration(d *caddyfile.Dispenser) (*RegistrationConfig, error) {
	r := &RegistrationConfig{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		return nil, d.Errf("registration: unrecognized subdirective '%s'", d.Val())
	}
	return r, nil
}

// validate checks a registration configuration; nil is valid (off).
func (r *RegistrationConfig) validate() error { return nil }

// options converts the configuration for the handlers package, resolving
// placeholders in secrets.
func (r *RegistrationConfig) options() (handlers.RegistrationOptions, error) {
	return handlers.RegistrationOptions{}, nil
}
