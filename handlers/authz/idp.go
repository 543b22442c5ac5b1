package authz

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"go.uber.org/zap"
	"golang.org/x/oauth2"
)

// The authorization server is a relying party of the operator's OpenID
// Providers (the hospital's single sign-on): a user signs in there, with
// the authorization code flow and PKCE, and comes back signed in here
// (idp_flow.go). This file holds a provider's settings and its client:
// the discovery document, fetched when first needed and kept
// (idpDiscoveryTTL), the id_token verifier (github.com/coreos/go-oidc/v3:
// signature, issuer, audience, expiry) and the OAuth client
// (golang.org/x/oauth2) of the code exchange.
const (
	// idpDiscoveryTTL is how long a fetched discovery document is used
	// before it is fetched again; a failed refetch keeps the old one up
	// to idpDiscoveryMaxStale.
	idpDiscoveryTTL      = time.Hour
	idpDiscoveryMaxStale = 24 * time.Hour
	// idpHealthMaxAge is how old the last successful contact with a
	// provider may be before the readiness check contacts it again.
	idpHealthMaxAge = time.Minute
	// idpHTTPTimeout bounds every request to a provider.
	idpHTTPTimeout = 10 * time.Second
	// DefaultIDPClockSkew is the clock skew tolerated on a provider's
	// id_tokens (exp, auth_time) when none is configured.
	DefaultIDPClockSkew = 2 * time.Minute
	// idpMaxClaimValue bounds a claim value taken into a user's profile.
	idpMaxClaimValue = 256
)

// IdentityProvider is an OpenID Provider users may sign in through, as
// the operator configured it (the Caddyfile's identity_provider block).
type IdentityProvider struct {
	// Name identifies the provider in the configuration, in URLs, in
	// sessions and in the subjects of its unlisted users.
	Name string
	// DisplayName is shown on the sign-in button ("Sign in with …").
	DisplayName string
	// Issuer is the provider's issuer URL; its discovery document is at
	// {Issuer}/.well-known/openid-configuration.
	Issuer string
	// ClientID and ClientSecret are this server's client at the
	// provider. An empty secret: a public client (PKCE alone).
	ClientID     string
	ClientSecret string
	// Scopes are requested from the provider; openid is always added.
	Scopes []string
	// UsernameClaim is the claim whose value names the configured user
	// the provider's user is (and, for an unlisted user, the id in its
	// subject). Default "sub".
	UsernameClaim string
	// AcceptUnlisted lets in users whose UsernameClaim names no
	// configured user, built from the claims below.
	AcceptUnlisted bool
	// FHIRUser gives an unlisted user's fhirUser: a claim name, or a
	// template with {claims.<name>} (ParseClaimTemplate).
	FHIRUser string
	// DisplayNameClaim gives an unlisted user's display name. Default
	// "name".
	DisplayNameClaim string
	// ScopesClaim, when set, narrows an unlisted user's bound
	// (UserScopes) to the scopes the claim lists.
	ScopesClaim string
	// UserScopes is the operator's bound on unlisted users (patient/ and
	// user/ resource scopes). Empty: no user/ scopes at all.
	UserScopes []string
	// Require are claim values a user must have to sign in at all.
	Require []ClaimRule
	// ClockSkew is tolerated on the id_token's times; zero for
	// DefaultIDPClockSkew.
	ClockSkew time.Duration
}

// ClaimRule requires a claim to hold one of Values (a string claim equal
// to one, or a list claim containing one).
type ClaimRule struct {
	Claim  string
	Values []string
}

// idpMeta are the discovery fields go-oidc does not keep.
type idpMeta struct {
	EndSession string `json:"end_session_endpoint"`
	// IssParam is RFC 9207's authorization_response_iss_parameter_supported.
	IssParam bool `json:"authorization_response_iss_parameter_supported"`
}

// idpDiscovery is a fetched discovery document.
type idpDiscovery struct {
	provider *oidc.Provider
	meta     idpMeta
	fetched  time.Time
}

// idpClient is the relying party of one provider: its settings, its
// parsed fhirUser template and its cached discovery. Safe for concurrent
// use.
type idpClient struct {
	cfg      IdentityProvider
	fhirUser claimTemplate
	http     *http.Client
	logger   *zap.Logger

	// mu serializes fetches; disc is the last fetched document, nil
	// before the first success.
	mu   sync.Mutex
	disc *idpDiscovery
}

