package authz

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/smartcaddy/smartauth/handlers/oauth"
)

// discoveryMaxAge is how long clients may cache the discovery documents
// and the JWKS. Keys are published this long before they sign (keys.Ring's
// PublishAhead), so a client with a cached JWKS always knows the signer.
const discoveryMaxAge = 5 * time.Minute

// Capabilities this server implements (SMART App Launch 2.2 §
// "Capabilities"). Only defined names: the spec's examples list
// context-passthrough-* names that do not exist.
var capabilities = []string{
	"launch-ehr",
	"launch-standalone",
	"authorize-post",
	"client-public",
	"client-confidential-symmetric",
	"client-confidential-asymmetric",
	"sso-openid-connect",
	"context-banner",
	"context-style",
	"context-ehr-patient",
	"context-ehr-encounter",
	"context-standalone-patient",
	"permission-offline",
	"permission-online",
	"permission-patient",
	"permission-user",
	"permission-v1",
	"permission-v2",
}

// scopesSupported lists scopes every configured client may request. The
// SMART spec requires the server to support every scope it lists; resource
// scopes are shown by their wildcard forms.
var scopesSupported = []string{
	"openid", "fhirUser", "profile",
	"launch", "launch/patient", "launch/encounter",
	"offline_access", "online_access",
	"patient/*.cruds", "patient/*.rs", "patient/*.read", "patient/*.write", "patient/*.*",
	"user/*.cruds", "user/*.rs", "user/*.read", "user/*.write", "user/*.*",
	"system/*.cruds", "system/*.rs", "system/*.read", "system/*.write", "system/*.*",
}

// Client authentication methods and their signing algorithms.
var (
	authMethods = []string{"client_secret_basic", "client_secret_post", "private_key_jwt"}
	// SMART requires RS384 and ES384; RS256 and ES256 are accepted where a
	// client's keys say so.
	assertionAlgs = []string{"RS384", "ES384", "RS256", "ES256"}
	// idTokenAlgs are the id_token signing algorithms: RS256 by default,
	// as OpenID Connect requires, ES256 for a client that registered
	// id_token_signed_response_alg ES256 (dynamic registration, or the
	// client option in the configuration); the token service signs with
	// exactly these.
	idTokenAlgs = []string{"RS256", "ES256"}
)

