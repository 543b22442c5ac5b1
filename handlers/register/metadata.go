package register

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"unicode"

	"github.com/smartcaddy/smartauth/handlers/clients"
	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/scopes"
	"github.com/smartcaddy/smartauth/store"
)

// The id_token signing algorithms a client may register
// (id_token_signed_response_alg): what the discovery document's
// id_token_signing_alg_values_supported lists.
const (
	IDTokenAlgRS256 = "RS256"
	IDTokenAlgES256 = "ES256"
)

// Token endpoint authentication methods a client may register.
const (
	authMethodNone              = "none"
	authMethodSecretBasic       = "client_secret_basic"
	authMethodSecretPost        = "client_secret_post"
	authMethodPrivateKeyJWT     = "private_key_jwt"
	responseTypeCode            = "code"
	registrationDefaultAuthMeth = authMethodSecretBasic
)

// clientMetadata is the JSON body of a registration (RFC 7591 §2) or
// client update (RFC 7592 §2.2) request. Unknown fields are ignored, as
// RFC 7591 requires; so are the read-only fields of an update
// (registration_access_token, registration_client_uri,
// client_id_issued_at, client_secret_expires_at).
type clientMetadata struct {
	RedirectURIs            []string        `json:"redirect_uris"`
	ClientName              string          `json:"client_name"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method"`
	GrantTypes              []string        `json:"grant_types"`
	ResponseTypes           []string        `json:"response_types"`
	JWKS                    json.RawMessage `json:"jwks"`
	JWKSURI                 string          `json:"jwks_uri"`
	Scope                   string          `json:"scope"`
	// LaunchURI is SMART's extension: the app's EHR launch URL.
	LaunchURI         string `json:"launch_uri"`
	SoftwareStatement string `json:"software_statement"`
	// IDTokenSignedResponseAlg is OpenID Connect Dynamic Client
	// Registration's: the algorithm of the client's id_tokens, RS256 (the
	// default) or ES256.
	IDTokenSignedResponseAlg string `json:"id_token_signed_response_alg"`

	// ClientID and ClientSecret are checked on update only.
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

// readClientMetadata reads a JSON body of at most registrationMaxBody
// bytes.
func readClientMetadata(w http.ResponseWriter, r *http.Request) (*clientMetadata, *oauth.Error) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, oauth.New(oauth.CodeInvalidClientMetadata, "the request body must be JSON (Content-Type: application/json)")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, registrationMaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &oauth.Error{Status: http.StatusRequestEntityTooLarge, Code: oauth.CodeInvalidClientMetadata,
				Description: fmt.Sprintf("the request body exceeds %d bytes", registrationMaxBody)}
		}
		return nil, oauth.New(oauth.CodeInvalidClientMetadata, "the request body could not be read")
	}
	var md clientMetadata
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&md); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return nil, oauth.New(oauth.CodeInvalidClientMetadata, typeErr.Field+": has the wrong JSON type")
		}
		return nil, oauth.New(oauth.CodeInvalidClientMetadata, "the request body is not a JSON object")
	}
	if dec.More() {
		return nil, oauth.New(oauth.CodeInvalidClientMetadata, "the request body holds more than one JSON value")
	}
	return &md, nil
}

// registration is checked client metadata, ready to become a client.
type registration struct {
	name         string
	authMethod   string
	clientType   string
	redirectURIs []string
	launchURI    string
	jwks         json.RawMessage
	jwksURI      string
	scopes       []string
	grantTypes   []string
	idTokenAlg   string
}

// client builds the stored record; the caller adds the secret, the
// registration token hash and the issue time.
func (g *registration) client(id string) *store.Client {
	return &store.Client{
		ID:           id,
		Name:         g.name,
		Type:         g.clientType,
		RedirectURIs: g.redirectURIs,
		LaunchURI:    g.launchURI,
		JWKS:         g.jwks,
		JWKSURI:      g.jwksURI,
		Scopes:       g.scopes,
		GrantTypes:   g.grantTypes,
		Dynamic:      true,

		TokenEndpointAuthMethod:  g.authMethod,
		IDTokenSignedResponseAlg: g.idTokenAlg,
	}
}

