package handlers_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/net/html"

	"github.com/smartcaddy/smartauth/handlers"
	"github.com/smartcaddy/smartauth/handlers/authz"
	"github.com/smartcaddy/smartauth/handlers/users"
	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/store"
)

// The test deployment: an app with a launch URL, a second app, an EHR
// allowed to create launches, a client without that right, and two
// users.
const (
	appRedirect   = "https://app.example/cb"
	appLaunchURI  = "https://app.example/launch"
	otherRedirect = "https://other.example/cb"
	ehrSecret     = "ehr-secret-0123456789"
	alicePassword = "alice-password"
	bobPassword   = "bob-password"
	ehrFrame      = "https://ehr.example"
)

// flowEnv is a Server on a real store and key ring, served over HTTP at
// {url}/auth (issuer) and {url}/fhir (FHIR base).
type flowEnv struct {
	t        *testing.T
	ts       *httptest.Server
	db       *store.DB
	issuer   string
	fhirBase string
}

type flowOptions struct {
	// config changes the configuration before New.
	config func(*handlers.Config)
	// wrap wraps the HTTP handler (to put a Caddy replacer in the
	// request context, for example).
	wrap func(http.Handler) http.Handler
}

func testPasswordHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// newFlowConfig builds the configuration of the test deployment.
func newFlowConfig(t *testing.T, db store.Store, base string) handlers.Config {
	t.Helper()
	ring, err := keys.New(context.Background(), keys.Options{Store: db, Retain: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	issuer, _ := url.Parse(base + "/auth")
	fhir, _ := url.Parse(base + "/fhir")
	return handlers.Config{
		Issuer:   issuer,
		FHIRBase: fhir,
		Store:    db,
		Keys:     ring,
		Clients: map[string]*store.Client{
			"app": {ID: "app", Name: "Growth Chart", Type: store.ClientPublic,
				RedirectURIs: []string{appRedirect}, LaunchURI: appLaunchURI,
				GrantTypes: []string{"authorization_code", "refresh_token"}},
			"other": {ID: "other", Name: "Other App", Type: store.ClientPublic,
				RedirectURIs: []string{otherRedirect, otherRedirect + "2"},
				GrantTypes:   []string{"authorization_code"}},
			"ehr": {ID: "ehr", Name: "EHR", Type: store.ClientConfidentialSymmetric,
				SecretHash: store.HashSecret(ehrSecret), CanCreateLaunch: true,
				GrantTypes: []string{"client_credentials"}},
			"backend": {ID: "backend", Type: store.ClientConfidentialSymmetric,
				SecretHash: store.HashSecret(ehrSecret), RedirectURIs: []string{"https://backend.example/cb"},
				GrantTypes: []string{"client_credentials"}},
		},
		Users: map[string]*users.User{
			"alice": {Name: "alice", PasswordHash: testPasswordHash(t, alicePassword),
				FHIRUser: "Practitioner/p1", DisplayName: "Dr Alice", Patients: []string{"pat1", "pat2"}},
			"bob": {Name: "bob", PasswordHash: testPasswordHash(t, bobPassword), FHIRUser: "Patient/pat9"},
			// carol has the explicit operator grant user/ scopes need.
			"carol": {Name: "carol", PasswordHash: testPasswordHash(t, alicePassword),
				FHIRUser: "Practitioner/p3", Scopes: []string{"user/*.rs", "patient/*.rs"}},
		},
		Lifetimes: authz.Lifetimes{
			AccessToken: 5 * time.Minute, RefreshToken: time.Hour,
			Code: time.Minute, Launch: 5 * time.Minute, Session: time.Hour,
		},
		Authz: authz.Settings{PasswordLogin: true, FrameAncestors: []string{ehrFrame}},
	}
}

func newFlowEnv(t *testing.T, o flowOptions) *flowEnv {
	t.Helper()
	env, err := tryFlowEnv(t, o)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// tryFlowEnv is newFlowEnv returning New's error.
func tryFlowEnv(t *testing.T, o flowOptions) (*flowEnv, error) {
	t.Helper()
	db, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ts := httptest.NewUnstartedServer(nil)
	base := "http://" + ts.Listener.Addr().String()
	cfg := newFlowConfig(t, db, base)
	if o.config != nil {
		o.config(&cfg)
	}
	s, err := handlers.New(cfg)
	if err != nil {
		ts.Close()
		return nil, err
	}
	t.Cleanup(func() { _ = s.Close() }) // before the store closes: cleanups run last-in first-out
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = s.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
	})
	if o.wrap != nil {
		h = o.wrap(h)
	}
	ts.Config.Handler = h
	ts.Start()
	t.Cleanup(ts.Close)
	return &flowEnv{t: t, ts: ts, db: db, issuer: base + "/auth", fhirBase: base + "/fhir"}, nil
}

// pkcePair returns a verifier and its S256 challenge.
func pkcePair() (verifier, challenge string) {
	verifier = store.NewSecret() + "-verifier"
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// authParams are the parameters of a valid standalone request of "app".
func (e *flowEnv) authParams(scope string) url.Values {
	_, challenge := pkcePair()
	return url.Values{
		"response_type":         {"code"},
		"client_id":             {"app"},
		"redirect_uri":          {appRedirect},
		"scope":                 {scope},
		"state":                 {"st-" + store.NewSecret()[:12]},
		"aud":                   {e.fhirBase},
		"code_challenge":        {challenge},
		"code_challenge_method": {"S256"},
		"nonce":                 {"n-0S6_WzA2Mj"},
	}
}

// authorizeURL is the authorization endpoint with parameters.
func (e *flowEnv) authorizeURL(v url.Values) string {
	return e.issuer + "/authorize?" + v.Encode()
}

// redeem checks that a code exists by redeeming it.
func (e *flowEnv) redeem(code string) *store.AuthCode {
	e.t.Helper()
	rec, err := e.db.RedeemCode(context.Background(), code)
	if err != nil {
		e.t.Fatalf("redeeming code: %v", err)
	}
	return rec
}

// browser is a cookie-keeping HTTP client that does not follow redirects.
type browser struct {
	t   *testing.T
	env *flowEnv
	c   *http.Client
}

func (e *flowEnv) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &browser{t: e.t, env: e, c: &http.Client{
		Jar:           jar,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// page is a response, read.
type page struct {
	status   int
	header   http.Header
	body     string
	location string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return page{status: resp.StatusCode, header: resp.Header, body: string(body), location: resp.Header.Get("Location")}
}

func (b *browser) get(u string) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

func (b *browser) post(u string, v url.Values) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(v.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// follow fetches a redirect's target on the test server.
func (b *browser) follow(p page) page {
	b.t.Helper()
	if p.status != http.StatusSeeOther && p.status != http.StatusFound {
		b.t.Fatalf("want a redirect, got %d: %s", p.status, p.body)
	}
	if !strings.HasPrefix(p.location, b.env.issuer+"/") {
		b.t.Fatalf("redirect leaves the server: %s", p.location)
	}
	return b.get(p.location)
}

// formInput is one input of a form.
type formInput struct {
	name, typ, value  string
	checked, disabled bool
}

// htmlForm is a parsed form.
type htmlForm struct {
	action, method string
	inputs         []formInput
}

// forms parses the forms of a page.
func forms(t *testing.T, body string) []htmlForm {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var out []htmlForm
	var cur *htmlForm
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			attr := func(k string) (string, bool) {
				for _, a := range n.Attr {
					if a.Key == k {
						return a.Val, true
					}
				}
				return "", false
			}
			switch n.Data {
			case "form":
				action, _ := attr("action")
				method, _ := attr("method")
				out = append(out, htmlForm{action: action, method: strings.ToUpper(method)})
				cur = &out[len(out)-1]
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					walk(c)
				}
				cur = nil
				return
			case "input", "button":
				if cur != nil {
					in := formInput{typ: "text"}
					if n.Data == "button" {
						in.typ = "submit"
					}
					in.name, _ = attr("name")
					if v, ok := attr("type"); ok {
						in.typ = strings.ToLower(v)
					}
					in.value, _ = attr("value")
					_, in.checked = attr("checked")
					_, in.disabled = attr("disabled")
					cur.inputs = append(cur.inputs, in)
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return out
}

// onlyForm returns the page's single form.
func onlyForm(t *testing.T, p page) htmlForm {
	t.Helper()
	fs := forms(t, p.body)
	if len(fs) != 1 {
		t.Fatalf("want one form, got %d (status %d): %s", len(fs), p.status, p.body)
	}
	return fs[0]
}

// values is what a browser submits by default: hidden and text inputs,
// and checked, enabled boxes; no button.
func (f htmlForm) values() url.Values {
	v := url.Values{}
	for _, in := range f.inputs {
		if in.name == "" || in.disabled {
			continue
		}
		switch in.typ {
		case "checkbox", "radio":
			if in.checked {
				v.Add(in.name, in.value)
			}
		case "submit", "button":
		default:
			v.Add(in.name, in.value)
		}
	}
	return v
}

// named returns the inputs with a name.
func (f htmlForm) named(name string) []formInput {
	var out []formInput
	for _, in := range f.inputs {
		if in.name == name {
			out = append(out, in)
		}
	}
	return out
}

// submit posts a form with its default values changed by edit.
func (b *browser) submit(f htmlForm, edit func(url.Values)) page {
	b.t.Helper()
	if f.method != http.MethodPost {
		b.t.Fatalf("form method %q", f.method)
	}
	v := f.values()
	if edit != nil {
		edit(v)
	}
	return b.post(f.action, v)
}

// login fills in the sign-in form of a page.
func (b *browser) login(p page, user, password string) page {
	b.t.Helper()
	f := onlyForm(b.t, p)
	if len(f.named("username")) != 1 || len(f.named("password")) != 1 || len(f.named("csrf_token")) != 1 {
		b.t.Fatalf("sign-in form lacks username, password or csrf_token: %+v", f.inputs)
	}
	return b.submit(f, func(v url.Values) {
		v.Set("username", user)
		v.Set("password", password)
	})
}

// appRedirectParams checks that a response sends the browser to the app
// and returns the parameters it carries.
func appRedirectParams(t *testing.T, p page, redirectURI string) url.Values {
	t.Helper()
	if p.status != http.StatusSeeOther && p.status != http.StatusFound {
		t.Fatalf("want a redirect to the app, got %d: %s", p.status, p.body)
	}
	u, err := url.Parse(p.location)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	u.RawQuery = ""
	if u.String() != redirectURI {
		t.Fatalf("redirected to %s, want %s", p.location, redirectURI)
	}
	return q
}

// cookieNamed returns a Set-Cookie of a response.
func cookieNamed(p page, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: p.header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}
