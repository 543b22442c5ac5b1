package smartauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/smartcaddy/smartauth/handlers/clients"
	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/handlers/users"
	"github.com/smartcaddy/smartauth/scopes"
	"github.com/smartcaddy/smartauth/store"
)

// SigningKey names a PEM file holding the private key the server signs
// with for one algorithm, instead of a generated key.
type SigningKey struct {
	// Alg is the JWS algorithm: "RS256" or "ES256".
	Alg string `json:"alg"`
	// File is the path of a PEM private key (PKCS #8, PKCS #1 for RSA or
	// SEC1 for EC). Placeholders such as {env.KEY_PATH} are resolved at
	// provisioning.
	File string `json:"file"`
}

// ClientConfig is an application registered in the configuration. Clients
// from the configuration are read-only: dynamic registration cannot change
// them.
type ClientConfig struct {
	// ID is the client_id the app presents.
	ID string `json:"id"`
	// Name is the display name shown on the consent and launcher pages.
	Name string `json:"name,omitempty"`
	// Type is "public", "confidential_symmetric" (a client secret) or
	// "confidential_asymmetric" (private_key_jwt with registered public
	// keys). Default: derived from the credentials given (a secret makes
	// it symmetric, keys make it asymmetric, nothing makes it public).
	Type string `json:"type,omitempty"`
	// Secret is the client secret of a symmetric client, normally as a
	// placeholder ({env.APP_SECRET} or {file./run/secrets/app}) resolved at
	// provisioning so that it never appears in the adapted or autosaved
	// JSON. It is kept in memory only as a hash. A literal secret works
	// but is logged as a warning.
	Secret string `json:"secret,omitempty"`
	// SecretHash is the client secret's hash, as `caddy smart-auth
	// hash-secret` prints it (or a bcrypt hash, which is much slower to
	// check). Give Secret or SecretHash, not both.
	SecretHash string `json:"secret_hash,omitempty"`
	// RedirectURIs are the exact redirect URIs the app may use. https,
	// except on loopback hosts; no fragment.
	RedirectURIs []string `json:"redirect_uris,omitempty"`
	// LaunchURI is the app's launch URL for EHR launch and the launcher
	// page.
	LaunchURI string `json:"launch_uri,omitempty"`
	// JWKS is an inline JSON Web Key Set with the public keys of an
	// asymmetric client.
	JWKS json.RawMessage `json:"jwks,omitempty"`
	// JWKSFile is a file holding the client's JWK Set, read at
	// provisioning.
	JWKSFile string `json:"jwks_file,omitempty"`
	// JWKSURI is where an asymmetric client publishes its JWK Set. https,
	// except on loopback hosts.
	JWKSURI string `json:"jwks_uri,omitempty"`
	// Scopes are the scopes the client may be granted. A client that uses
	// client_credentials must list its system/ scopes; for other clients,
	// an empty list allows every scope the server supports.
	Scopes []string `json:"scopes,omitempty"`
	// GrantTypes are the grants the client may use: authorization_code,
	// refresh_token, client_credentials. Default: authorization_code and
	// refresh_token for clients with redirect URIs, client_credentials
	// for asymmetric clients without.
	GrantTypes []string `json:"grant_types,omitempty"`
	// AllowSecretForClientCredentials lets a symmetric client use the
	// client_credentials grant with its secret. SMART Backend Services
	// requires asymmetric authentication, so this is off by default.
	AllowSecretForClientCredentials bool `json:"allow_secret_for_client_credentials,omitempty"`
	// CreateLaunch lets the client (an EHR) create launch contexts with
	// POST {issuer}/launch, authenticating with its secret. Only for
	// confidential clients.
	CreateLaunch bool `json:"create_launch,omitempty"`
	// IDTokenSignedResponseAlg is the algorithm of the client's id_tokens:
	// "RS256" (default, as OpenID Connect requires) or "ES256" (about
	// a hundred times cheaper to sign), as OpenID Connect Dynamic Client
	// Registration's id_token_signed_response_alg.
	IDTokenSignedResponseAlg string `json:"id_token_signed_response_alg,omitempty"`
}

