package smartauth

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/smartcaddy/smartauth/handlers"
)

// GuardConfig configures the guard in front of the FHIR API.
type GuardConfig struct{}

// parseGuard reads a `guard { … }` block.
func parseGuard(d *caddyfile.Dispenser) (*GuardConfig, error) {
	g := &GuardConfig{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		return nil, d.Errf("guard: unrecognized subdirective '%s'", d.Val())
	}
	return g, nil
}

// validate checks a guard configuration; nil is valid (the defaults).
func (g *GuardConfig) validate() error { return nil }

// options converts the configuration for the handlers package.
func (g *GuardConfig) options() (handlers.GuardOptions, error) {
	return handlers.GuardOptions{}, nil
}
