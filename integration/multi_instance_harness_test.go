package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/net/html"
	"golang.org/x/oauth2"
)

// The multi-instance tests run two built Caddy processes, A and B, with the
// same smart_auth configuration on one PostgreSQL database, as a platform
// team would behind a load balancer. A third Caddy process is that load
// balancer (reverse_proxy round-robin to both), whose address is the
// issuer's and the FHIR base's, and the demo FHIR server (demo/fhir) both
// instances proxy to. The tests talk to A and B directly, rewriting the
// issuer's origin in URLs to the instance a step must land on.

// Names of the instances, for messages.
var instanceNames = [2]string{"A", "B"}

// multiDSNEnv is the variable the instances read their DSN from, as the
// README's configuration does.
const multiDSNEnv = "SMART_AUTH_DSN"

// instances is a running pair of smart_auth instances on one database.
type instances struct {
	t        *testing.T
	dir      string
	dsn      string
	front    string    // the load balancer: the issuer's and FHIR base's origin
	base     [2]string // A's and B's own origins
	files    [2]string // their Caddyfiles
	procs    [2]*caddyProcess
	env      []string
	keys     backendKeys
	redirect string
	c        *http.Client
}

// issuer is the authorization server's URL (on the load balancer).
func (m *instances) issuer() string { return m.front + "/auth" }

// fhirBase is the FHIR base URL (on the load balancer).
func (m *instances) fhirBase() string { return m.front + "/fhir" }

// startInstances starts the load balancer with the demo FHIR server, then
// A and B at once on the database dsn, and waits until both serve their
// JWKS. options are more lines of the smart_auth block.
func startInstances(t *testing.T, dsn string, options ...string) *instances {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("alice-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	demo, err := filepath.Abs(filepath.Join("..", "demo", "fhir"))
	if err != nil {
		t.Fatal(err)
	}
	m := &instances{t: t, dir: t.TempDir(), dsn: dsn, keys: newBackendKeys(t), c: loadClient(),
		redirect: "http://localhost:9/callback"}
	m.env = []string{multiDSNEnv + "=" + dsn, "SMARTAUTH_TEST_CONF_SECRET=" + confSecret, "SMARTAUTH_TEST_EHR_SECRET=" + ehrSecret}
	frontPort, fhirPort := freePort(t), freePort(t)
	m.front = fmt.Sprintf("http://localhost:%d", frontPort)
	ports := [2]int{freePort(t), freePort(t)}
	for i, p := range ports {
		m.base[i] = fmt.Sprintf("http://localhost:%d", p)
	}
	frontFile := filepath.Join(m.dir, "Caddyfile.front")
	writeCaddyfile(t, frontFile, fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
}

# The load balancer in front of both instances.
http://localhost:%d {
	reverse_proxy localhost:%d localhost:%d {
		lb_policy round_robin
		lb_try_duration 2s
		fail_duration 10s
	}
}

# The demo FHIR server.
http://localhost:%d {
	uri strip_prefix /fhir
	root * %s
	try_files {path}.json {path}
	header Content-Type application/fhir+json
	file_server
}
`, frontPort, ports[0], ports[1], fhirPort, demo))
	front := startCaddyProcess(t, frontFile, filepath.Join(m.dir, "front.log"))
	front.waitReady(fmt.Sprintf("http://localhost:%d/fhir/Patient/pat-1", fhirPort))

	var wg sync.WaitGroup
	for i := range 2 {
		m.files[i] = filepath.Join(m.dir, "Caddyfile."+instanceNames[i])
		writeCaddyfile(t, m.files[i], m.caddyfile(ports[i], frontPort, fhirPort, string(hash), strings.Join(options, "\n")))
		m.procs[i] = startCaddyProcess(t, m.files[i], filepath.Join(m.dir, "caddy-"+instanceNames[i]+".log"), m.env...)
	}
	for i := range 2 {
		wg.Go(func() { m.procs[i].waitReady(m.base[i] + "/auth/jwks") })
	}
	wg.Wait()
	return m
}

// caddyfile is an instance's configuration: the same for both but for the
// port it listens on.
func (m *instances) caddyfile(port, frontPort, fhirPort int, hash, options string) string {
	return fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
	servers {
		trusted_proxies static 127.0.0.1/32 ::1/128
	}
}

http://localhost:%[1]d {
	smart_auth {
		issuer http://localhost:%[2]d/auth
		fhir_base http://localhost:%[2]d/fhir
		storage postgres {env.SMART_AUTH_DSN}
		remember_consent 1h
		registration open
		client multi-app {
			redirect_uri %[4]s
			launch_uri http://localhost:9/launch
		}
		client multi-conf {
			secret {env.SMARTAUTH_TEST_CONF_SECRET}
			redirect_uri %[4]s
		}
		client multi-ehr {
			secret {env.SMARTAUTH_TEST_EHR_SECRET}
			create_launch
		}
		client multi-backend {
			jwks `+"`%[5]s`"+`
			scopes system/*.rs
		}
		user alice {
			password_hash %[6]s
			fhir_user Practitioner/dr-alice
			patients pat-1 pat-2
		}
		%[7]s
	}
	handle /fhir/* {
		reverse_proxy localhost:%[3]d
	}
}
`, port, frontPort, fhirPort, m.redirect, m.keys.jwks(m.t), hash, options)
}

