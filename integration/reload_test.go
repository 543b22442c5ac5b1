package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"
)

// smartReload is the smart_auth side of the reload test.
type smartReload struct {
	reloadTarget
	keys     backendKeys
	redirect string
	c        *http.Client
	user     *http.Client // alice's browser: signed in, consent remembered
}

// reloadCaddyfile is the smart_auth configuration of the reload test;
// appName is the harmless difference between its two versions.
func reloadCaddyfile(port, adminPort int, storage, redirect, jwks, hash, appName string) string {
	return fmt.Sprintf(`{
	admin localhost:%[2]d
	persist_config off
	auto_https off
}

http://localhost:%[1]d {
	smart_auth {
		issuer http://localhost:%[1]d/auth
		fhir_base http://localhost:%[1]d/fhir
		storage %[3]s
		remember_consent 1h
		registration open
		client reload-app {
			name "%[7]s"
			secret {env.SMARTAUTH_TEST_CONF_SECRET}
			redirect_uri %[4]s
		}
		client reload-backend {
			jwks `+"`%[5]s`"+`
			scopes system/*.rs
		}
		user alice {
			password_hash %[6]s
			fhir_user Practitioner/dr-alice
		}
	}
	respond /fhir/* "upstream" 200
}
`, port, adminPort, storage, redirect, jwks, hash, appName)
}

// startSmartReload starts Caddy with smart_auth on configuration A and
// prepares configuration B and the invalid ones.
func startSmartReload(t *testing.T) *smartReload {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("alice-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port, adminPort := freePort(t), freePort(t)
	s := &smartReload{keys: newBackendKeys(t), redirect: "http://localhost:9/callback", c: loadClient()}
	s.reloadTarget = reloadTarget{t: t, name: "smart_auth", base: fmt.Sprintf("http://localhost:%d", port),
		admin: fmt.Sprintf("http://localhost:%d", adminPort)}
	t.Setenv("SMARTAUTH_TEST_CONF_SECRET", confSecret) // for adapting here
	caddyfiles := [2]string{}
	s.markers = [2]string{"Reload App A", "Reload App B"}
	for i, name := range s.markers {
		caddyfiles[i] = reloadCaddyfile(port, adminPort, filepath.Join(dir, "storage"), s.redirect, s.keys.jwks(t), string(hash), name)
		s.valid[i] = adapt(t, caddyfiles[i])
	}
	s.invalid = []invalidConfig{
		{"an issuer on plain http off loopback", "issuer", bytes.Replace(s.valid[0], []byte(`"issuer":"http://localhost:`),
			[]byte(`"issuer":"http://reload.example:`), 1)},
		{"an unknown handler after smart_auth", "http.handlers.no_such_handler", withHandlerAfterSmartAuth(t, s.valid[0], `{"handler":"no_such_handler"}`)},
	}
	path := filepath.Join(dir, "Caddyfile")
	writeCaddyfile(t, path, caddyfiles[0])
	s.proc = startCaddyProcess(t, path, filepath.Join(dir, "caddy.log"), "SMARTAUTH_TEST_CONF_SECRET="+confSecret)
	s.proc.waitReady(s.base + "/auth/jwks")

	// Sign alice in and remember her consent, once.
	b := newBrowser(t)
	verifier := oauth2.GenerateVerifier()
	q := b.run(s.authorizeURL(verifier), s.redirect)
	if a := s.exchange(s.c, q.Get("code"), verifier); a.err != nil || a.status != http.StatusOK {
		t.Fatalf("first code exchange: %d %v %.200s", a.status, a.err, a.body)
	}
	s.user = loadClient()
	s.user.Jar = b.c.Jar
	return s
}

// withHandlerAfterSmartAuth adds a handler right after smart_auth in the
// handler list that holds it, so that smart_auth is provisioned before
// the configuration fails.
func withHandlerAfterSmartAuth(t *testing.T, js []byte, handler string) []byte {
	t.Helper()
	var cfg any
	if err := json.Unmarshal(js, &cfg); err != nil {
		t.Fatal(err)
	}
	var extra any
	_ = json.Unmarshal([]byte(handler), &extra)
	found := false
	var walk func(v any) any
	walk = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				v[k] = walk(e)
			}
		case []any:
			for i, e := range v {
				if m, ok := e.(map[string]any); ok && m["handler"] == "smart_auth" {
					found = true
					return slices.Insert(v, i+1, extra)
				}
				v[i] = walk(e)
			}
		}
		return v
	}
	cfg = walk(cfg)
	if !found {
		t.Fatalf("no smart_auth handler in %s", js)
	}
	out, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// authorizeURL is the app's authorization request with a PKCE challenge.
