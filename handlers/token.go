package handlers

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/store"
)

// tokenMaxBody caps the size of a token request body. A token request with
// a client assertion is a few kilobytes at most.
const tokenMaxBody = 64 << 10

// tokenGrantHandler redeems one grant type at the token endpoint. It
// authenticates the client itself (the rules differ per grant) and returns
// the response to send or the OAuth error to answer. ex.clientID should be
// set as soon as the client is known, for the log.
type tokenGrantHandler func(s *Server, ex *tokenExchange) (*tokenResponse, *oauthFault)

// tokenGrantHandlers maps a grant_type to its handler. Each grant file
// (grant_code.go, grant_refresh.go, later grant_client.go) registers itself
// from an init function, so that adding a grant touches no other file.
var tokenGrantHandlers = map[string]tokenGrantHandler{}

// tokenExchange is one token request being processed.
type tokenExchange struct {
	r         *http.Request
	form      url.Values
	grantType string
	// clientID is the client the request is for, once known; logged.
	clientID string
}

// tokenResponse is a successful token response (RFC 6749 §5.1) with the
// SMART launch context (SMART App Launch 2.2 "Launch context").
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	// The launch context: patient, encounter, fhirContext,
	// need_patient_banner, smart_style_url, intent, tenant.
	store.LaunchContext
}

// oauthFault is an OAuth 2.0 error to answer (RFC 6749 §5.2), with its
// HTTP status. It implements error so that it can travel through store
// callbacks (RotateRefresh's check) unchanged.
type oauthFault struct {
	status      int
	code        string
	description string
	// basicChallenge asks for a WWW-Authenticate: Basic header: the
	// client tried HTTP Basic authentication and failed.
	basicChallenge bool
}

func (f *oauthFault) Error() string { return f.code + ": " + f.description }

// newOAuthFault builds an oauthFault with the usual status for its code:
// 400, 401 for invalid_client, 500 for server_error.
func newOAuthFault(code, description string) *oauthFault {
	status := http.StatusBadRequest
	switch code {
	case "invalid_client":
		status = http.StatusUnauthorized
	case "server_error":
		status = http.StatusInternalServerError
	case "temporarily_unavailable":
		status = http.StatusServiceUnavailable
	}
	return &oauthFault{status: status, code: code, description: description}
}

// faultOf converts an error of the clients package to an oauthFault (nil
// for nil): the boundary until every endpoint answers with oauth.Error.
func faultOf(e *oauth.Error) *oauthFault {
	if e == nil {
		return nil
	}
	return &oauthFault{status: e.Status, code: e.Code, description: e.Description, basicChallenge: e.Challenge != ""}
}

// asFault is faultOf for a call of the clients package that returns a
// value with its error.
func asFault[T any](v T, e *oauth.Error) (T, *oauthFault) {
	return v, faultOf(e)
}

// serverFault answers a failure of the server itself; the cause is logged,
// never sent.
func (s *Server) serverFault(what string, err error) *oauthFault {
	s.logger.Error("token endpoint: "+what, zap.Error(err))
	return newOAuthFault("server_error", "internal error")
}

// writeFault writes f as the response, never cached.
func (s *Server) writeFault(w http.ResponseWriter, f *oauthFault) {
	if f.basicChallenge && f.code == "invalid_client" {
		w.Header().Set("WWW-Authenticate", `Basic realm="`+s.cfg.Issuer.String()+`", charset="UTF-8"`)
	}
	writeOAuthError(w, f.status, f.code, f.description)
}

// serveToken is the token endpoint: POST {issuer}/token.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if allowAnyOrigin(w, r, "POST, OPTIONS") {
		return
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")

	ex := &tokenExchange{r: r}
	resp, fault := s.tokenRequest(w, ex)
	if fault != nil {
		s.logger.Debug("token request refused",
			zap.String("grant_type", ex.grantType),
			zap.String("client_id", ex.clientID),
			zap.String("error", fault.code),
			zap.String("error_description", fault.description))
		s.writeFault(w, fault)
		return
	}
	s.logger.Debug("token issued",
		zap.String("grant_type", ex.grantType),
		zap.String("client_id", ex.clientID),
		zap.String("scope", resp.Scope),
		zap.Bool("refresh_token", resp.RefreshToken != ""),
		zap.Bool("id_token", resp.IDToken != ""))
	writeJSON(w, http.StatusOK, resp)
}

// tokenRequest checks the transport rules, parses the form and runs the
// grant.
func (s *Server) tokenRequest(w http.ResponseWriter, ex *tokenExchange) (*tokenResponse, *oauthFault) {
	r := ex.r
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		f := newOAuthFault("invalid_request", "the token endpoint accepts only POST")
		f.status = http.StatusMethodNotAllowed
		return nil, f
	}
	form, fault := readTokenForm(w, r)
	if fault != nil {
		return nil, fault
	}
	ex.form = form
	ex.grantType = form.Get("grant_type")
	if ex.grantType == "" {
		return nil, newOAuthFault("invalid_request", "grant_type is required")
	}
	grant, ok := tokenGrantHandlers[ex.grantType]
	if !ok {
		return nil, newOAuthFault("unsupported_grant_type", "grant_type "+truncateForError(ex.grantType)+" is not supported")
	}
	return grant(s, ex)
}

// readTokenForm reads an application/x-www-form-urlencoded body of at most
// tokenMaxBody bytes. Parameters in the URL query are ignored (RFC 6749
// §3.2 puts them in the body); a parameter given twice is refused (§3.1);
// empty parameters are dropped, as if omitted (§3.1).
func readTokenForm(w http.ResponseWriter, r *http.Request) (url.Values, *oauthFault) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, newOAuthFault("invalid_request", "the body must be application/x-www-form-urlencoded")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, tokenMaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			f := newOAuthFault("invalid_request", "the request body is too large")
			f.status = http.StatusRequestEntityTooLarge
			return nil, f
		}
		return nil, newOAuthFault("invalid_request", "the request body could not be read")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, newOAuthFault("invalid_request", "the request body is not valid form encoding")
	}
	for k, v := range form {
		if len(v) > 1 {
			return nil, newOAuthFault("invalid_request", "parameter "+truncateForError(k)+" is repeated")
		}
		if v[0] == "" {
			delete(form, k)
		}
	}
	return form, nil
}

// truncateForError quotes a client-supplied value for an error
// description, cut to a sane length.
func truncateForError(v string) string {
	const limit = 64
	if len(v) > limit {
		v = v[:limit] + "…"
	}
	return `"` + strings.ToValidUTF8(v, "?") + `"`
}

// readOAuthPost starts a form-POST OAuth endpoint besides the token
// endpoint (introspection, revocation): the answer is never cached, a
// method other than POST gets 405 with allow, and the body is read as
// readTokenForm reads it. When it returns false it has answered.
func (s *Server) readOAuthPost(w http.ResponseWriter, r *http.Request, allow, endpoint string) (url.Values, bool) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	if r.Method != http.MethodPost {
		h.Set("Allow", allow)
		writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", endpoint+" accepts only POST")
		return nil, false
	}
	form, f := readTokenForm(w, r)
	if f != nil {
		s.writeFault(w, f)
		return nil, false
	}
	return form, true
}