// UserConfig is a person who can sign in to the authorization server.
type UserConfig struct {
	// Name is the user name typed on the sign-in page, or the identity a
	// preceding Caddy authentication handler establishes.
	Name string `json:"name"`
	// PasswordHash is a bcrypt or argon2id hash, as `caddy hash-password`
	// (--algorithm bcrypt, the default, or argon2id) prints it.
	// Without one, the user can sign in only through a trusted preceding
	// authentication handler.
	PasswordHash string `json:"password_hash,omitempty"`
	// FHIRUser is the user's FHIR resource: Patient/…, Practitioner/…,
	// PractitionerRole/…, RelatedPerson/… or Person/….
	FHIRUser string `json:"fhir_user,omitempty"`
	// DisplayName is shown on the pages and returned as the id_token's
	// name claim.
	DisplayName string `json:"display_name,omitempty"`
	// Patients are the ids of the patients this user may pick.
	Patients []string `json:"patients,omitempty"`
	// Scopes bound what this user can grant an app and what a token
	// issued for the user can do at the FHIR API: resource scopes such as
	// `user/*.rs` or `user/Observation.cruds`. Empty: no bound beyond the
	// app's own scopes.
	Scopes []string `json:"scopes,omitempty"`
}

// Sign-in methods.
const (
	signInPassword = "password"
	signInTrusted  = "trusted_identity"
)

// Grant types a client may be allowed, as the store keeps them (strings);
// the token endpoint's typed constants (oauth.GrantType) are the source.
const (
	grantAuthorizationCode = string(oauth.GrantAuthorizationCode)
	grantRefreshToken      = string(oauth.GrantRefreshToken)
	grantClientCredentials = string(oauth.GrantClientCredentials)
)

var (
	fhirIDPattern   = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
	fhirUserPattern = regexp.MustCompile(`^(Patient|Practitioner|PractitionerRole|RelatedPerson|Person)/[A-Za-z0-9\-.]{1,64}$`)
	clientIDPattern = regexp.MustCompile(`^[\x21-\x7e]{1,128}$`)
)

