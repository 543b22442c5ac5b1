package store

import (
	"encoding/json"
	"time"
)

// Client types, named as SMART's capabilities name them.
const (
	ClientPublic                 = "public"
	ClientConfidentialSymmetric  = "confidential_symmetric"
	ClientConfidentialAsymmetric = "confidential_asymmetric"
)

// Client is a registered application. Clients from the Caddyfile are held in
// memory; clients from dynamic registration are persisted with this shape.
type Client struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	// Type is one of ClientPublic, ClientConfidentialSymmetric and
	// ClientConfidentialAsymmetric.
	Type string `json:"type"`
	// SecretHash is the client secret as HashSecret produced it.
	SecretHash   string   `json:"secret_hash,omitempty"`
	RedirectURIs []string `json:"redirect_uris,omitempty"`
	LaunchURI    string   `json:"launch_uri,omitempty"`
	// JWKS is an inline JSON Web Key Set with the client's public keys.
	JWKS json.RawMessage `json:"jwks,omitempty"`
	// JWKSURI is where the client publishes its public keys.
	JWKSURI    string   `json:"jwks_uri,omitempty"`
	Scopes     []string `json:"scopes,omitempty"`
	GrantTypes []string `json:"grant_types,omitempty"`
	// AllowSecretForClientCredentials lets a symmetric client use the
	// client_credentials grant, which SMART reserves for asymmetric ones.
	AllowSecretForClientCredentials bool `json:"allow_secret_for_client_credentials,omitempty"`
	// RegistrationTokenHash is the hash of the RFC 7592 registration
	// access token of a dynamically registered client.
	RegistrationTokenHash string    `json:"registration_token_hash,omitempty"`
	IssuedAt              time.Time `json:"issued_at,omitzero"`
	// CanCreateLaunch lets the client create EHR launch contexts through
	// the launch API (an EHR integration).
	CanCreateLaunch bool `json:"can_create_launch,omitempty"`
	// Dynamic is true for clients created through dynamic registration.
	Dynamic bool `json:"dynamic,omitempty"`
	// TokenEndpointAuthMethod is the method a dynamically registered
	// client registered (RFC 7591), echoed in its metadata. Either secret
	// method works at the token endpoint.
	TokenEndpointAuthMethod string `json:"token_endpoint_auth_method,omitempty"`
	// IDTokenSignedResponseAlg is the algorithm the client's id_tokens are
	// signed with (OpenID Connect Dynamic Client Registration): "RS256"
	// or "ES256"; empty for RS256, the OpenID default.
	IDTokenSignedResponseAlg string `json:"id_token_signed_response_alg,omitempty"`
}

// LaunchContext is the context that travels from a launch or a patient
// picker into the token response.
type LaunchContext struct {
	Patient           string            `json:"patient,omitempty"`
	Encounter         string            `json:"encounter,omitempty"`
	FHIRContext       []json.RawMessage `json:"fhirContext,omitempty"`
	NeedPatientBanner *bool             `json:"need_patient_banner,omitempty"`
	SmartStyleURL     string            `json:"smart_style_url,omitempty"`
	Intent            string            `json:"intent,omitempty"`
	Tenant            string            `json:"tenant,omitempty"`
}

