package token

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
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
	writeTokenResponse(w, resp)
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
	body, err := readAll(http.MaxBytesReader(w, r.Body, tokenMaxBody), r.ContentLength)
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

// readAll is io.ReadAll with room for size bytes from the start (the
// request's Content-Length when it is known and within tokenMaxBody), so
// that a body of the declared length is read into one allocation.
func readAll(rd io.Reader, size int64) ([]byte, error) {
	if size < 0 || size > tokenMaxBody {
		size = 512
	}
	b := make([]byte, 0, size+1) // +1: the read that finds EOF needs room
	for {
		n, err := rd.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
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

// writeTokenResponse sends a token response as oauth.WriteJSON would,
// with the bytes encoding/json writes; a response whose JSON is not
// plain (appendJSON) is sent by oauth.WriteJSON itself.
func writeTokenResponse(w http.ResponseWriter, resp *tokenResponse) {
	b, ok := resp.appendJSON(make([]byte, 0, 160+len(resp.AccessToken)+len(resp.Scope)+len(resp.RefreshToken)+len(resp.IDToken)))
	if !ok {
		oauth.WriteJSON(w, http.StatusOK, resp)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// appendJSON appends the JSON encoding/json gives the response (the
// fields in their order, omitempty honoured), when every string in it is
// plain (plainJSON) and it has no fhirContext; ok is false otherwise.
func (t *tokenResponse) appendJSON(b []byte) (_ []byte, ok bool) {
	ok = len(t.FHIRContext) == 0
	str := func(name, v string, omitEmpty bool) {
		switch {
		case !ok || omitEmpty && v == "":
		case !plainJSON(v):
			ok = false
		default:
			b = append(append(append(append(b, name...), '"'), v...), '"')
		}
	}
	str(`{"access_token":`, t.AccessToken, false)
	str(`,"token_type":`, t.TokenType, false)
	b = strconv.AppendInt(append(b, `,"expires_in":`...), t.ExpiresIn, 10)
	str(`,"scope":`, t.Scope, false)
	str(`,"refresh_token":`, t.RefreshToken, true)
	str(`,"id_token":`, t.IDToken, true)
	str(`,"patient":`, t.Patient, true)
	str(`,"encounter":`, t.Encounter, true)
	if t.NeedPatientBanner != nil {
		b = strconv.AppendBool(append(b, `,"need_patient_banner":`...), *t.NeedPatientBanner)
	}
	str(`,"smart_style_url":`, t.SmartStyleURL, true)
	str(`,"intent":`, t.Intent, true)
	str(`,"tenant":`, t.Tenant, true)
	if !ok {
		return nil, false
	}
	return append(b, '}'), true
}

// plainJSON tells whether encoding/json writes s as it is between quotes:
// printable ASCII without a quote, a backslash or the HTML characters it
// escapes (<, >, &).
func plainJSON(s string) bool {
	for i := range len(s) {
		switch c := s[i]; {
		case c < 0x20 || c > 0x7e, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}