// on rewrites a URL on the load balancer's origin to instance i's.
func (m *instances) on(i int, u string) string {
	if rest, ok := strings.CutPrefix(u, m.front); ok {
		return m.base[i] + rest
	}
	return u
}

// post sends a form to an endpoint of the issuer on instance i, with the
// confidential app's credentials in HTTP Basic when basic is set.
func (m *instances) post(i int, endpoint string, form url.Values, basic bool) answer {
	return send(m.c, m.postRequest(i, endpoint, form, basic))
}

// postRequest builds the request post sends.
func (m *instances) postRequest(i int, endpoint string, form url.Values, basic bool) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, m.base[i]+"/auth"+endpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic {
		req.SetBasicAuth("multi-conf", confSecret)
	}
	return req
}

// read reads pat-1's record through instance i's guard with an access
// token.
func (m *instances) read(i int, access string) answer {
	req, _ := http.NewRequest(http.MethodGet, m.base[i]+"/fhir/Patient/pat-1", nil)
	req.Header.Set("Authorization", "Bearer "+access)
	return send(m.c, req)
}

// mustRead fails the test unless instance i's guard lets the token read
// pat-1's record from the demo FHIR server.
func (m *instances) mustRead(i int, access, what string) {
	m.t.Helper()
	a := m.read(i, access)
	if a.err != nil || a.status != http.StatusOK || !strings.Contains(string(a.body), `"pat-1"`) {
		m.t.Fatalf("%s, read through %s's guard: %d %v %.300s", what, instanceNames[i], a.status, a.err, a.body)
	}
}

// backendToken runs client_credentials on instance i and returns the
// access token.
func (m *instances) backendToken(i int) (string, answer) {
	assertion, err := loadAssertion(m.keys, "multi-backend", m.issuer()+"/token", newJTI())
	if err != nil {
		return "", answer{err: err}
	}
	a := m.post(i, "/token", ccForm(assertion, "system/Patient.rs"), false)
	return tokenAnswer(a).Access, a
}

// mustBackendToken is backendToken failing the test on anything but a
// token.
func (m *instances) mustBackendToken(i int) string {
	m.t.Helper()
	tok, a := m.backendToken(i)
	if a.err != nil || a.status != http.StatusOK || tok == "" {
		m.t.Fatalf("client_credentials on %s: %d %v %.300s", instanceNames[i], a.status, a.err, a.body)
	}
	return tok
}

// step is one request of a browser's walk, and the instance that got it.
type step struct {
	instance int
	method   string
	path     string
	status   int
}

// String is the step as the test logs it.
func (s step) String() string {
	return fmt.Sprintf("%s %s on %s: %d", s.method, s.path, instanceNames[s.instance], s.status)
}