// Launch is an EHR launch context waiting to be redeemed by an app.
type Launch struct {
	LaunchContext
	// ClientID, when set, is the only client that may redeem the launch.
	// The launch API requires it; the launcher page always sets it.
	ClientID string `json:"client_id,omitempty"`
	// User, when set, is the only user (by name) who may complete the
	// launch.
	User      string    `json:"user,omitempty"`
	CreatedBy string    `json:"created_by,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// AuthCode is an issued authorization code and everything the token
// endpoint must check and return when it is redeemed.
type AuthCode struct {
	ClientID      string    `json:"client_id"`
	RedirectURI   string    `json:"redirect_uri"`
	CodeChallenge string    `json:"code_challenge"`
	Scope         string    `json:"scope"`
	Subject       string    `json:"sub"`
	Nonce         string    `json:"nonce,omitempty"`
	AuthTime      time.Time `json:"auth_time"`
	// SessionHash is HashID of the sign-in session id (for online_access);
	// the session id itself is never stored.
	SessionHash string        `json:"session_hash,omitempty"`
	Context     LaunchContext `json:"context"`
	// FamilyID names the refresh-token family and the access tokens the
	// redemption issues, so that a replay can revoke them.
	FamilyID string `json:"family_id"`
	// Used is set by the first redemption.
	Used bool `json:"used,omitempty"`
	// Federated is the profile of a user signed in through an identity
	// provider without a configured entry; nil for a configured user.
	Federated *FederatedUser `json:"federated,omitempty"`
}

// FederatedUser is what the authorization server keeps of a user an
// identity provider signed in who has no configured entry (the provider
// accepts unlisted users): taken from the provider's verified claims at
// sign-in, carried by the session, the codes and the refresh tokens
// issued for the user. What the user may reach is still decided by the
// provider's current configuration (handlers/users.Federation).
type FederatedUser struct {
	// Provider names the identity provider (its configured name).
	Provider string `json:"idp"`
	// FHIRUser is the user's FHIR resource (Practitioner/…), relative;
	// empty when the claims gave none.
	FHIRUser    string `json:"fhir_user,omitempty"`
	DisplayName string `json:"name,omitempty"`
	// Scopes is the user's bound from the claims, already narrowed to
	// the operator's; nil for the operator's bound alone.
	Scopes []string `json:"scopes,omitempty"`
}

// Session is a user's sign-in session.
type Session struct {
	User     string    `json:"user"`
	AuthTime time.Time `json:"auth_time"`
	// Provider names the identity provider the user signed in through;
	// empty for password and trusted-identity sign-in.
	Provider string `json:"idp,omitempty"`
	// Federated is the profile of a user the provider signed in without
	// a configured entry.
	Federated *FederatedUser `json:"federated,omitempty"`
	// CSRF is the secret the session's forms are bound to.
	CSRF string `json:"csrf,omitempty"`
}

// RefreshToken is one member of a refresh-token family.
type RefreshToken struct {
	FamilyID string        `json:"family_id"`
	ClientID string        `json:"client_id"`
	Subject  string        `json:"sub"`
	Scope    string        `json:"scope"`
	Context  LaunchContext `json:"context"`
	// SessionHash binds an online_access token to the sign-in session:
	// HashID of the session id, which is never stored.
	SessionHash string    `json:"session_hash,omitempty"`
	AuthTime    time.Time `json:"auth_time"`
	IssuedAt    time.Time `json:"issued_at"`
	// Used is set when the token was exchanged for its successor, or
	// superseded.
	Used bool `json:"used,omitempty"`
	// UsedAt is when the token was first exchanged (the refresh grace
	// period runs from it), or superseded.
	UsedAt time.Time `json:"used_at,omitzero"`
	// Successor is HashID of the token last issued in exchange for this
	// one (the record key, not the token), so that a retry within the
	// grace period can invalidate it.
	Successor string `json:"successor,omitempty"`
	// Superseded is set when a retry of the predecessor within the grace
	// period replaced this token before it was used.
	Superseded bool `json:"superseded,omitempty"`
	// Federated is the profile of a user an identity provider signed in
	// without a configured entry, carried from the code to every
	// successor.
	Federated *FederatedUser `json:"federated,omitempty"`
}

// Consent is what a user granted a client, remembered for later launches.
type Consent struct {
	User      string    `json:"user"`
	ClientID  string    `json:"client_id"`
	Scopes    []string  `json:"scopes"`
	GrantedAt time.Time `json:"granted_at"`
}

// Revocation is one entry of the revocation log.
type Revocation struct {
	Kind  RevocationKind `json:"kind"`
	ID    string         `json:"id"`
	At    time.Time      `json:"at"`
	Until time.Time      `json:"until"`
}

// KeyRecord is a signing key. Generated keys keep their private half here
// (PKCS #8, DER); keys loaded from PEM files are recorded by their public
// half only, so that the JWKS keeps publishing them after the operator
// replaces the file.
type KeyRecord struct {
	KID string `json:"kid"`
	Alg string `json:"alg"`
	// PrivateKey is PKCS #8 DER; empty for keys from files.
	PrivateKey []byte `json:"private_key,omitempty"`
	// PublicJWK is the public key as a JWK.
	PublicJWK json.RawMessage `json:"public_jwk"`
	// External marks keys loaded from PEM files.
	External  bool      `json:"external,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// ActiveFrom is when the key starts signing. New keys are published
	// before they sign, so that verifiers with a cached JWKS know them.
	ActiveFrom time.Time `json:"active_from"`
	// RetiredAt is when a newer key replaced it; zero while current.
	RetiredAt time.Time `json:"retired_at,omitzero"`
	// PublishUntil is when the key leaves the JWKS: the moment every token
	// it signed has expired. Zero while current.
	PublishUntil time.Time `json:"publish_until,omitzero"`
}
