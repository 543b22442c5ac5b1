package register

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/store"
)

// regBody is a registration request (RFC 7591 §2) as the fuzz targets
// read it.
type regBody struct {
	RedirectURIs            []string        `json:"redirect_uris"`
	ClientName              string          `json:"client_name"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method"`
	GrantTypes              []string        `json:"grant_types"`
	ResponseTypes           []string        `json:"response_types"`
	JWKS                    json.RawMessage `json:"jwks"`
	JWKSURI                 string          `json:"jwks_uri"`
	Scope                   string          `json:"scope"`
	LaunchURI               string          `json:"launch_uri"`
	SoftwareStatement       string          `json:"software_statement"`
	ClientID                string          `json:"client_id"`
	ClientSecret            string          `json:"client_secret"`
}

// regInfo is a registration or client configuration response (RFC 7591
// §3.2.1, RFC 7592 §3).
type regInfo struct {
	ClientID                string          `json:"client_id"`
	ClientSecret            string          `json:"client_secret"`
	ClientIDIssuedAt        int64           `json:"client_id_issued_at"`
	ClientSecretExpiresAt   *int64          `json:"client_secret_expires_at"`
	RegistrationAccessToken string          `json:"registration_access_token"`
	RegistrationClientURI   string          `json:"registration_client_uri"`
	ClientName              string          `json:"client_name"`
	RedirectURIs            []string        `json:"redirect_uris"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method"`
	GrantTypes              []string        `json:"grant_types"`
	ResponseTypes           []string        `json:"response_types"`
	JWKS                    json.RawMessage `json:"jwks"`
	JWKSURI                 string          `json:"jwks_uri"`
	Scope                   string          `json:"scope"`
	LaunchURI               string          `json:"launch_uri"`
}

// metadata is the part of a regInfo a client configuration request sends
// back: everything but the secret and the tokens.
func (r regInfo) metadata() regInfo {
	r.ClientSecret, r.RegistrationAccessToken = "", ""
	return r
}

// sendReg sends a registration request: POST to register, or GET, PUT or
// DELETE to a client configuration endpoint, with a Bearer token.
func (e *fuzzEnv) sendReg(method, path, bearer string, body []byte) *httptest.ResponseRecorder {
	req, _ := newFuzzRequest(method, path, body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+bearer)
	return e.serve(req, nil)
}

// decodeInfo decodes a 2xx registration answer.
func decodeInfo(t *testing.T, w *httptest.ResponseRecorder) regInfo {
	t.Helper()
	var info regInfo
	if err := json.Unmarshal(w.Body.Bytes(), &info); err != nil || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("registration answer %d %q (%v, Cache-Control %q)", w.Code, w.Body, err, w.Header().Get("Cache-Control"))
	}
	return info
}

// registeredURIOK tells whether a registered URI is acceptable: absolute
// https, http only on a loopback host, or (for a redirect URI) a native
// app's private-use scheme with a dot; never a fragment or user info.
func registeredURIOK(raw string, redirect bool) bool {
	u, err := url.Parse(raw)
	if err != nil || strings.Contains(raw, "#") || u.User != nil {
		return false
	}
	host := u.Hostname()
	ip := net.ParseIP(host)
	loopback := host == "localhost" || strings.HasSuffix(host, ".localhost") || ip != nil && ip.IsLoopback()
	switch {
	case u.Scheme == "https" && u.Host != "":
		return true
	case u.Scheme == "http" && u.Host != "":
		return loopback
	}
	return redirect && strings.Contains(u.Scheme, ".")
}