// checkServerURL validates issuer and fhir_base: an absolute https URL
// (http only on loopback hosts), without query, fragment or user info.
func checkServerURL(value string) (*url.URL, error) {
	if value == "" {
		return nil, errors.New("is required")
	}
	u, err := url.Parse(value)
	if err != nil {
		return nil, fmt.Errorf("is not a valid URL: %v", err)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "":
		return nil, fmt.Errorf("%q is not an absolute http(s) URL", value)
	case u.Scheme == "http" && !clients.IsLoopbackHost(u.Hostname()):
		return nil, fmt.Errorf("%q must use https (plain http is accepted only on localhost)", value)
	case u.RawQuery != "" || u.ForceQuery:
		return nil, fmt.Errorf("%q must not have a query", value)
	case u.Fragment != "" || strings.Contains(value, "#"):
		return nil, fmt.Errorf("%q must not have a fragment", value)
	case u.User != nil:
		return nil, fmt.Errorf("%q must not contain user info", value)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// checkUpstreamURL validates the address of an upstream server the module
// calls itself (patient_search): an absolute http or https URL without
// query, fragment or user info. Plain http is allowed anywhere: upstream
// FHIR servers often sit on a private network behind Caddy.
func checkUpstreamURL(value string) (*url.URL, error) {
	u, err := url.Parse(value)
	switch {
	case err != nil:
		return nil, fmt.Errorf("is not a valid URL: %v", err)
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "":
		return nil, fmt.Errorf("%q is not an absolute http(s) URL", value)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(value, "#"):
		return nil, fmt.Errorf("%q must not have a query or fragment", value)
	case u.User != nil:
		return nil, fmt.Errorf("%q must not contain user info", value)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// checkAppURL validates a redirect URI (allowNative), launch URI or
// jwks_uri of a configured client by the clients' one policy
// (clients.CheckAppURL: absolute, https except on loopback hosts, no
// fragment, no user info; a redirect URI may also use a native app's
// private-use scheme such as com.example.app:/callback, RFC 8252 §7.1),
// phrased for the configuration.
func checkAppURL(value string, allowNative bool) error {
	kind := clients.LaunchURI
	if allowNative {
		kind = clients.RedirectURI
	}
	var ue *clients.URLError
	if err := clients.CheckAppURL(value, kind); !errors.As(err, &ue) {
		return err
	}
	switch ue.Problem {
	case clients.URLMalformed:
		return fmt.Errorf("%q is not a valid URL: %v", value, ue.Err)
	case clients.URLPlainHTTP:
		return fmt.Errorf("%q must use https (plain http is accepted only on localhost)", value)
	}
	return fmt.Errorf("%q %v", value, ue)
}

// normalize fills in derived defaults. It does not validate.
func (c *ClientConfig) normalize() {
	if c.Type == "" {
		switch {
		case c.Secret != "" || c.SecretHash != "":
			c.Type = store.ClientConfidentialSymmetric
		case len(c.JWKS) > 0 || c.JWKSFile != "" || c.JWKSURI != "":
			c.Type = store.ClientConfidentialAsymmetric
		default:
			c.Type = store.ClientPublic
		}
	}
	if len(c.GrantTypes) == 0 {
		if len(c.RedirectURIs) > 0 {
			c.GrantTypes = []string{grantAuthorizationCode, grantRefreshToken}
		} else if c.Type == store.ClientConfidentialAsymmetric {
			c.GrantTypes = []string{grantClientCredentials}
		}
	}
}

// check validates a client after normalize. Errors name the offending
// option; the caller adds the client id and, in the Caddyfile, the line.
func (c *ClientConfig) check() error {
	if !clientIDPattern.MatchString(c.ID) {
		return fmt.Errorf("client id %q: must be 1 to 128 printable characters without spaces", c.ID)
	}
	switch c.Type {
	case store.ClientPublic, store.ClientConfidentialSymmetric, store.ClientConfidentialAsymmetric:
	default:
		return fmt.Errorf("type %q: must be public, confidential_symmetric or confidential_asymmetric", c.Type)
	}
	hasSecret := c.Secret != "" || c.SecretHash != ""
	nKeys := 0
	for _, set := range []bool{len(c.JWKS) > 0, c.JWKSFile != "", c.JWKSURI != ""} {
		if set {
			nKeys++
		}
	}
	switch {
	case c.Secret != "" && c.SecretHash != "":
		return errors.New("secret and secret_hash: give one, not both")
	case c.Type == store.ClientConfidentialSymmetric && !hasSecret:
		return errors.New("secret: a confidential_symmetric client needs secret or secret_hash")
	case c.Type != store.ClientConfidentialSymmetric && hasSecret:
		return fmt.Errorf("secret: a %s client has no client secret", c.Type)
	case c.Type == store.ClientConfidentialAsymmetric && nKeys == 0:
		return errors.New("jwks: a confidential_asymmetric client needs jwks, jwks_file or jwks_uri")
	case nKeys > 1:
		return errors.New("jwks: give one of jwks, jwks_file and jwks_uri")
	case c.Type != store.ClientConfidentialAsymmetric && nKeys > 0:
		return fmt.Errorf("jwks: a %s client has no public keys", c.Type)
	}
	if c.SecretHash != "" {
		if err := store.CheckSecretHash(c.SecretHash); err != nil {
			return fmt.Errorf("secret_hash: %v", err)
		}
	}
	if len(c.JWKS) > 0 {
		if err := checkClientJWKS(c.JWKS); err != nil {
			return fmt.Errorf("jwks: %v", err)
		}
	}
	if c.JWKSURI != "" {
		if err := checkAppURL(c.JWKSURI, false); err != nil {
			return fmt.Errorf("jwks_uri: %v", err)
		}
	}
	for _, r := range c.RedirectURIs {
		if err := checkAppURL(r, true); err != nil {
			return fmt.Errorf("redirect_uri: %v", err)
		}
	}
	if c.LaunchURI != "" {
		if err := checkAppURL(c.LaunchURI, false); err != nil {
			return fmt.Errorf("launch_uri: %v", err)
		}
	}
	if err := c.checkScopes(); err != nil {
		return err
	}
	if len(c.GrantTypes) == 0 && !c.CreateLaunch {
		return errors.New("grant_types: none given and none implied (add redirect_uri for a user-facing app, or keys for a backend client)")
	}
	for _, g := range c.GrantTypes {
		switch g {
		case grantAuthorizationCode:
			if len(c.RedirectURIs) == 0 {
				return errors.New("redirect_uri: required for the authorization_code grant")
			}
		case grantRefreshToken:
			if !slices.Contains(c.GrantTypes, grantAuthorizationCode) {
				return errors.New("grant_types: refresh_token needs authorization_code")
			}
		case grantClientCredentials:
			switch {
			case c.Type == store.ClientPublic:
				return errors.New("grant_types: a public client cannot use client_credentials")
			case c.Type == store.ClientConfidentialSymmetric && !c.AllowSecretForClientCredentials:
				return errors.New("grant_types: client_credentials needs an asymmetric client (SMART Backend Services), or allow_secret_for_client_credentials")
			case len(c.Scopes) == 0:
				return errors.New("scopes: a client_credentials client must list the system/ scopes it may be granted")
			}
		default:
			return fmt.Errorf("grant_types: %q is not one of authorization_code, refresh_token, client_credentials", g)
		}
	}
	switch c.IDTokenSignedResponseAlg {
	case "", "RS256", "ES256":
	default:
		return fmt.Errorf("id_token_signed_response_alg: %q: must be RS256 or ES256", c.IDTokenSignedResponseAlg)
	}
	if c.CreateLaunch && c.Type == store.ClientPublic {
		return errors.New("create_launch: only a confidential client can create launches")
	}
	if c.AllowSecretForClientCredentials && c.Type != store.ClientConfidentialSymmetric {
		return errors.New("allow_secret_for_client_credentials: only for confidential_symmetric clients")
	}
	return nil
}

// scopeIntrospect is the extension scope that lets a client introspect
// every token (the token service's own name for it, handlers/authz/token).
const scopeIntrospect = "__introspect"

// checkScopes parses the client's scopes with the parser registration and
// the token endpoint use (scopes.Parse), so that a typo is refused here
// instead of being silently never grantable. __introspect, the extension
// scope of introspection, is accepted too.
func (c *ClientConfig) checkScopes() error {
	for _, raw := range c.Scopes {
		if raw == scopeIntrospect {
			continue
		}
		if _, err := scopes.Parse(raw); err != nil {
			return fmt.Errorf("scopes: %q is not a scope this server supports: %v", raw, err)
		}
	}
	return nil
}

// ungrantableScopes lists the client's scopes that parse but that its
// grant types can never grant: system/ scopes without client_credentials,
// other scopes without authorization_code (the rules registration
// enforces). Said as a warning: a list shared by several clients is
// valid, only partly useful.
func (c *ClientConfig) ungrantableScopes() []string {
	code := slices.Contains(c.GrantTypes, grantAuthorizationCode)
	backend := slices.Contains(c.GrantTypes, grantClientCredentials)
	var out []string
	for _, raw := range c.Scopes {
		sc, err := scopes.Parse(raw)
		switch {
		case err != nil:
		case sc.Context == scopes.System && !backend:
			out = append(out, fmt.Sprintf("client %s: scopes: %s is never granted: system/ scopes come only with client_credentials", c.ID, raw))
		case sc.Context != scopes.System && !code:
			out = append(out, fmt.Sprintf("client %s: scopes: %s is never granted: without authorization_code a client gets system/ scopes only", c.ID, raw))
		}
	}
	return out
}

// checkClientJWKS checks a configured client's JWK Set by the clients'
// one key policy (clients.CheckJWKS): the token endpoint would refuse any
// key it refuses, so the configuration is refused at once instead.
func checkClientJWKS(raw []byte) error {
	set, err := clients.ParseJWKS(raw)
	if err != nil {
		return err
	}
	return clients.CheckJWKS(set)
}

// check validates a user. Errors name the offending option.
func (u *UserConfig) check() error {
	if u.Name == "" || strings.ContainsAny(u.Name, " \t\r\n") {
		return fmt.Errorf("user name %q: must be non-empty, without spaces", u.Name)
	}
	if u.PasswordHash != "" {
		if err := users.CheckPasswordHash(u.PasswordHash); err != nil {
			return fmt.Errorf("password_hash: %v", err)
		}
	}
	if u.FHIRUser != "" && !fhirUserPattern.MatchString(u.FHIRUser) {
		return fmt.Errorf("fhir_user %q: must be Patient/<id>, Practitioner/<id>, PractitionerRole/<id>, RelatedPerson/<id> or Person/<id>", u.FHIRUser)
	}
	for _, p := range u.Patients {
		if !fhirIDPattern.MatchString(p) {
			return fmt.Errorf("patients: %q is not a FHIR resource id", p)
		}
	}
	for _, v := range u.Scopes {
		sc, err := scopes.Parse(v)
		if err != nil {
			return fmt.Errorf("scopes: %q: %v", v, err)
		}
		if !sc.IsResource() || sc.Context == scopes.System {
			return fmt.Errorf("scopes: %q: a user's bound is made of patient/ and user/ resource scopes", v)
		}
	}
	return nil
}

// checkSigningKey validates a signing_key entry.
func (k SigningKey) check() error {
	if k.Alg != "RS256" && k.Alg != "ES256" {
		return fmt.Errorf("signing_key: algorithm %q: must be RS256 or ES256", k.Alg)
	}
	if k.File == "" {
		return fmt.Errorf("signing_key %s: a PEM file is required", k.Alg)
	}
	return nil
}

// maxRefreshGrace bounds refresh_grace_period: long enough for an app to
// retry a refresh whose answer was lost, short enough that a stolen,
// rotated token is useless soon after.
const maxRefreshGrace = 5 * time.Minute

// checkRefreshGrace validates refresh_grace_period: 0 (strict rotation,
// the default) to maxRefreshGrace.
func checkRefreshGrace(d time.Duration) error {
	if d < 0 || d > maxRefreshGrace {
		return fmt.Errorf("%s: must be between 0 (strict rotation) and %s", d, maxRefreshGrace)
	}
	return nil
}

// checkOrigin validates a web origin: scheme and host, optional port,
// nothing else.
func checkOrigin(o string) error {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q is not an origin (scheme://host[:port])", o)
	}
	return nil
}