// newIDPClients builds the clients of the configured providers, by name.
// Nothing is fetched: a provider that cannot be reached does not stop the
// server from starting.
func newIDPClients(list []IdentityProvider, logger *zap.Logger) (map[string]*idpClient, []string, error) {
	out := make(map[string]*idpClient, len(list))
	order := make([]string, 0, len(list))
	for _, p := range list {
		if p.Name == "" || p.Issuer == "" || p.ClientID == "" {
			return nil, nil, errors.New("authz: an identity provider needs a name, an issuer and a client id")
		}
		if _, dup := out[p.Name]; dup {
			return nil, nil, fmt.Errorf("authz: identity provider %q given twice", p.Name)
		}
		tmpl, err := ParseClaimTemplate(p.FHIRUser)
		if err != nil {
			return nil, nil, fmt.Errorf("authz: identity provider %q: fhir_user_claim: %w", p.Name, err)
		}
		if p.UsernameClaim == "" {
			p.UsernameClaim = "sub"
		}
		if p.DisplayNameClaim == "" {
			p.DisplayNameClaim = "name"
		}
		if p.DisplayName == "" {
			p.DisplayName = p.Name
		}
		if p.ClockSkew <= 0 {
			p.ClockSkew = DefaultIDPClockSkew
		}
		out[p.Name] = &idpClient{
			cfg: p, fhirUser: tmpl, logger: logger,
			http: &http.Client{Timeout: idpHTTPTimeout},
		}
		order = append(order, p.Name)
	}
	return out, order, nil
}

// discover returns the provider's discovery document: the cached one
// while younger than maxAge, else a fresh one. When the provider cannot
// be reached, a cached document up to idpDiscoveryMaxStale old is used
// (stale reports it); without one, the error says the provider is
// unreachable.
func (c *idpClient) discover(ctx context.Context, maxAge time.Duration) (d *idpDiscovery, stale error, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.disc != nil && time.Since(c.disc.fetched) < maxAge {
		return c.disc, nil, nil
	}
	fresh, err := c.fetch(ctx)
	if err == nil {
		c.disc = fresh
		return fresh, nil, nil
	}
	if c.disc != nil && time.Since(c.disc.fetched) < idpDiscoveryMaxStale {
		c.logger.Warn("identity provider discovery failed; using the cached document",
			zap.String("identity_provider", c.cfg.Name), zap.Error(err))
		return c.disc, err, nil
	}
	return nil, nil, err
}

// fetch reads the discovery document; go-oidc checks that its issuer is
// the configured one.
func (c *idpClient) fetch(ctx context.Context) (*idpDiscovery, error) {
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, c.http), idpHTTPTimeout)
	defer cancel()
	p, err := oidc.NewProvider(ctx, c.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("identity provider %q unreachable or invalid: %w", c.cfg.Name, err)
	}
	d := &idpDiscovery{provider: p, fetched: time.Now()}
	if err := p.Claims(&d.meta); err != nil {
		return nil, fmt.Errorf("identity provider %q: discovery document: %w", c.cfg.Name, err)
	}
	return d, nil
}

// oauth2Config is the OAuth client of the code exchange.
func (c *idpClient) oauth2Config(d *idpDiscovery, redirectURL string) *oauth2.Config {
	sc := []string{oidc.ScopeOpenID}
	for _, s := range c.cfg.Scopes {
		if s != oidc.ScopeOpenID {
			sc = append(sc, s)
		}
	}
	return &oauth2.Config{
		ClientID: c.cfg.ClientID, ClientSecret: c.cfg.ClientSecret,
		Endpoint: d.provider.Endpoint(), RedirectURL: redirectURL, Scopes: sc,
	}
}

// verifier checks an id_token's signature (keys from the provider's
// JWKS, refetched for an unknown key id), issuer, audience and expiry,
// with the clock skew tolerated.
func (c *idpClient) verifier(d *idpDiscovery) *oidc.IDTokenVerifier {
	skew := c.cfg.ClockSkew
	return d.provider.Verifier(&oidc.Config{
		ClientID: c.cfg.ClientID,
		Now:      func() time.Time { return time.Now().Add(-skew) },
	})
}

// CheckIdentityProviders is the readiness check of the identity
// providers: each one's discovery document was fetched within the last
// minute, or is fetched now. nil without providers.
func (s *Server) CheckIdentityProviders(ctx context.Context) error {
	var errs []string
	for _, name := range s.idpOrder {
		_, stale, err := s.idps[name].discover(ctx, idpHealthMaxAge)
		if err == nil {
			err = stale
		}
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// HasIdentityProviders tells whether users may sign in through an
// identity provider.
func (s *Server) HasIdentityProviders() bool { return len(s.idpOrder) > 0 }
