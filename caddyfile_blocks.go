package smartauth

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// This file parses the Caddyfile's repeatable blocks: client and user
// (UnmarshalCaddyfile in caddyfile.go parses the rest).

// parseClient parses a `client <id> { … }` block.
func parseClient(d *caddyfile.Dispenser) (ClientConfig, error) {
	var c ClientConfig
	var file string
	var line int
	var err error
	if c.ID, file, line, err = namedBlock(d, "client", "a client id"); err != nil {
		return c, err
	}
	set := map[string]bool{}
	lines := map[string]int{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if _, ok := lines[opt]; !ok {
			lines[opt] = d.Line()
		}
		errf := func(format string, args ...any) error {
			return d.Errf("client %q: %s", c.ID, fmt.Sprintf(format, args...))
		}
		switch opt {
		case "redirect_uri", "scopes", "grant_types":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return c, errf("%s: at least one value is required", opt)
			}
			for _, a := range args {
				switch opt {
				case "redirect_uri":
					if err := checkAppURL(a, true); err != nil {
						return c, errf("redirect_uri: %v", err)
					}
					c.RedirectURIs = append(c.RedirectURIs, a)
				case "scopes":
					c.Scopes = append(c.Scopes, a)
				default:
					c.GrantTypes = append(c.GrantTypes, a)
				}
			}
			continue
		case "allow_secret_for_client_credentials", "create_launch":
			if d.NextArg() {
				return c, d.ArgErr()
			}
			if opt == "create_launch" {
				c.CreateLaunch = true
			} else {
				c.AllowSecretForClientCredentials = true
			}
			continue
		}
		v, err := onceArg(d, set, fmt.Sprintf("client %q", c.ID))
		if err != nil {
			return c, err
		}
		switch opt {
		case "name":
			c.Name = v
		case "type":
			c.Type = v
		case "secret":
			c.Secret = v
		case "secret_hash":
			c.SecretHash = v
		case "launch_uri":
			if err := checkAppURL(v, false); err != nil {
				return c, errf("launch_uri: %v", err)
			}
			c.LaunchURI = v
		case "jwks":
			if !json.Valid([]byte(v)) {
				return c, errf("jwks: not valid JSON (quote the JWK Set with backticks)")
			}
			c.JWKS = json.RawMessage(v)
		case "jwks_file":
			c.JWKSFile = v
		case "jwks_uri":
			c.JWKSURI = v
		case "id_token_signed_response_alg":
			c.IDTokenSignedResponseAlg = v
		default:
			return c, errf("unrecognized subdirective '%s'", opt)
		}
	}
	check := c
	check.normalize()
	if err := check.check(); err != nil {
		return c, fmt.Errorf("client %q: %v, at %s:%d", c.ID, err, file, optionLine(err, lines, line))
	}
	return c, nil
}

// parseUser parses a `user <name> { … }` block.
func parseUser(d *caddyfile.Dispenser) (UserConfig, error) {
	var u UserConfig
	var file string
	var line int
	var err error
	if u.Name, file, line, err = namedBlock(d, "user", "a user name"); err != nil {
		return u, err
	}
	set := map[string]bool{}
	lines := map[string]int{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if _, ok := lines[opt]; !ok {
			lines[opt] = d.Line()
		}
		if opt == "patients" || opt == "scopes" {
			args := d.RemainingArgs()
			if len(args) == 0 {
				return u, d.Errf("user %q: %s: at least one value is required", u.Name, opt)
			}
			if opt == "patients" {
				u.Patients = append(u.Patients, args...)
			} else {
				u.Scopes = append(u.Scopes, args...)
			}
			continue
		}
		v, err := onceArg(d, set, fmt.Sprintf("user %q", u.Name))
		if err != nil {
			return u, err
		}
		switch opt {
		case "password_hash":
			u.PasswordHash = v
		case "fhir_user":
			u.FHIRUser = v
		case "display_name":
			u.DisplayName = v
		default:
			return u, d.Errf("user %q: unrecognized subdirective '%s'", u.Name, opt)
		}
	}
	if err := u.check(); err != nil {
		return u, fmt.Errorf("user %q: %v, at %s:%d", u.Name, err, file, optionLine(err, lines, line))
	}
	return u, nil
}

// optionLine is the line a block's check error points at: that of the
// option the error starts with ("scopes: …"), else the block's own.
func optionLine(err error, lines map[string]int, block int) int {
	opt, _, ok := strings.Cut(err.Error(), ":")
	if l, found := lines[opt]; ok && found {
		return l
	}
	return block
}
