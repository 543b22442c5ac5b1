package oauth

// GrantType is a grant_type of the token endpoint (RFC 6749 §4), as a
// client names it in a token request, in its registered metadata
// (RFC 7591 §2) and as discovery lists it.
type GrantType string

// The grant types smartauth's token endpoint redeems.
const (
	// GrantAuthorizationCode redeems an authorization code (RFC 6749
	// §4.1.3) with its PKCE verifier.
	GrantAuthorizationCode GrantType = "authorization_code"
	// GrantRefreshToken rotates a refresh token (RFC 6749 §6).
	GrantRefreshToken GrantType = "refresh_token"
	// GrantClientCredentials is SMART Backend Services' grant (RFC 6749
	// §4.4, with a private_key_jwt client assertion).
	GrantClientCredentials GrantType = "client_credentials"
)

// GrantTypes returns every grant type the token endpoint redeems, in the
// order discovery lists them.
func GrantTypes() []GrantType {
	return []GrantType{GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials}
}

// Known tells whether g is one of GrantTypes.
func (g GrantType) Known() bool {
	switch g {
	case GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials:
		return true
	}
	return false
}

// In tells whether g is one of grants, a client's registered grant_types.
func (g GrantType) In(grants []string) bool {
	for _, x := range grants {
		if x == string(g) {
			return true
		}
	}
	return false
}
