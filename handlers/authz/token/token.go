package token

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/store"
)

// tokenMaxBody caps the size of a token request body. A token request with
// a client assertion is a few kilobytes at most.
const tokenMaxBody = 64 << 10

// tokenExchange is one token request being processed.
type tokenExchange struct {
	r         *http.Request
	form      url.Values
	grantType oauth.GrantType
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
	// subject is the user the tokens were issued for ("" for a client's
	// own): for the audit trail, never sent.
	subject string
}

// serverFault answers a failure of the server itself: 503
// temporarily_unavailable when the store cannot be reached now
// (store.ErrUnavailable), server_error otherwise. The cause is logged,
// never sent.
func (s *Service) serverFault(what string, err error) *oauth.Error {
	s.logger.Error("token endpoint: "+what, zap.Error(err))
	return failure(err)
}

// failure is the answer to a failure of the server itself, already
// logged: oauth.Unavailable when the store cannot be reached now
// (store.ErrUnavailable), server_error otherwise.
func failure(err error) *oauth.Error {
	if errors.Is(err, store.ErrUnavailable) {
		return oauth.Unavailable()
	}
	return oauth.New(oauth.CodeServerError, "internal error")
}

// serveToken is the token endpoint: POST {issuer}/token.
func (s *Service) serveToken(w http.ResponseWriter, r *http.Request) {
	if oauth.AllowAnyOrigin(w, r, "POST, OPTIONS") {
		return
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")

	ex := &tokenExchange{r: r}
	start := time.Now()
	resp, fault := s.tokenRequest(w, ex)
	s.recordToken(ex, resp, fault, start) // telemetry.go
	if fault != nil {
		s.logger.Debug("token request refused",
			zap.String("grant_type", string(ex.grantType)),
			zap.String("client_id", ex.clientID),
			zap.String("error", fault.Code),
			zap.String("error_description", fault.Description))
		oauth.Write(w, fault)
		return
	}
	s.logger.Debug("token issued",
		zap.String("grant_type", string(ex.grantType)),
		zap.String("client_id", ex.clientID),
		zap.String("scope", resp.Scope),
		zap.Bool("refresh_token", resp.RefreshToken != ""),
		zap.Bool("id_token", resp.IDToken != ""))
	oauth.WriteJSON(w, http.StatusOK, resp)
}

// tokenRequest checks the transport rules, parses the form and runs the
// grant.
func (s *Service) tokenRequest(w http.ResponseWriter, ex *tokenExchange) (*tokenResponse, *oauth.Error) {
	r := ex.r
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		return nil, &oauth.Error{Status: http.StatusMethodNotAllowed, Code: oauth.CodeInvalidRequest,
			Description: "the token endpoint accepts only POST"}
	}
	form, fault := readTokenForm(w, r)
	if fault != nil {
		return nil, fault
	}
	ex.form = form
	ex.grantType = oauth.GrantType(form.Get("grant_type"))
	return s.redeemGrant(ex)
}

// redeemGrant runs the grant a token request names: every grant type of
// oauth.GrantTypes, each in its own file (grant_*.go). A grant handler
// authenticates the client itself (the rules differ per grant) and returns
// the response to send or the OAuth error to answer; it sets ex.clientID
// as soon as the client is known, for the log.
func (s *Service) redeemGrant(ex *tokenExchange) (*tokenResponse, *oauth.Error) {
	switch ex.grantType {
	case "":
		return nil, oauth.New(oauth.CodeInvalidRequest, "grant_type is required")
	case oauth.GrantAuthorizationCode:
		return s.grantAuthorizationCode(ex)
	case oauth.GrantRefreshToken:
		return s.grantRefreshToken(ex)
	case oauth.GrantClientCredentials:
		return s.grantClientCredentials(ex)
	}
	return nil, oauth.New(oauth.CodeUnsupportedGrantType, "grant_type "+oauth.Truncate(string(ex.grantType))+" is not supported")
}

// readTokenForm reads an application/x-www-form-urlencoded body of at most
// tokenMaxBody bytes. Parameters in the URL query are ignored (RFC 6749
// §3.2 puts them in the body); a parameter given twice is refused (§3.1);
// empty parameters are dropped, as if omitted (§3.1).
func readTokenForm(w http.ResponseWriter, r *http.Request) (url.Values, *oauth.Error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, oauth.New(oauth.CodeInvalidRequest, "the body must be application/x-www-form-urlencoded")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, tokenMaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &oauth.Error{Status: http.StatusRequestEntityTooLarge, Code: oauth.CodeInvalidRequest,
				Description: "the request body is too large"}
		}
		return nil, oauth.New(oauth.CodeInvalidRequest, "the request body could not be read")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, oauth.New(oauth.CodeInvalidRequest, "the request body is not valid form encoding")
	}
	for k, v := range form {
		if len(v) > 1 {
			return nil, oauth.New(oauth.CodeInvalidRequest, "parameter "+oauth.Truncate(k)+" is repeated")
		}
		if v[0] == "" {
			delete(form, k)
		}
	}
	return form, nil
}

// readOAuthPost starts a form-POST OAuth endpoint besides the token
// endpoint (introspection, revocation): the answer is never cached, a
// method other than POST gets 405 with allow, and the body is read as
// readTokenForm reads it. When it returns false it has answered.
func (s *Service) readOAuthPost(w http.ResponseWriter, r *http.Request, allow, endpoint string) (url.Values, bool) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	if r.Method != http.MethodPost {
		h.Set("Allow", allow)
		oauth.Write(w, &oauth.Error{Status: http.StatusMethodNotAllowed, Code: oauth.CodeInvalidRequest, Description: endpoint + " accepts only POST"})
		return nil, false
	}
	form, f := readTokenForm(w, r)
	if f != nil {
		oauth.Write(w, f)
		return nil, false
	}
	return form, true
}
