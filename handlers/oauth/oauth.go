// Package oauth holds what every OAuth 2.0 endpoint and the FHIR guard
// share on the wire: the one error type (RFC 6749 §5.2, RFC 7591 §3.2.2,
// RFC 6750 §3.1), its JSON writer, the WWW-Authenticate challenges (Bearer
// and Basic) and the Bearer token parser, and the JSON and CORS helpers of
// the public endpoints.
//
// It imports only the standard library. The bodies and headers it writes
// are fixed by the specifications and by smartauth's tests, byte for byte.
package oauth

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error codes used by more than one endpoint (RFC 6749 §5.2, RFC 6750
// §3.1, RFC 7591 §3.2.2).
const (
	CodeInvalidRequest         = "invalid_request"
	CodeInvalidClient          = "invalid_client"
	CodeInvalidGrant           = "invalid_grant"
	CodeUnauthorizedClient     = "unauthorized_client"
	CodeUnsupportedGrantType   = "unsupported_grant_type"
	CodeInvalidScope           = "invalid_scope"
	CodeInvalidToken           = "invalid_token"
	CodeInsufficientScope      = "insufficient_scope"
	CodeServerError            = "server_error"
	CodeTemporarilyUnavailable = "temporarily_unavailable"
)

// Error codes of dynamic client registration and client management
// (RFC 7591 §3.2.2, RFC 7592).
const (
	CodeInvalidRedirectURI       = "invalid_redirect_uri"
	CodeInvalidClientMetadata    = "invalid_client_metadata"
	CodeInvalidSoftwareStatement = "invalid_software_statement"
)

// Error is an OAuth 2.0 error to answer, with its HTTP status. It is the
// one error type of the OAuth endpoints, dynamic registration and the
// guard (which writes it as an OperationOutcome). It implements error so
// that it can travel through store callbacks unchanged.
type Error struct {
	// Status is the HTTP status of the answer.
	Status int
	// Code is the error code ("invalid_grant", …); empty only for a
	// Bearer refusal of a request that carried no token (RFC 6750 §3.1).
	Code string
	// Description is the human-readable error_description; it never
	// holds a secret.
	Description string
	// Scope is the scope a resource request lacked (insufficient_scope),
	// sent in the Bearer challenge.
	Scope string
	// Challenge, when set, is sent as the WWW-Authenticate header.
	Challenge string
	// RetryAfter, when positive, is sent as the Retry-After header, in
	// whole seconds (rounded up).
	RetryAfter time.Duration
}

// Error implements error.
func (e *Error) Error() string { return e.Code + ": " + e.Description }

// New builds an Error with the usual status for its code: 401 for
// invalid_client, 500 for server_error, 503 for temporarily_unavailable,
// 400 for every other code.
func New(code, description string) *Error {
	return &Error{Status: StatusOf(code), Code: code, Description: description}
}

// UnavailableRetryAfter is how long Unavailable asks clients to wait.
const UnavailableRetryAfter = 5 * time.Second

// Unavailable is the answer when the authorization server's storage
// cannot be reached: 503 temporarily_unavailable with a Retry-After of
// UnavailableRetryAfter. A retry may then succeed, unlike after a
// server_error.
func Unavailable() *Error {
	e := New(CodeTemporarilyUnavailable, "the authorization server's storage is unavailable; retry later")
	e.RetryAfter = UnavailableRetryAfter
	return e
}

// RetryAfterSeconds is d as a Retry-After header value: whole seconds,
// rounded up, at least 1.
func RetryAfterSeconds(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}

// StatusOf is the usual HTTP status of an OAuth error code at the token,
// introspection, revocation and registration endpoints.
func StatusOf(code string) int {
	switch code {
	case CodeInvalidClient:
		return http.StatusUnauthorized
	case CodeServerError:
		return http.StatusInternalServerError
	case CodeTemporarilyUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

// WithBasic asks an invalid_client client for HTTP Basic credentials: a
// 401 answer must carry a WWW-Authenticate header (RFC 9110 §15.5.2,
// RFC 6749 §5.2), whatever method the client tried. Other codes are
// returned unchanged. It returns e.
func (e *Error) WithBasic(realm string) *Error {
	if e.Code == CodeInvalidClient {
		e.Challenge = BasicChallenge(realm)
	}
	return e
}

// WithBearer sets the Bearer challenge of a resource request's refusal
// (RFC 6750 §3) from e's code, description and scope. It returns e.
func (e *Error) WithBearer(realm string) *Error {
	e.Challenge = BearerChallenge(realm, e.Code, e.Description, e.Scope)
	return e
}

// body is an OAuth 2.0 error response body.
type body struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// Write writes e as an OAuth error response: JSON, never cached, with
// e.Challenge as WWW-Authenticate and e.RetryAfter as Retry-After when
// set. A Bearer refusal without a
// code (no token presented) is written with invalid_request in the body,
// since the body needs one.
func Write(w http.ResponseWriter, e *Error) {
	h := w.Header()
	if e.Challenge != "" {
		h.Set("WWW-Authenticate", e.Challenge)
	}
	if e.RetryAfter > 0 {
		h.Set("Retry-After", RetryAfterSeconds(e.RetryAfter))
	}
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	code := e.Code
	if code == "" {
		code = CodeInvalidRequest
	}
	WriteJSON(w, e.Status, body{Error: code, Description: e.Description})
}

// WriteJSON writes v as an application/json response with the given
// status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	WriteJSONAs(w, status, "application/json", v)
}

// WriteJSONAs writes v as JSON with the given media type and an exact
// Content-Length.
func WriteJSONAs(w http.ResponseWriter, status int, mediaType string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", mediaType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// AllowAnyOrigin lets browser apps on any origin read a public response
// (SMART App Launch requires it for discovery and the token endpoint). It
// answers a preflight request and reports whether the request is
// finished.
func AllowAnyOrigin(w http.ResponseWriter, r *http.Request, methods string) (done bool) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", methods)
		if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
			h.Set("Access-Control-Allow-Headers", req)
		}
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	return false
}

// Truncate quotes an attacker-supplied value for an error description:
// at most 64 bytes (then "…"), invalid UTF-8 replaced, in double quotes.
func Truncate(v string) string {
	const limit = 64
	if len(v) > limit {
		v = v[:limit] + "…"
	}
	return `"` + strings.ToValidUTF8(v, "?") + `"`
}
