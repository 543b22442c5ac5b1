package integration

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// upstreamRequest is what the recording FHIR upstream received.
type upstreamRequest struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   string
}

// fhirUpstream is a fake FHIR server that records every request. Reads of
// Type/{name}-{patient} answer a resource whose subject is that patient
// ("focus-…" ids put the reference in focus instead, outside the
// compartment elements); "missing-…" ids are 404.
type fhirUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen map[string]upstreamRequest // by X-Test-Case
	all  int
}

func startUpstream(t *testing.T) *fhirUpstream {
	u := &fhirUpstream{seen: map[string]upstreamRequest{}}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

func (u *fhirUpstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.all++
	if c := r.Header.Get("X-Test-Case"); c != "" {
		u.seen[c] = upstreamRequest{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: string(body)}
	}
	u.mu.Unlock()
	w.Header().Set("Content-Type", "application/fhir+json")
	rel := strings.TrimPrefix(r.URL.Path, "/fhir/")
	segs := strings.Split(rel, "/")
	switch {
	case rel == "metadata":
		_, _ = io.WriteString(w, `{"resourceType":"CapabilityStatement","status":"active","kind":"instance","fhirVersion":"4.0.1","format":["json"],"rest":[{"mode":"server"}]}`)
	case r.Method == http.MethodGet && len(segs) >= 2 && strings.HasPrefix(segs[1], "missing"):
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found"}]}`)
	case r.Method == http.MethodGet && len(segs) == 2 && !strings.HasPrefix(segs[1], "$") && !strings.HasPrefix(segs[1], "_"):
		_, _ = w.Write(fakeResource(segs[0], segs[1]))
	case r.Method == http.MethodGet && len(segs) == 3 && segs[2] == "_history":
		fmt.Fprintf(w, `{"resourceType":"Bundle","type":"history","entry":[{"resource":%s},{"request":{"method":"DELETE"}}]}`, fakeResource(segs[0], segs[1]))
	case r.Method == http.MethodGet && len(segs) == 4 && segs[2] == "_history":
		_, _ = w.Write(fakeResource(segs[0], segs[1]))
	case r.Method == http.MethodPost && len(segs) == 1 && segs[0] == "":
		_, _ = io.WriteString(w, `{"resourceType":"Bundle","type":"batch-response"}`)
	case r.Method == http.MethodPost && len(segs) == 1 && segs[0] != "_search":
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(body)
	default:
		_, _ = io.WriteString(w, `{"resourceType":"Bundle","type":"searchset","total":0}`)
	}
}

// fakeResource is the stored resource Type/id: a Patient with that id, or
// a resource referring to the patient named after the id's last '-'.
func fakeResource(typ, id string) []byte {
	if typ == "Patient" {
		return fmt.Appendf(nil, `{"resourceType":"Patient","id":%q}`, id)
	}
	owner := id[strings.LastIndex(id, "-")+1:]
	el := "subject"
	switch {
	case strings.HasPrefix(id, "focus-"):
		el = "focus"
	case typ == "AllergyIntolerance":
		el = "patient"
	}
	return fmt.Appendf(nil, `{"resourceType":%q,"id":%q,"status":"final",%q:{"reference":"Patient/%s"}}`, typ, id, el, owner)
}

// reached tells whether a test case's request reached the upstream.
func (u *fhirUpstream) reached(caseID string) (upstreamRequest, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	r, ok := u.seen[caseID]
	return r, ok
}

// tokenSigner signs access tokens with the server's ES256 key (given to
// smart_auth as a PEM file), as its token endpoint would.
type tokenSigner struct {
	key     *ecdsa.PrivateKey
	kid     string
	pemPath string
	issuer  string
	aud     string
}

func newTokenSigner(t testing.TB) *tokenSigner {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "es256.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	pub, err := jwk.Import(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return &tokenSigner{key: key, kid: base64.RawURLEncoding.EncodeToString(tp), pemPath: path}
}

// guardJTI returns a random token id.
func guardJTI() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// tokenSpec describes an access token to mint.
type tokenSpec struct {
	sub, clientID, scope, patient, fhirUser, family, jti string
	iss, aud, typ                                        string
	iat, exp                                             time.Time
}

// mint signs an access token; zero fields get the defaults of a token the
// server would issue to app "app" for user alice.
func (s *tokenSigner) mint(t testing.TB, spec tokenSpec) string {
	t.Helper()
	now := time.Now()
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&spec.sub, "alice")
	def(&spec.clientID, "app")
	def(&spec.iss, s.issuer)
	def(&spec.aud, s.aud)
	def(&spec.typ, "at+jwt")
	if spec.jti == "" {
		spec.jti = guardJTI()
	}
	if spec.iat.IsZero() {
		spec.iat = now
	}
	if spec.exp.IsZero() {
		spec.exp = now.Add(time.Hour)
	}
	tok := jwt.New()
	claims := map[string]any{
		"iss": spec.iss, "sub": spec.sub, "aud": []string{spec.aud}, "iat": spec.iat, "nbf": spec.iat,
		"exp": spec.exp, "jti": spec.jti, "client_id": spec.clientID, "scope": spec.scope,
	}
	for k, v := range map[string]string{"patient": spec.patient, "fhirUser": spec.fhirUser, "family_id": spec.family} {
		if v != "" {
			claims[k] = v
		}
	}
	for k, v := range claims {
		if err := tok.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	h := jws.NewHeaders()
	_ = h.Set(jws.KeyIDKey, s.kid)
	_ = h.Set(jws.TypeKey, spec.typ)
	b, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), s.key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// guardSite is a Caddy with smart_auth (signing with the test's ES256
// key) and reverse_proxy in front of a recording upstream.
type guardSite struct {
	site
	up     *fhirUpstream
	signer *tokenSigner
}

// guardBlock is the guard configuration of the table test.
const guardBlock = `guard {
			header X-Smart-Patient {smart.patient}
			header X-Smart-Client {smart.client_id}
			header X-Smart-User {smart.user}
			header X-Smart-Sub {http.auth.user.id}
			operation $validate * r
			operation $lastn Observation s
			allow_outside_compartment Medication Organization
		}`

func startGuardSite(t *testing.T, guard string) *guardSite {
	t.Helper()
	g := &guardSite{up: startUpstream(t), signer: newTokenSigner(t)}
	g.site = site{port: freePort(t), storage: t.TempDir()}
	g.signer.issuer = g.base() + "/auth"
	g.signer.aud = g.base() + "/fhir"
	g.extra = fmt.Sprintf(`signing_key ES256 %s
		%s
		client app {
			redirect_uri https://app.example.org/callback
		}
		client backend {
			secret backend-secret-for-tests
			grant_types client_credentials
			allow_secret_for_client_credentials
			scopes system/Observation.rs system/Patient.r system/Encounter.cruds
		}
		user alice {
			password_hash %s
			fhir_user Practitioner/dr-alice
			# The operator's explicit grant: user/ scopes reach every
			# patient; any patient may be in context.
			scopes user/*.cruds patient/*.cruds
		}
		user carol {
			password_hash %s
			scopes user/Observation.rs patient/Observation.rs
		}`, g.signer.pemPath, guard, testHash, testHash)
	g.after = "reverse_proxy /fhir/* " + strings.TrimPrefix(g.up.URL, "http://")
	startCaddyfile(t, g.caddyfile())
	return g
}

// do sends a request to the guarded API with a token ("" for none).
func (g *guardSite) do(t *testing.T, method, path, token, body string, header http.Header) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, g.base()+"/fhir/"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}