// walk is browser.run with every request sent to the instance pick
// chooses for its position: it starts at an authorization URL on the
// issuer, answers every page, and returns the query of the redirect to the
// app, with the steps it took.
func (m *instances) walk(b *browser, start string, pick func(n int) int) (url.Values, []step) {
	m.t.Helper()
	var steps []step
	req, _ := http.NewRequest(http.MethodGet, start, nil)
	for n := range 20 {
		i := pick(n)
		target, err := url.Parse(m.on(i, m.front+strings.TrimPrefix(req.URL.String(), originOf(req.URL))))
		if err != nil {
			m.t.Fatal(err)
		}
		req.URL, req.Host = target, ""
		resp, err := b.c.Do(req)
		if err != nil {
			m.t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		steps = append(steps, step{i, req.Method, req.URL.Path, resp.StatusCode})
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			loc, err := resp.Location()
			if err != nil {
				m.t.Fatal(err)
			}
			if strings.HasPrefix(loc.String(), m.redirect) {
				return loc.Query(), steps
			}
			req, _ = http.NewRequest(http.MethodGet, loc.String(), nil)
		case resp.StatusCode == http.StatusOK && strings.Contains(string(body), "<form"):
			req = b.submit(resp.Request.URL, string(body))
		default:
			m.t.Fatalf("after %v: %s %s on %s: %d, a page without a form: %q", steps[:len(steps)-1], req.Method,
				req.URL.Path, instanceNames[i], resp.StatusCode, pageText(body))
		}
	}
	m.t.Fatalf("too many steps: %v", steps)
	return nil, nil
}

// browser is a new browser that signs in as alice and picks pat-1.
func (m *instances) browser() *browser {
	b := newBrowser(m.t)
	b.choose["patient"] = "pat-1"
	return b
}

// pageText is the text of a page's title, headings and paragraphs.
func pageText(page []byte) string {
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		return string(page)
	}
	var parts []string
	var visit func(n *html.Node, keep bool)
	visit = func(n *html.Node, keep bool) {
		if n.Type == html.ElementNode {
			keep = keep || slices.Contains([]string{"title", "h1", "h2", "p"}, n.Data)
		}
		if n.Type == html.TextNode && keep && strings.TrimSpace(n.Data) != "" {
			parts = append(parts, strings.TrimSpace(n.Data))
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			visit(c, keep)
		}
	}
	visit(doc, false)
	return strings.Join(parts, " | ")
}

// originOf is a URL's scheme and host.
func originOf(u *url.URL) string { return u.Scheme + "://" + u.Host }

// codeFlow runs the confidential app's authorization code flow, every
// request on instance i, and returns the code and its PKCE verifier.
func (m *instances) codeFlow(b *browser, i int, scopes ...string) (code, verifier string) {
	m.t.Helper()
	cfg := &oauth2.Config{ClientID: "multi-conf", RedirectURL: m.redirect, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: m.issuer() + "/authorize"}}
	verifier = oauth2.GenerateVerifier()
	q, _ := m.walk(b, cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("aud", m.fhirBase())), func(int) int { return i })
	if q.Get("code") == "" {
		m.t.Fatalf("authorization on %s: %v", instanceNames[i], q)
	}
	return q.Get("code"), verifier
}

// exchange redeems a code of the confidential app on instance i.
func (m *instances) exchange(i int, code, verifier string) answer {
	return m.post(i, "/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {m.redirect}, "code_verifier": {verifier}}, true)
}

// refresh presents a refresh token of the confidential app on instance i.
func (m *instances) refresh(i int, rt string) answer {
	return m.post(i, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, true)
}

// mustTokens fails the test unless a is a token response with an access
// token (and a refresh token when wantRefresh).
func (m *instances) mustTokens(a answer, wantRefresh bool, what string) tokenReply {
	m.t.Helper()
	tok := tokenAnswer(a)
	if a.err != nil || a.status != http.StatusOK || tok.Access == "" || wantRefresh && tok.Refresh == "" {
		m.t.Fatalf("%s: %d %v %.300s", what, a.status, a.err, a.body)
	}
	return tok
}

// oauthError is the error code of an OAuth error answer.
func oauthError(a answer) string {
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(a.body, &e)
	return e.Error
}