// checkClientMetadata validates registration metadata (RFC 7591 §2) and
// fills in its defaults: token_endpoint_auth_method client_secret_basic,
// grant_types authorization_code, response_types code. Errors are RFC
// 7591 §3.2.2 codes: invalid_redirect_uri for a bad redirect URI,
// invalid_client_metadata for anything else. open is a registration
// nobody vouched for (no initial access token): it may not register
// client_credentials.
func (s *Registrar) checkClientMetadata(md *clientMetadata, open bool) (*registration, *oauth.Error) {
	bad := func(format string, a ...any) *oauth.Error {
		return oauth.New(oauth.CodeInvalidClientMetadata, fmt.Sprintf(format, a...))
	}
	g := &registration{authMethod: md.TokenEndpointAuthMethod}
	if g.authMethod == "" {
		g.authMethod = registrationDefaultAuthMeth
	}
	switch g.authMethod {
	case authMethodNone:
		g.clientType = store.ClientPublic
	case authMethodSecretBasic, authMethodSecretPost:
		g.clientType = store.ClientConfidentialSymmetric
	case authMethodPrivateKeyJWT:
		g.clientType = store.ClientConfidentialAsymmetric
	default:
		return nil, bad("token_endpoint_auth_method: %s is not one of none, client_secret_basic, client_secret_post, private_key_jwt", oauth.Truncate(g.authMethod))
	}

	if len(md.ClientName) > registrationMaxName || strings.IndexFunc(md.ClientName, unicode.IsControl) >= 0 {
		return nil, bad("client_name: at most %d characters, without control characters", registrationMaxName)
	}
	g.name = strings.TrimSpace(md.ClientName)

	// Keys: private_key_jwt needs exactly one of jwks and jwks_uri; the
	// other methods take none.
	hasJWKS := len(md.JWKS) > 0 && string(md.JWKS) != "null"
	switch {
	case hasJWKS && md.JWKSURI != "":
		return nil, bad("jwks and jwks_uri: give one, not both")
	case g.clientType == store.ClientConfidentialAsymmetric && !hasJWKS && md.JWKSURI == "":
		return nil, bad("private_key_jwt needs the client's public keys: jwks_uri (preferred) or jwks")
	case g.clientType != store.ClientConfidentialAsymmetric && (hasJWKS || md.JWKSURI != ""):
		return nil, bad("jwks and jwks_uri are for private_key_jwt only, not %s", g.authMethod)
	}
	if hasJWKS {
		compact, err := checkRegisteredJWKS(md.JWKS)
		if err != nil {
			return nil, bad("jwks: %v", err)
		}
		g.jwks = compact
	}
	if md.JWKSURI != "" {
		if err := checkRegisteredURL(md.JWKSURI, false); err != nil {
			return nil, bad("jwks_uri: %v", err)
		}
		g.jwksURI = md.JWKSURI
	}

	if f := g.checkGrants(md, open); f != nil {
		return nil, f
	}
	if f := g.checkRedirects(md); f != nil {
		return nil, f
	}
	if f := g.checkScopes(md.Scope); f != nil {
		return nil, f
	}
	switch md.IDTokenSignedResponseAlg {
	case "", IDTokenAlgRS256, IDTokenAlgES256:
		g.idTokenAlg = md.IDTokenSignedResponseAlg
	default:
		return nil, bad("id_token_signed_response_alg: %s is not one of RS256, ES256", oauth.Truncate(md.IDTokenSignedResponseAlg))
	}
	return g, nil
}

// checkGrants validates grant_types and response_types against the
// authentication method: client_credentials only with private_key_jwt
// (SMART Backend Services) and never through open registration;
// refresh_token only with authorization_code; response_types code exactly
// when authorization_code is registered.
func (g *registration) checkGrants(md *clientMetadata, open bool) *oauth.Error {
	bad := func(format string, a ...any) *oauth.Error {
		return oauth.New(oauth.CodeInvalidClientMetadata, fmt.Sprintf(format, a...))
	}
	grants := md.GrantTypes
	if len(grants) == 0 {
		grants = []string{string(oauth.GrantAuthorizationCode)}
	}
	for _, gt := range grants {
		if !oauth.GrantType(gt).Known() {
			return bad("grant_types: %s is not one of authorization_code, refresh_token, client_credentials", oauth.Truncate(gt))
		}
		if !slices.Contains(g.grantTypes, gt) {
			g.grantTypes = append(g.grantTypes, gt)
		}
	}
	code := oauth.GrantAuthorizationCode.In(g.grantTypes)
	switch {
	case oauth.GrantRefreshToken.In(g.grantTypes) && !code:
		return bad("grant_types: refresh_token needs authorization_code")
	case oauth.GrantClientCredentials.In(g.grantTypes) && g.clientType != store.ClientConfidentialAsymmetric:
		return bad("grant_types: client_credentials needs token_endpoint_auth_method private_key_jwt (SMART Backend Services)")
	case oauth.GrantClientCredentials.In(g.grantTypes) && open:
		return bad("grant_types: client_credentials cannot be registered without an initial access token")
	}

	responses := md.ResponseTypes
	if len(responses) == 0 && code {
		responses = []string{responseTypeCode}
	}
	for _, rt := range responses {
		if rt != responseTypeCode {
			return bad("response_types: %s is not supported; the only response type is code", oauth.Truncate(rt))
		}
	}
	if code != (len(responses) > 0) {
		return bad("response_types: code goes with the authorization_code grant, and only with it")
	}
	return nil
}