// dedupe keeps the first occurrence of each value, in order.
func dedupe(v []string) []string {
	var out []string
	for _, s := range v {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// checkRegistered fails unless a successful registration or update
// answer registers what was asked, within the rules (RFC 7591 and SMART):
// defaults filled in, lists deduplicated, URIs acceptable, keys only for
// private_key_jwt, client_credentials only for it with system/ scopes,
// and the stored client agrees. A symmetric client has just been given a
// secret (FuzzRegisterUpdate starts from a public client).
func (e *fuzzEnv) checkRegistered(t *testing.T, asked regBody, info regInfo) {
	t.Helper()
	method := asked.TokenEndpointAuthMethod
	if method == "" {
		method = authMethodSecretBasic
	}
	grants := dedupe(asked.GrantTypes)
	if len(grants) == 0 {
		grants = []string{string(oauth.GrantAuthorizationCode)}
	}
	code := oauth.GrantAuthorizationCode.In(grants)
	symmetric := method == authMethodSecretBasic || method == authMethodSecretPost
	fail := func(what string) { t.Fatalf("registered %+v as %+v: %s", asked, info, what) }
	switch {
	case info.ClientID == "" || info.RegistrationAccessToken == "":
		fail("no client_id or registration_access_token")
	case info.RegistrationClientURI != fzIssuer+"/register/"+info.ClientID:
		fail("registration_client_uri")
	case info.TokenEndpointAuthMethod != method:
		fail("token_endpoint_auth_method")
	case !slices.Contains([]string{authMethodNone, authMethodSecretBasic, authMethodSecretPost, authMethodPrivateKeyJWT}, method):
		fail("an unknown token_endpoint_auth_method")
	case symmetric != (info.ClientSecretExpiresAt != nil), symmetric != (info.ClientSecret != ""):
		fail("client_secret")
	case !reflect.DeepEqual(info.GrantTypes, grants):
		fail("grant_types")
	case oauth.GrantClientCredentials.In(grants) && method != authMethodPrivateKeyJWT:
		fail("client_credentials without private_key_jwt")
	case code != reflect.DeepEqual(info.ResponseTypes, []string{responseTypeCode}) || !code && info.ResponseTypes != nil:
		fail("response_types")
	case !reflect.DeepEqual(info.RedirectURIs, dedupe(asked.RedirectURIs)):
		fail("redirect_uris")
	case code != (len(info.RedirectURIs) > 0):
		fail("redirect_uris without authorization_code, or none with it")
	case info.LaunchURI != asked.LaunchURI || info.LaunchURI != "" && (!code || !registeredURIOK(info.LaunchURI, false)):
		fail("launch_uri")
	case info.ClientName != strings.TrimSpace(asked.ClientName) || len(asked.ClientName) > 200 || strings.IndexFunc(asked.ClientName, unicode.IsControl) >= 0:
		fail("client_name")
	case (len(info.JWKS) > 0 || info.JWKSURI != "") != (method == authMethodPrivateKeyJWT), len(info.JWKS) > 0 && info.JWKSURI != "":
		fail("keys")
	case info.JWKSURI != asked.JWKSURI || info.JWKSURI != "" && !registeredURIOK(info.JWKSURI, false):
		fail("jwks_uri")
	case info.Scope != strings.Join(dedupe(strings.Fields(asked.Scope)), " "):
		fail("scope")
	}
	for _, u := range info.RedirectURIs {
		if !registeredURIOK(u, true) {
			fail("redirect URI " + u)
		}
	}
	backend, system := oauth.GrantClientCredentials.In(grants), 0
	for _, sc := range strings.Fields(info.Scope) {
		if sys := strings.HasPrefix(sc, "system/"); sys && !backend || !sys && !code {
			fail("scope " + sc + " for grants " + strings.Join(grants, " "))
		} else if sys {
			system++
		}
	}
	if backend && system == 0 {
		fail("client_credentials without system/ scopes")
	}
	c, err := e.db.GetClient(context.Background(), info.ClientID)
	if err != nil || !c.Dynamic || c.Type != map[string]string{authMethodNone: store.ClientPublic, authMethodSecretBasic: store.ClientConfidentialSymmetric,
		authMethodSecretPost: store.ClientConfidentialSymmetric, authMethodPrivateKeyJWT: store.ClientConfidentialAsymmetric}[method] ||
		!slices.Equal(c.RedirectURIs, info.RedirectURIs) || strings.Join(c.Scopes, " ") != info.Scope || (c.SecretHash != "") != symmetric {
		fail("the stored client differs")
	}
}

// readBack reads a registered client with its registration access token
// and checks that the old token no longer opens it; it returns the
// answer.
func (e *fuzzEnv) readBack(t *testing.T, info regInfo) regInfo {
	t.Helper()
	path := "/auth/register/" + info.ClientID
	w := e.sendReg(http.MethodGet, path, info.RegistrationAccessToken, nil)
	if w.Code != http.StatusOK {
		t.Fatalf("reading client %s back: %d %s", info.ClientID, w.Code, w.Body)
	}
	got := decodeInfo(t, w)
	if !reflect.DeepEqual(got.metadata(), info.metadata()) || got.RegistrationAccessToken == info.RegistrationAccessToken {
		t.Fatalf("client %s reads back as %+v, registered as %+v", info.ClientID, got, info)
	}
	if w := e.sendReg(http.MethodGet, path, info.RegistrationAccessToken, nil); w.Code != http.StatusUnauthorized {
		t.Fatalf("the replaced registration access token still opens client %s: %d", info.ClientID, w.Code)
	}
	return got
}

// regErrorCodes are the error codes of registration refusals.
var regErrorCodes = []string{"invalid_client_metadata", "invalid_redirect_uri", "invalid_software_statement"}

// FuzzRegister posts any JSON body to the registration endpoint (RFC
// 7591, with the initial access token) and checks:
//   - it is answered 201 or with a registration error (400, 413), never
//     a 5xx;
//   - a registered client is what was asked within the rules
//     (checkRegistered);
//   - RFC 7592 round trip: the client reads back the same with its
//     registration access token, which is replaced each time, and
//     updating it with what it read back (PUT) changes nothing.
func FuzzRegister(f *testing.F) {
	e := newFuzzEnv(f)
	for _, s := range regSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		w := e.sendReg(http.MethodPost, "/auth/register", fzIAT, body)
		if w.Code != http.StatusCreated {
			if code := checkOAuthError(t, w); !slices.Contains(regErrorCodes, code) || (w.Code != 400 && w.Code != 413) {
				t.Fatalf("registration refused with %d %s", w.Code, code)
			}
			return
		}
		var asked regBody
		if err := json.NewDecoder(bytes.NewReader(body)).Decode(&asked); err != nil {
			t.Fatalf("%q registered though it does not decode: %v", body, err)
		}
		info := decodeInfo(t, w)
		e.checkRegistered(t, asked, info)
		read := e.readBack(t, info)
		md, _ := json.Marshal(read.metadata())
		u := e.sendReg(http.MethodPut, "/auth/register/"+info.ClientID, read.RegistrationAccessToken, md)
		if u.Code != http.StatusOK {
			t.Fatalf("updating client %s with its own metadata %s: %d %s", info.ClientID, md, u.Code, u.Body)
		}
		if again := decodeInfo(t, u); !reflect.DeepEqual(again.metadata(), read.metadata()) {
			t.Fatalf("updating client %s with its own metadata changed it: %+v → %+v", info.ClientID, read, again)
		}
	})
}