func (s *smartReload) authorizeURL(verifier string) string {
	cfg := &oauth2.Config{ClientID: "reload-app", RedirectURL: s.redirect, Scopes: []string{"offline_access"},
		Endpoint: oauth2.Endpoint{AuthURL: s.base + "/auth/authorize"}}
	return cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", s.base+"/fhir"))
}

// tokenRequest posts a form to the token endpoint, with the app's
// credentials when basic is set.
func (s *smartReload) tokenRequest(form url.Values, basic bool) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, s.base+"/auth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic {
		req.SetBasicAuth("reload-app", confSecret)
	}
	return req
}

// exchange redeems an authorization code.
func (s *smartReload) exchange(c *http.Client, code, verifier string) answer {
	return send(c, s.tokenRequest(url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {s.redirect}, "code_verifier": {verifier}}, true))
}

// read is a guarded FHIR read with a bearer token.
func (s *smartReload) read(c *http.Client, token string) answer {
	req, _ := http.NewRequest(http.MethodGet, s.base+"/fhir/Patient/reload", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	return send(c, req)
}

// backendGrant runs client_credentials with a fresh client assertion.
func (s *smartReload) backendGrant(c *http.Client) answer {
	assertion, err := loadAssertion(s.keys, "reload-backend", s.base+"/auth/token", newJTI())
	if err != nil {
		return answer{err: err}
	}
	return send(c, s.tokenRequest(ccForm(assertion, "system/Patient.rs"), false))
}

// backendWorker gets a token by client_credentials and reads with it.
func (s *smartReload) backendWorker(st *reloadStats) {
	a := s.backendGrant(s.c)
	if st.expect("client_credentials", a, http.StatusOK) {
		st.expect("FHIR read with a new token", s.read(s.c, tokenAnswer(a).Access), http.StatusOK)
	}
}

// codeWorker runs the authorization code grant for the signed-in user: the
// authorization request is answered with a code right away (session and
// remembered consent), which the app exchanges.
func (s *smartReload) codeWorker(st *reloadStats) {
	verifier := oauth2.GenerateVerifier()
	req, _ := http.NewRequest(http.MethodGet, s.authorizeURL(verifier), nil)
	a := send(s.user, req)
	if !st.expect("authorize", a, http.StatusSeeOther) {
		return
	}
	loc, err := url.Parse(a.header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), s.redirect) || loc.Query().Get("code") == "" {
		st.expect("authorize", answer{status: 0, body: []byte("redirected to " + a.header.Get("Location"))}, http.StatusSeeOther)
		return
	}
	st.expect("authorization_code", s.exchange(s.c, loc.Query().Get("code"), verifier), http.StatusOK)
}

// registerClient registers a client through the open registration.
func (s *smartReload) registerClient(t *testing.T) registered {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.base+"/auth/register", strings.NewReader(`{"redirect_uris":["`+s.redirect+`"]}`))
	req.Header.Set("Content-Type", "application/json")
	a := send(s.c, req)
	var reg struct {
		ID  string `json:"client_id"`
		RAT string `json:"registration_access_token"`
	}
	if a.err != nil || a.status != http.StatusCreated || json.Unmarshal(a.body, &reg) != nil {
		t.Fatalf("register: %d %v %.200s", a.status, a.err, a.body)
	}
	return registered{id: reg.ID, rat: reg.RAT}
}

