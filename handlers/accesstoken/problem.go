package accesstoken

import (
	"errors"
	"strings"

	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/smartcaddy/smartauth/keys"
)

// Problem says which check an access token failed in Verify, for the
// guard's 401 (error_description and the OperationOutcome): enough for an
// operator to tell a misconfiguration (a token of another issuer or for
// another FHIR server, a key this server never had) from garbage or a
// forged signature, and nothing secret — no claim value, no key, no part
// of the token. Expired and revoked tokens have their own messages in the
// guard; any other error reads "the access token is not valid".
func Problem(err error) string {
	const prefix = "the access token is not valid: "
	switch {
	case err == nil:
		return ""
	case errors.Is(err, keys.ErrUnknownKey):
		return prefix + "it is signed with a key this server does not have (unknown kid): another issuer's token, or a key retired long ago"
	case errors.Is(err, keys.ErrWrongType):
		return prefix + "it is not an access token (typ is not at+jwt)"
	case errors.Is(err, jwt.InvalidIssuerError()):
		return prefix + "it was issued by another issuer (iss)"
	case errors.Is(err, jwt.InvalidAudienceError()):
		return prefix + "it is for another FHIR server (aud)"
	case errors.Is(err, jwt.TokenNotYetValidError()):
		return prefix + "it is not valid yet (nbf)"
	case errors.Is(err, jwt.MissingRequiredClaimError()):
		return prefix + "it lacks a required claim (exp or jti)"
	case errors.Is(err, keys.ErrBadSignature), errors.Is(err, jws.VerificationError()), errors.Is(err, jws.VerifyError()),
		strings.Contains(err.Error(), "does not match key"):
		return prefix + "its signature does not verify"
	case strings.Contains(err.Error(), "malformed token"), strings.Contains(err.Error(), "no kid header"),
		strings.Contains(err.Error(), "exactly one signature"):
		return prefix + "it is not a signed JWT this server issues (compact JWS with a kid)"
	}
	return "the access token is not valid"
}
