package integration

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"pgregory.net/rapid"
)

// invSeedFlag fixes the seed of the generated configurations. Each
// invariant test k runs on the universe of seed base+k; it logs the seed.
// Replay a failure with both seeds: -invariants.seed=<base> (from the log)
// and -rapid.seed=<seed> (from rapid's message).
var invSeedFlag = flag.Int64("invariants.seed", 0, "base seed of the invariant tests' generated configurations (0: random)")

// invBaseSeed is the base seed of this run, chosen once.
var invBaseSeed = func() func() int64 {
	var seed int64
	return func() int64 {
		if seed == 0 {
			seed = *invSeedFlag
			if seed == 0 {
				seed = time.Now().UnixNano() % 1_000_000_007
			}
		}
		return seed
	}
}()

// invPassword is every generated user's password (a cost-4 bcrypt hash
// keeps sign-in cheap).
const invPassword = "invariant-password"

// invSite is a running universe: Caddy with smart_auth and reverse_proxy
// in front of the recording upstream, the signer of its access tokens,
// and the model of its configuration.
type invSite struct {
	guardSite
	t        *testing.T
	u        *universe
	model    invModel
	redirect string
	seed     int64
	cases    int
	// counts of what the checks did, for the log: guarded requests by
	// status, requests that reached the upstream, flows by outcome.
	statuses map[int]int
	reached  int
	flows    map[string]int
}

// logStats logs what the checks did.
func (s *invSite) logStats() {
	s.t.Logf("guarded requests by status %v (%d reached the upstream); flows %v", s.statuses, s.reached, s.flows)
}