// TestReloadUnderLoad replaces the configuration of a running Caddy with
// smart_auth through the admin API 20 times under a steady load of
// client_credentials grants, authorization code grants and guarded FHIR
// reads, then tries two invalid configurations. No request may get an
// error status; tokens, keys and registered clients from before must
// survive; the last valid configuration must keep serving. The same load
// and reloads run against a plain Caddy (respond only) for comparison:
// requests that get no answer at all when a configuration is swapped are
// counted for both.
func TestReloadUnderLoad(t *testing.T) {
	s := startSmartReload(t)
	kids := jwksKIDs(t, s.base+"/auth/jwks")
	slices.Sort(kids)
	// Before the reloads: a backend token, a refresh token of the user, a
	// registered client.
	a := s.backendGrant(s.c)
	backendToken := tokenAnswer(a).Access
	if a.err != nil || a.status != http.StatusOK || backendToken == "" {
		t.Fatalf("client_credentials: %d %v %.200s", a.status, a.err, a.body)
	}
	st := &reloadStats{ok: map[string]int{}}
	var refreshToken string
	verifier := oauth2.GenerateVerifier()
	req, _ := http.NewRequest(http.MethodGet, s.authorizeURL(verifier), nil)
	if a := send(s.user, req); st.expect("authorize", a, http.StatusSeeOther) {
		loc, _ := url.Parse(a.header.Get("Location"))
		refreshToken = tokenAnswer(s.exchange(s.c, loc.Query().Get("code"), verifier)).Refresh
	}
	if refreshToken == "" {
		t.Fatalf("no refresh token before the reloads: %s %v %v", st, st.bad, st.transport)
	}
	reg := s.registerClient(t)

	smart := reloadUnderLoad(t, &s.reloadTarget, s.backendWorker, s.backendWorker, s.codeWorker,
		func(st *reloadStats) {
			st.expect("FHIR read with a token from before", s.read(s.c, backendToken), http.StatusOK)
			time.Sleep(readerPause) // leave the CPUs to the grants
		})
	t.Logf("smart_auth under %d reloads: %s", reloads, smart)

	// After: the old tokens, keys and clients work; the last valid
	// configuration (A) serves.
	if a := s.read(s.c, backendToken); a.err != nil || a.status != http.StatusOK {
		t.Errorf("a backend token from before the reloads: %d %v %.200s", a.status, a.err, a.body)
	}
	a = send(s.c, s.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}, true))
	if a.err != nil || a.status != http.StatusOK || tokenAnswer(a).Refresh == "" {
		t.Errorf("a refresh token from before the reloads: %d %v %.200s", a.status, a.err, a.body)
	}
	if got := jwksKIDs(t, s.base+"/auth/jwks"); !slices.Equal(sortedCopy(got), kids) {
		t.Errorf("the signing keys changed: %v, before %v", got, kids)
	}
	ch := &checker{t: t}
	checkRegistered(ch, s.c, s.base+"/auth", []registered{reg})
	ch.report("a client registered before the reloads")
	after := &reloadStats{ok: map[string]int{}}
	s.backendWorker(after)
	s.codeWorker(after)
	if len(after.ok) != 4 || len(after.transport)+len(after.bad) > 0 {
		t.Errorf("after the invalid configurations: %s %v %v", after, after.transport, after.bad)
	}

	plain := startPlainReload(t)
	base := plain.base
	plainStats := reloadUnderLoad(t, &plain.reloadTarget,
		func(st *reloadStats) { plainBackend(st, plain.c, base) },
		func(st *reloadStats) { plainBackend(st, plain.c, base) },
		func(st *reloadStats) {
			if st.expect("authorize", send(plain.c, getRequest(base+"/auth/authorize?client_id=x")), http.StatusSeeOther) {
				st.expect("authorization_code", send(plain.c, plainTokenRequest(base)), http.StatusOK)
			}
		},
		func(st *reloadStats) {
			st.expect("FHIR read with a token from before", send(plain.c, getRequest(base+"/fhir/Patient/reload")), http.StatusOK)
			time.Sleep(readerPause)
		})
	t.Logf("plain Caddy under %d reloads: %s", reloads, plainStats)
	for _, st := range []*reloadStats{smart, plainStats} {
		if len(st.ok) != 5 {
			t.Errorf("a kind of request never succeeded under the reloads: %s", st)
		}
	}
}
