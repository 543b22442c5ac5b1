package smartauth

import (
	"fmt"
	"os"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/store"
)

// This file turns the configured clients and key files into what the
// handlers use (Provision in smartauth.go calls it).

// provisionClients resolves client secrets and key files and converts the
// configured clients to store records.
func (s *SmartAuth) provisionClients() (map[string]*store.Client, error) {
	repl := caddy.NewReplacer()
	out := make(map[string]*store.Client, len(s.Clients))
	for _, c := range s.Clients {
		rec := &store.Client{
			ID: c.ID, Name: c.Name, Type: c.Type,
			SecretHash:   c.SecretHash,
			RedirectURIs: c.RedirectURIs, LaunchURI: c.LaunchURI,
			JWKS: c.JWKS, JWKSURI: c.JWKSURI,
			Scopes: c.Scopes, GrantTypes: c.GrantTypes,
			AllowSecretForClientCredentials: c.AllowSecretForClientCredentials,
			CanCreateLaunch:                 c.CreateLaunch,
			IDTokenSignedResponseAlg:        c.IDTokenSignedResponseAlg,
		}
		if c.Secret != "" {
			secret, err := repl.ReplaceOrErr(c.Secret, true, true)
			if err != nil {
				return nil, fmt.Errorf("client %q: secret: %w", c.ID, err)
			}
			secret = strings.TrimSpace(secret)
			if secret == "" {
				return nil, fmt.Errorf("client %q: secret: resolves to an empty value", c.ID)
			}
			if secret == c.Secret {
				s.logger.Warn("client secret written in the configuration: use {env.*} or {file.*} so it stays out of the JSON config",
					zap.String("client_id", c.ID))
			}
			rec.SecretHash = store.HashSecret(secret)
		}
		if c.JWKSFile != "" {
			path, err := repl.ReplaceOrErr(c.JWKSFile, true, true)
			if err != nil {
				return nil, fmt.Errorf("client %q: jwks_file: %w", c.ID, err)
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("client %q: jwks_file: %w", c.ID, err)
			}
			if err := checkClientJWKS(raw); err != nil {
				return nil, fmt.Errorf("client %q: jwks_file %s: %w", c.ID, path, err)
			}
			rec.JWKS = raw
		}
		out[c.ID] = rec
	}
	return out, nil
}

// keyFiles resolves the signing key file paths.
func (s *SmartAuth) keyFiles() (map[string]string, error) {
	if len(s.SigningKeys) == 0 {
		return nil, nil
	}
	repl := caddy.NewReplacer()
	files := make(map[string]string, len(s.SigningKeys))
	for _, k := range s.SigningKeys {
		path, err := repl.ReplaceOrErr(k.File, true, true)
		if err != nil {
			return nil, fmt.Errorf("signing_key %s: %w", k.Alg, err)
		}
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("signing_key %s: key file unreadable: %w", k.Alg, err)
		}
		files[k.Alg] = path
	}
	return files, nil
}

// expandPath resolves the placeholders of a path option (storage,
// templates) as Caddy does, at provisioning: {env.*}, {file.*} and the
// other global placeholders. An unknown, unset or empty one is an error
// that names the option, rather than a directory literally named
// "{env.X}".
func expandPath(opt, v string) (string, error) {
	if v == "" {
		return "", nil
	}
	out, err := caddy.NewReplacer().ReplaceOrErr(v, true, true)
	if err != nil {
		return "", fmt.Errorf("%s %s: a placeholder is unset, empty or unknown (%v)", opt, v, err)
	}
	if strings.TrimSpace(out) == "" {
		return "", fmt.Errorf("%s %s: resolves to an empty path", opt, v)
	}
	return out, nil
}
