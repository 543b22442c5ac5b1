package handlers_test

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/smartcaddy/smartauth/store"
)

func TestClientSecretBasicRefused(t *testing.T) {
	e := newTokenEnv(t)
	c := e.seedCode(codeOptions{client: tkConfidential})
	f := codeForm(c, tkConfidential)
	f.Del("client_id")
	r := e.post(f, &[2]string{tkConfidential, "wrong secret"})
	expectTokenError(t, r, http.StatusUnauthorized, "invalid_client")
	if h := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Basic realm=") {
		t.Errorf("WWW-Authenticate %q", h)
	}
	// The same secret sent without the §2.3.1 encoding is a different
	// secret, since it holds reserved characters.
	req, _ := http.NewRequest(http.MethodPost, e.tokenURL, strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(tkConfidential, tkSecret)
	expectTokenError(t, e.do(req), http.StatusUnauthorized, "invalid_client")
	// Unknown client in Basic.
	expectTokenError(t, e.post(f, &[2]string{"nobody", tkSecret}), http.StatusUnauthorized, "invalid_client")
}

func TestClientAuthMethodsRefused(t *testing.T) {
	e := newTokenEnv(t)
	tests := []struct {
		name   string
		client string
		edit   func(url.Values)
		basic  *[2]string
		status int
		code   string
	}{
		{"basic and post together", tkConfidential, func(f url.Values) { f.Set("client_secret", tkSecret) }, &[2]string{tkConfidential, tkSecret}, 400, "invalid_request"},
		{"post and assertion together", tkConfidential, func(f url.Values) {
			f.Set("client_secret", tkSecret)
			f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
			f.Set("client_assertion", "x.y.z")
		}, nil, 400, "invalid_request"},
		{"confidential without secret", tkConfidential, func(url.Values) {}, nil, 401, "invalid_client"},
		{"wrong post secret", tkConfidential, func(f url.Values) { f.Set("client_secret", "nope") }, nil, 401, "invalid_client"},
		{"public client with a secret", tkPublic, func(f url.Values) { f.Set("client_secret", "anything") }, nil, 401, "invalid_client"},
		{"basic client_id differs from form", tkConfidential, func(f url.Values) { f.Set("client_id", tkPublic) }, &[2]string{tkConfidential, tkSecret}, 400, "invalid_request"},
		{"asymmetric client with a secret", tkAsym, func(f url.Values) { f.Set("client_secret", "anything") }, nil, 401, "invalid_client"},
		{"asymmetric client without assertion", tkAsym, func(url.Values) {}, nil, 401, "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.seedCode(codeOptions{client: tt.client})
			f := codeForm(c, tt.client)
			tt.edit(f)
			r := e.post(f, tt.basic)
			expectTokenError(t, r, tt.status, tt.code)
			if tt.basic == nil && r.header.Get("WWW-Authenticate") != "" {
				t.Errorf("Basic challenge although Basic was not tried")
			}
		})
	}
}

func TestDynamicClientIsFound(t *testing.T) {
	e := newTokenEnv(t)
	e.exchange(e.seedCode(codeOptions{client: tkDynamic}))
}

func TestPrivateKeyJWT(t *testing.T) {
	e := newTokenEnv(t)
	for _, alg := range []string{"ES384", "RS384", "ES256", "RS256"} {
		t.Run(alg, func(t *testing.T) {
			c := e.seedCode(codeOptions{client: tkAsym})
			r := e.post(assertionForm(c, e.assertion(alg, "", assertionClaims{})), nil)
			if r.status != http.StatusOK || r.str("access_token") == "" || r.str("refresh_token") == "" {
				t.Fatalf("%d %v", r.status, r.body)
			}
			// The refresh authenticates the same way.
			f := url.Values{
				"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
				"client_assertion":      {e.assertion(alg, "", assertionClaims{})},
			}
			if rr := e.refresh(r.str("refresh_token"), f, nil); rr.status != http.StatusOK {
				t.Fatalf("refresh: %d %v", rr.status, rr.body)
			}
		})
	}
	t.Run("with matching client_id", func(t *testing.T) {
		c := e.seedCode(codeOptions{client: tkAsym})
		f := assertionForm(c, e.assertion("ES384", "", assertionClaims{}))
		f.Set("client_id", tkAsym)
		if r := e.post(f, nil); r.status != http.StatusOK {
			t.Fatalf("%d %v", r.status, r.body)
		}
	})
}