// FuzzRegisterUpdate registers a public client, then replaces its
// metadata (RFC 7592 PUT) with any JSON body ("$ID" stands for the
// client's id) and checks:
//   - an accepted update is what was asked within the rules, for this
//     client only, and replaces the registration access token;
//   - a refused update is a registration error and changes nothing: the
//     client reads back as registered, with the token presented.
func FuzzRegisterUpdate(f *testing.F) {
	e := newFuzzEnv(f)
	base := []byte(`{"client_name":"Base","token_endpoint_auth_method":"none","redirect_uris":["https://app.example.org/cb"],"scope":"openid launch/patient patient/*.rs"}`)
	for _, s := range regSeeds() {
		f.Add([]byte(strings.Replace(s, "{", `{"client_id":"$ID",`, 1)))
	}
	f.Add([]byte(`{"client_id":"someone-else","token_endpoint_auth_method":"none","redirect_uris":["https://app.example.org/cb"]}`))
	f.Add([]byte(`{"client_id":"$ID","client_secret":"guess","token_endpoint_auth_method":"none","redirect_uris":["https://app.example.org/cb"]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		w := e.sendReg(http.MethodPost, "/auth/register", fzIAT, base)
		if w.Code != http.StatusCreated {
			t.Fatalf("registering the base client: %d %s", w.Code, w.Body)
		}
		orig := decodeInfo(t, w)
		body = bytes.ReplaceAll(body, []byte("$ID"), []byte(orig.ClientID))
		path := "/auth/register/" + orig.ClientID
		u := e.sendReg(http.MethodPut, path, orig.RegistrationAccessToken, body)
		if u.Code != http.StatusOK {
			if code := checkOAuthError(t, u); !slices.Contains(regErrorCodes, code) || (u.Code != 400 && u.Code != 413) {
				t.Fatalf("update refused with %d %s", u.Code, code)
			}
			e.readBack(t, orig)
			return
		}
		var asked regBody
		if err := json.NewDecoder(bytes.NewReader(body)).Decode(&asked); err != nil || asked.ClientID != orig.ClientID {
			t.Fatalf("update %q of client %s accepted (%v)", body, orig.ClientID, err)
		}
		info := decodeInfo(t, u)
		if info.ClientID != orig.ClientID || info.ClientIDIssuedAt != orig.ClientIDIssuedAt {
			t.Fatalf("update of %s answered for %s issued at %d", orig.ClientID, info.ClientID, info.ClientIDIssuedAt)
		}
		e.checkRegistered(t, asked, info)
		if w := e.sendReg(http.MethodGet, path, orig.RegistrationAccessToken, nil); w.Code != http.StatusUnauthorized {
			t.Fatalf("the token presented for an update still opens client %s: %d", orig.ClientID, w.Code)
		}
		e.readBack(t, info)
	})
}

// regSeeds are registration bodies worth starting from.
func regSeeds() []string {
	return []string{
		`{"client_name":"App","redirect_uris":["https://app.example.org/cb"],"scope":"openid fhirUser launch/patient patient/*.rs offline_access","grant_types":["authorization_code","refresh_token"],"token_endpoint_auth_method":"none"}`,
		`{"client_name":"Web","redirect_uris":["https://web.example.org/cb","https://web.example.org/cb"],"launch_uri":"https://web.example.org/launch"}`,
		`{"redirect_uris":["http://127.0.0.1/cb","com.example.app:/oauth"],"token_endpoint_auth_method":"client_secret_post"}`,
		`{"token_endpoint_auth_method":"private_key_jwt","grant_types":["client_credentials"],"scope":"system/*.rs","jwks":{"keys":[` + ec384JWK + `]}}`,
		`{"token_endpoint_auth_method":"private_key_jwt","redirect_uris":["https://a.example/cb"],"jwks_uri":"https://a.example/jwks"}`,
		`{"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[` + rsa1024JWK + `]}}`,
		`{"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[` + ecPrivateJWK + `]}}`,
		`{"token_endpoint_auth_method":"none","grant_types":["client_credentials"],"scope":"system/*.rs"}`,
		`{"redirect_uris":["https://app.example.org/cb#frag"]}`,
		`{"redirect_uris":["http://evil.example/cb"]}`,
		`{"redirect_uris":["https://user@app.example.org/cb"]}`,
		`{"redirect_uris":["https://app.example.org/cb"],"scope":"system/*.cruds"}`,
		`{"redirect_uris":["https://app.example.org/cb"],"response_types":["token"]}`,
		`{"redirect_uris":["https://app.example.org/cb"],"software_statement":"eyJ"}`,
		`{"redirect_uris":["https://app.example.org/cb"],"client_name":"a\u0007b"}`,
		`{"redirect_uris":"https://app.example.org/cb"}`,
		`{"redirect_uris":["https://app.example.org/cb"]} {}`,
		`{"redirect_uris":["https://app.example.org/cb"],"redirect_uris":["http://evil.example/cb"]}`,
		`{"REDIRECT_URIS":["https://app.example.org/cb"],"Scope":"openid\tpatient/*.rs"}`,
	}
}