// smartConfiguration is the document at {fhir_base}/.well-known/smart-configuration.
type smartConfiguration struct {
	Issuer                            string   `json:"issuer"`
	JWKSURI                           string   `json:"jwks_uri"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgs      []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	RegistrationEndpoint              string   `json:"registration_endpoint,omitempty"`
	ScopesSupported                   []string `json:"scopes_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ManagementEndpoint                string   `json:"management_endpoint,omitempty"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint,omitempty"`
	RevocationEndpoint                string   `json:"revocation_endpoint,omitempty"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint,omitempty"`
	Capabilities                      []string `json:"capabilities"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
}

// openIDConfiguration is the OpenID Connect Discovery 1.0 document at
// {issuer}/.well-known/openid-configuration; the same document answers RFC
// 8414's /.well-known/oauth-authorization-server{path}.
type openIDConfiguration struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint,omitempty"`
	JWKSURI                           string   `json:"jwks_uri"`
	RegistrationEndpoint              string   `json:"registration_endpoint,omitempty"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint,omitempty"`
	RevocationEndpoint                string   `json:"revocation_endpoint,omitempty"`
	ScopesSupported                   []string `json:"scopes_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgs      []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	RequestParameterSupported         bool     `json:"request_parameter_supported"`
	ClaimsParameterSupported          bool     `json:"claims_parameter_supported"`
}

// registrationEndpoint is the dynamic registration URL, or "" when
// registration is off (Options.RegistrationEndpoint).
func (s *Server) registrationEndpoint() string {
	return s.cfg.RegistrationEndpoint
}

// grantTypes lists the grants the token endpoint supports.
func (s *Server) grantTypes() []string {
	var out []string
	for _, g := range oauth.GrantTypes() {
		out = append(out, string(g))
	}
	return out
}

// buildSMARTConfiguration renders the SMART configuration document.
func (s *Server) buildSMARTConfiguration() ([]byte, error) {
	return json.MarshalIndent(smartConfiguration{
		Issuer:                            s.cfg.Issuer.String(),
		JWKSURI:                           s.Endpoint(PathJWKS),
		AuthorizationEndpoint:             s.Endpoint(PathAuthorize),
		TokenEndpoint:                     s.Endpoint(PathToken),
		GrantTypesSupported:               s.grantTypes(),
		TokenEndpointAuthMethodsSupported: authMethods,
		TokenEndpointAuthSigningAlgs:      assertionAlgs,
		ScopesSupported:                   scopesSupported,
		ResponseTypesSupported:            []string{"code"},
		UserinfoEndpoint:                  s.Endpoint(PathUserinfo),
		RegistrationEndpoint:              s.registrationEndpoint(),
		ManagementEndpoint:                s.Endpoint(PathManage),
		IntrospectionEndpoint:             s.Endpoint(PathIntrospect),
		RevocationEndpoint:                s.Endpoint(PathRevoke),
		Capabilities:                      capabilities,
		CodeChallengeMethodsSupported:     []string{"S256"},
	}, "", "  ")
}

// buildOpenIDConfiguration renders the OpenID Connect Discovery document.
func (s *Server) buildOpenIDConfiguration() ([]byte, error) {
	return json.MarshalIndent(openIDConfiguration{
		Issuer:                            s.cfg.Issuer.String(),
		AuthorizationEndpoint:             s.Endpoint(PathAuthorize),
		TokenEndpoint:                     s.Endpoint(PathToken),
		UserinfoEndpoint:                  s.Endpoint(PathUserinfo),
		JWKSURI:                           s.Endpoint(PathJWKS),
		RegistrationEndpoint:              s.registrationEndpoint(),
		IntrospectionEndpoint:             s.Endpoint(PathIntrospect),
		RevocationEndpoint:                s.Endpoint(PathRevoke),
		ScopesSupported:                   scopesSupported,
		ResponseTypesSupported:            []string{"code"},
		ResponseModesSupported:            []string{"query"},
		GrantTypesSupported:               s.grantTypes(),
		SubjectTypesSupported:             []string{"public"},
		IDTokenSigningAlgValuesSupported:  idTokenAlgs,
		TokenEndpointAuthMethodsSupported: authMethods,
		TokenEndpointAuthSigningAlgs:      assertionAlgs,
		ClaimsSupported:                   []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "fhirUser", "name"},
		CodeChallengeMethodsSupported:     []string{"S256"},
	}, "", "  ")
}

// serveSMARTConfiguration answers {fhir_base}/.well-known/smart-configuration
// (and its site-root fallback).
func (s *Server) serveSMARTConfiguration(w http.ResponseWriter, r *http.Request) {
	servePublicJSON(w, r, s.smartConfig)
}

// serveOpenIDConfiguration answers {issuer}/.well-known/openid-configuration
// and /.well-known/oauth-authorization-server{issuer path}.
func (s *Server) serveOpenIDConfiguration(w http.ResponseWriter, r *http.Request) {
	servePublicJSON(w, r, s.oidcConfig)
}

// servePublicJSON serves a public, cacheable JSON document to any origin,
// with an ETag so that clients can revalidate cheaply. It answers JSON
// whatever the Accept header says (SMART requires it).
func servePublicJSON(w http.ResponseWriter, r *http.Request, body []byte) {
	if oauth.AllowAnyOrigin(w, r, "GET, HEAD, OPTIONS") {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		oauth.Write(w, &oauth.Error{Status: http.StatusMethodNotAllowed, Code: oauth.CodeInvalidRequest, Description: "use GET"})
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(discoveryMaxAge/time.Second)))
	h.Set("ETag", etag(body))
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// etag is a strong entity tag for a body.
func etag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
}