// unsignedAssertion builds an alg "none" JWT by hand: the attack input,
// which no library signs.
func unsignedAssertion(t *testing.T, e *tokenEnv) string {
	t.Helper()
	enc := base64.RawURLEncoding
	hdr, _ := json.Marshal(map[string]string{"alg": "none", "kid": "ec1", "typ": "JWT"})
	claims, _ := json.Marshal(map[string]any{
		"iss": tkAsym, "sub": tkAsym, "aud": e.tokenURL, "jti": "none-1",
		"exp": time.Now().Add(time.Minute).Unix(), "iat": time.Now().Unix(),
	})
	return enc.EncodeToString(hdr) + "." + enc.EncodeToString(claims) + "."
}

// hmacWithPublicKey signs an HS256 assertion whose secret is the client's
// RSA public key (the classic key-confusion attack), with kid rs1.
func hmacWithPublicKey(t *testing.T, e *tokenEnv) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&e.rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	tok := jwt.New()
	for k, v := range map[string]any{
		jwt.IssuerKey: tkAsym, jwt.SubjectKey: tkAsym, jwt.AudienceKey: e.tokenURL,
		jwt.JwtIDKey: "hs-1", jwt.ExpirationKey: time.Now().Add(time.Minute),
	} {
		if err := tok.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	h := jws.NewHeaders()
	_ = h.Set(jws.KeyIDKey, "rs1")
	b, err := jwt.Sign(tok, jwt.WithKey(jwa.HS256(), secret, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPrivateKeyJWTRefused(t *testing.T) {
	e := newTokenEnv(t)
	now := time.Now()
	tests := []struct {
		name      string
		assertion func() string
		edit      func(url.Values)
	}{
		{"alg none", func() string { return unsignedAssertion(t, e) }, nil},
		{"HS256 with the public key as secret", func() string { return hmacWithPublicKey(t, e) }, nil},
		{"expired", func() string { return e.assertion("ES384", "", assertionClaims{exp: now.Add(-2 * time.Minute)}) }, nil},
		{"exp more than 5 minutes ahead", func() string { return e.assertion("ES384", "", assertionClaims{exp: now.Add(10 * time.Minute)}) }, nil},
		{"no exp", func() string { return e.assertion("RS384", "", assertionClaims{noExp: true}) }, nil},
		{"no jti", func() string { return e.assertion("RS384", "", assertionClaims{noJTI: true}) }, nil},
		{"wrong aud", func() string {
			return e.assertion("ES384", "", assertionClaims{aud: "https://other.example.org/token"})
		}, nil},
		{"issuer as aud", func() string { return e.assertion("ES384", "", assertionClaims{aud: e.issuer}) }, nil},
		{"sub differs from iss", func() string { return e.assertion("ES384", "", assertionClaims{sub: "someone-else"}) }, nil},
		{"unknown client", func() string { return e.assertion("ES384", "", assertionClaims{iss: "nobody", sub: "nobody"}) }, nil},
		{"symmetric client", func() string { return e.assertion("ES384", "", assertionClaims{iss: tkConfidential}) }, nil},
		{"unknown kid", func() string { return e.assertion("ES384", "nope", assertionClaims{}) }, nil},
		{"kid of an RSA key with ES384", func() string { return e.assertion("ES384", "rs1", assertionClaims{}) }, nil},
		{"key for encryption only", func() string { return e.assertion("ES384", "enc1", assertionClaims{}) }, nil},
		{"P-256 key with ES384", func() string { return e.assertion("ES384", "ec256", assertionClaims{}) }, nil},
		{"signed by another key", func() string { return e.assertion("ES256", "ec1", assertionClaims{}) }, nil},
		{"wrong assertion type", func() string { return e.assertion("ES384", "", assertionClaims{}) }, func(f url.Values) {
			f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
		}},
		{"garbage", func() string { return "a.b.c" }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.seedCode(codeOptions{client: tkAsym})
			f := assertionForm(c, tt.assertion())
			if tt.edit != nil {
				tt.edit(f)
			}
			expectTokenError(t, e.post(f, nil), http.StatusUnauthorized, "invalid_client")
			// The refused request left the code alone.
			if r := e.post(assertionForm(c, e.assertion("ES384", "", assertionClaims{})), nil); r.status != http.StatusOK {
				t.Fatalf("code after a refused assertion: %d %v", r.status, r.body)
			}
		})
	}
	t.Run("client_id differs from iss", func(t *testing.T) {
		c := e.seedCode(codeOptions{client: tkAsym})
		f := assertionForm(c, e.assertion("ES384", "", assertionClaims{}))
		f.Set("client_id", tkPublic)
		expectTokenError(t, e.post(f, nil), http.StatusBadRequest, "invalid_request")
	})
}

// TestPrivateKeyJWTTimeRefusals: an assertion refused for its times says
// which one, the same on the fast reader and on jwx (an assertion with a
// cty header is read by jwx).
func TestPrivateKeyJWTTimeRefusals(t *testing.T) {
	e := newTokenEnv(t)
	now := time.Now()
	for _, via := range []string{"", "JWT"} {
		for _, c := range []struct {
			claims assertionClaims
			want   string
		}{
			{assertionClaims{iat: now.Add(2 * time.Minute)}, "client assertion: iat is in the future"},
			{assertionClaims{exp: now.Add(-2 * time.Minute), iat: now.Add(-3 * time.Minute)}, "client assertion: expired"},
		} {
			c.claims.cty = via
			r := e.post(assertionForm(e.seedCode(codeOptions{client: tkAsym}), e.assertion("RS384", "", c.claims)), nil)
			expectTokenError(t, r, http.StatusUnauthorized, "invalid_client")
			if got := r.str("error_description"); got != c.want {
				t.Errorf("cty %q: error_description %q, want %q", via, got, c.want)
			}
		}
	}
}

func TestPrivateKeyJWTReplayedJTI(t *testing.T) {
	e := newTokenEnv(t)
	a := e.assertion("ES384", "", assertionClaims{jti: "once-only"})
	c := e.seedCode(codeOptions{client: tkAsym})
	if r := e.post(assertionForm(c, a), nil); r.status != http.StatusOK {
		t.Fatalf("first use: %d %v", r.status, r.body)
	}
	c = e.seedCode(codeOptions{client: tkAsym})
	expectTokenError(t, e.post(assertionForm(c, a), nil), http.StatusUnauthorized, "invalid_client")
	// Same jti in a freshly signed assertion: still a replay.
	expectTokenError(t, e.post(assertionForm(c, e.assertion("RS384", "", assertionClaims{jti: "once-only"})), nil), http.StatusUnauthorized, "invalid_client")
}

func TestPrivateKeyJWTJWKSURIClient(t *testing.T) {
	e := newTokenEnv(t)
	uriClient := &store.Client{
		ID: "uri-app", Type: store.ClientConfidentialAsymmetric, JWKSURI: "https://app.example.org/jwks.json",
		RedirectURIs: []string{tkRedirect}, GrantTypes: []string{"authorization_code"}, Dynamic: true,
	}
	if err := e.db.PutClient(t.Context(), uriClient); err != nil {
		t.Fatal(err)
	}
	c := e.seedCode(codeOptions{client: "uri-app"})
	r := e.post(assertionForm(c, e.assertion("ES384", "", assertionClaims{iss: "uri-app"})), nil)
	expectTokenError(t, r, http.StatusUnauthorized, "invalid_client")
	if !strings.Contains(r.str("error_description"), "jwks_uri") {
		t.Errorf("error_description %q", r.str("error_description"))
	}
}