// checkRedirects validates redirect_uris (invalid_redirect_uri) and
// launch_uri.
func (g *registration) checkRedirects(md *clientMetadata) *oauth.Error {
	code := oauth.GrantAuthorizationCode.In(g.grantTypes)
	switch {
	case code && len(md.RedirectURIs) == 0:
		return oauth.New(oauth.CodeInvalidRedirectURI, "redirect_uris: at least one is required for the authorization_code grant")
	case !code && len(md.RedirectURIs) > 0:
		return oauth.New(oauth.CodeInvalidRedirectURI, "redirect_uris: only a client using authorization_code has redirect URIs")
	case len(md.RedirectURIs) > registrationMaxRedirects:
		return oauth.New(oauth.CodeInvalidRedirectURI, fmt.Sprintf("redirect_uris: at most %d", registrationMaxRedirects))
	}
	for _, u := range md.RedirectURIs {
		if err := checkRegisteredURL(u, true); err != nil {
			return oauth.New(oauth.CodeInvalidRedirectURI, "redirect_uris: "+err.Error())
		}
		if !slices.Contains(g.redirectURIs, u) {
			g.redirectURIs = append(g.redirectURIs, u)
		}
	}
	if md.LaunchURI != "" {
		if !code {
			return oauth.New(oauth.CodeInvalidClientMetadata, "launch_uri: only a client using authorization_code can be launched")
		}
		if err := checkRegisteredURL(md.LaunchURI, false); err != nil {
			return oauth.New(oauth.CodeInvalidClientMetadata, "launch_uri: "+err.Error())
		}
		g.launchURI = md.LaunchURI
	}
	return nil
}

// checkScopes parses scope with the scopes package: every scope must be
// one this server knows; system/ scopes only for client_credentials, which
// needs at least one; a client without authorization_code gets system/
// scopes only. An empty scope lets an authorization_code client ask for
// any scope the server supports (the user still consents).
func (g *registration) checkScopes(scope string) *oauth.Error {
	bad := func(format string, a ...any) *oauth.Error {
		return oauth.New(oauth.CodeInvalidClientMetadata, fmt.Sprintf(format, a...))
	}
	list := scopes.Split(scope)
	if len(list) > registrationMaxScopes {
		return bad("scope: at most %d scopes", registrationMaxScopes)
	}
	code := oauth.GrantAuthorizationCode.In(g.grantTypes)
	backend := oauth.GrantClientCredentials.In(g.grantTypes)
	system := 0
	for _, raw := range list {
		sc, err := scopes.Parse(raw)
		switch {
		case err != nil:
			return bad("scope: %s is not a scope this server supports", oauth.Truncate(raw))
		case sc.Context == scopes.System && !backend:
			return bad("scope: %s: system/ scopes are only for the client_credentials grant", oauth.Truncate(raw))
		case sc.Context != scopes.System && !code:
			return bad("scope: %s: a client_credentials client is granted system/ scopes only", oauth.Truncate(raw))
		}
		if sc.Context == scopes.System {
			system++
		}
		if !slices.Contains(g.scopes, raw) {
			g.scopes = append(g.scopes, raw)
		}
	}
	if backend && system == 0 {
		return bad("scope: a client_credentials client must list the system/ scopes it may be granted")
	}
	return nil
}

// checkRegisteredURL validates a redirect URI, launch URI or jwks_uri by
// the clients' one policy (clients.CheckAppURL: an absolute https URL,
// plain http only on loopback hosts, no fragment and no user info; a
// redirect URI may also use a native app's private-use scheme, a reverse
// domain name such as com.example.app:/cb, RFC 8252 §7.1), phrased for an
// RFC 7591 error description.
func checkRegisteredURL(raw string, redirect bool) error {
	kind := clients.LaunchURI
	if redirect {
		kind = clients.RedirectURI
	}
	if err := clients.CheckAppURL(raw, kind); err != nil {
		return fmt.Errorf("%s %v", oauth.Truncate(raw), err)
	}
	return nil
}
