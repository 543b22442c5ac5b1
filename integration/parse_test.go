package integration

import (
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/smartcaddy/smartauth"
)

// parse runs the module's Caddyfile parser on input (a smart_auth block)
// and returns the configuration it builds, as the root package's unit
// tests do.
func parse(t *testing.T, input string) (*smartauth.SmartAuth, error) {
	t.Helper()
	s := new(smartauth.SmartAuth)
	err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
	return s, err
}

// A bcrypt hash (cost 4) of "pw", valid for parsing.
const testHash = "$2a$04$5Hf0XGzn1vhL0b0bEbZcS.2mZB9lmgGEbYHI2HOgeGLhUOtpQ6PZy"