// startInvSite starts the universe of invariant test k.
func startInvSite(t *testing.T, k int) *invSite {
	t.Helper()
	seed := invBaseSeed() + int64(k)
	u := rapid.Custom(genUniverse).Example(int(seed))
	s := &invSite{t: t, u: u, model: invModel{patientSearch: u.patientSearch}, seed: seed,
		statuses: map[int]int{}, flows: map[string]int{}}
	t.Cleanup(s.logStats)
	s.up, s.signer = startUpstream(t), newTokenSigner(t)
	s.site = site{port: freePort(t), storage: t.TempDir()}
	s.signer.issuer, s.signer.aud = s.base()+"/auth", s.base()+"/fhir"
	s.redirect = fmt.Sprintf("http://localhost:%d/callback", freePort(t))
	t.Setenv("SMARTAUTH_INV_SECRET", "invariant-client-secret")
	t.Setenv("SMARTAUTH_INV_DCR", "invariant-initial-access-token-0123456789")
	hash, err := bcrypt.GenerateFromPassword([]byte(invPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "signing_key ES256 %s\n", s.signer.pemPath)
	fmt.Fprintf(&b, "registration {\n initial_access_token {env.SMARTAUTH_INV_DCR}\n }\n")
	b.WriteString("guard {\n header X-Smart-Patient {smart.patient}\n operation $validate * r\n operation $lastn Observation s\n")
	if len(u.outside) > 0 {
		b.WriteString(" allow_outside_compartment " + strings.Join(u.outside, " ") + "\n")
	}
	b.WriteString(" }\n")
	if u.trusted {
		b.WriteString("sign_in trusted_identity\n")
	}
	if u.rememberConsent {
		b.WriteString("remember_consent 1h\n")
	}
	if u.patientSearch {
		fmt.Fprintf(&b, "patient_search %s\n", startSearchServer(t).URL)
	}
	b.WriteString("client ehr {\n secret {env.SMARTAUTH_INV_SECRET}\n create_launch\n }\n")
	for _, c := range u.clients {
		if c.registered {
			continue
		}
		fmt.Fprintf(&b, "client %s {\n redirect_uri %s\n launch_uri http://localhost:9/launch\n", c.id, s.redirect)
		if !c.public {
			b.WriteString(" secret {env.SMARTAUTH_INV_SECRET}\n")
			c.secret = "invariant-client-secret"
		}
		if c.hybrid {
			b.WriteString(" grant_types authorization_code refresh_token client_credentials\n allow_secret_for_client_credentials\n")
		}
		if len(c.scopes) > 0 {
			b.WriteString(" scopes " + strings.Join(c.scopes, " ") + "\n")
		}
		b.WriteString(" }\n")
	}
	var basic strings.Builder
	for _, x := range u.users {
		fmt.Fprintf(&b, "user %s {\n password_hash %s\n", x.name, hash)
		fmt.Fprintf(&basic, " %s %s\n", x.name, hash)
		if x.fhirUser != "" {
			b.WriteString(" fhir_user " + x.fhirUser + "\n")
		}
		if len(x.patients) > 0 {
			b.WriteString(" patients " + strings.Join(x.patients, " ") + "\n")
		}
		if len(x.scopes) > 0 {
			b.WriteString(" scopes " + strings.Join(x.scopes, " ") + "\n")
		}
		b.WriteString(" }\n")
	}
	s.extra = b.String()
	s.after = "reverse_proxy /fhir/* " + strings.TrimPrefix(s.up.URL, "http://")
	if u.trusted {
		s.after = "@trusted path /auth/authorize /auth/launcher\nbasic_auth @trusted {\n" + basic.String() + "}\n" + s.after
	}
	startCaddyfile(t, s.caddyfile())
	for _, c := range u.clients {
		if c.registered {
			s.register(c)
		}
	}
	t.Logf("universe of seed %d (replay: -invariants.seed=%d):\n%s", seed, seed-int64(k), u)
	return s
}

// register registers a client through the registration API and records
// its id and secret.
func (s *invSite) register(c *invClient) {
	meta := map[string]any{"redirect_uris": []string{s.redirect}, "grant_types": []string{"authorization_code", "refresh_token"},
		"scope": strings.Join(c.scopes, " "), "client_name": c.id}
	if c.public {
		meta["token_endpoint_auth_method"] = "none"
	}
	status, _, reg := dcr{t: s.t}.call(http.MethodPost, s.issuer()+"/register", "invariant-initial-access-token-0123456789", meta)
	if status != http.StatusCreated {
		s.t.Fatalf("registering %s: %d %v", c.id, status, reg)
	}
	c.id, _ = reg["client_id"].(string)
	c.secret, _ = reg["client_secret"].(string)
}

// issuer is the site's issuer URL.
func (s *invSite) issuer() string { return s.base() + "/auth" }

// fhirBase is the site's FHIR base URL.
func (s *invSite) fhirBase() string { return s.base() + "/fhir" }

// startSearchServer is the patient-search server: a name search answers
// every patient of the pool, and a read confirms exactly those.
func startSearchServer(t *testing.T) *httptest.Server {
	patient := func(id string) string {
		return fmt.Sprintf(`{"resourceType":"Patient","id":%q,"name":[{"text":"Patient %s"}]}`, id, id)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		id, isRead := strings.CutPrefix(r.URL.Path, "/Patient/")
		switch {
		case r.URL.Path == "/Patient":
			var entries []string
			for _, p := range invPool {
				entries = append(entries, `{"resource":`+patient(p)+`}`)
			}
			fmt.Fprintf(w, `{"resourceType":"Bundle","type":"searchset","entry":[%s]}`, strings.Join(entries, ","))
		case isRead && slices.Contains(invPool, id):
			_, _ = io.WriteString(w, patient(id))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// invHTTP is the HTTP client of API calls (no redirects followed).
var invHTTP = &http.Client{Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// call sends a request and returns its status, headers and body.
func invCall(tb rapid.TB, req *http.Request) (int, http.Header, string) {
	tb.Helper()
	resp, err := invHTTP.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// oauthPost posts a form to an OAuth endpoint as client c (HTTP Basic for
// a confidential client, client_id for a public one) and decodes the JSON.
func (s *invSite) oauthPost(tb rapid.TB, endpoint string, c *invClient, form url.Values) (int, map[string]any) {
	tb.Helper()
	if c.secret == "" {
		form.Set("client_id", c.id)
	}
	req, _ := http.NewRequest(http.MethodPost, s.issuer()+"/"+endpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.secret != "" {
		req.SetBasicAuth(url.QueryEscape(c.id), url.QueryEscape(c.secret))
	}
	status, _, body := invCall(tb, req)
	var m map[string]any
	_ = json.Unmarshal([]byte(body), &m)
	return status, m
}

// createLaunch calls the EHR launch API; it returns the status and the
// launch id.
func (s *invSite) createLaunch(tb rapid.TB, body map[string]any) (int, string) {
	tb.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, s.issuer()+"/launch", strings.NewReader(string(raw)))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("ehr", "invariant-client-secret")
	status, _, resp := invCall(tb, req)
	var m struct {
		Launch string `json:"launch"`
	}
	_ = json.Unmarshal([]byte(resp), &m)
	return status, m.Launch
}

// fhir sends a generated request to the guarded API with a token, marked
// with a fresh case id; it returns the answer and what the upstream
// received last for the case (ok false when nothing reached it).
func (s *invSite) fhir(tb rapid.TB, token string, r invRequest) (int, string, upstreamRequest, bool) {
	tb.Helper()
	s.cases++
	id := fmt.Sprintf("inv-%d", s.cases)
	var body io.Reader
	if r.Body != "" {
		body = strings.NewReader(r.Body)
	}
	req, err := http.NewRequest(r.Method, s.fhirBase()+"/"+r.Path, body)
	if err != nil {
		tb.Fatalf("request %v: %v", r, err)
	}
	if r.CType != "" {
		req.Header.Set("Content-Type", r.CType)
	}
	for k, v := range r.Header {
		req.Header.Set(k, v)
	}
	req.Header.Set("X-Test-Case", id)
	req.Header.Set("Authorization", "Bearer "+token)
	status, _, resp := invCall(tb, req)
	up, ok := s.up.reached(id)
	s.statuses[status]++
	if ok {
		s.reached++
	}
	return status, resp, up, ok
}

// mint signs an access token as the server would, with any claims.
func (s *invSite) mint(sub, clientID, scope, patient string) string {
	return s.signer.mint(s.t, tokenSpec{sub: sub, clientID: clientID, scope: scope, patient: patient})
}

// guardRefused tells whether an answer is a refusal by the guard: the
// recording upstream answers only 200, 201 and 404.
func guardRefused(status int) bool {
	return status != http.StatusOK && status != http.StatusCreated && status != http.StatusNotFound
}

// jwtClaims decodes the claims of a JWT without checking it (the tests
// only read what the server put there).
func jwtClaims(tok string) map[string]any {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil
	}
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return m
}

// s256 is the PKCE S256 challenge of a verifier.
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// init turns rapid's fail files off by default: a fail file would replay
// on another run's universe.
func init() {
	// A fail file would replay on another run's universe: the two seeds
	// reproduce a failure instead (-rapid.nofailfile=false restores them).
	_ = flag.Set("rapid.nofailfile", "true")
}
