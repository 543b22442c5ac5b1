package integration

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"
)

// crashRounds is how many times the crash test kills Caddy under load.
const crashRounds = 6

// Load of one round of the crash test: workers of each kind, and the
// refresh-token families a round revokes.
const (
	crashRotators     = 4
	crashRegistrars   = 2
	crashBackends     = 2
	crashRevokePool   = 40
	crashMinKillAfter = 300 * time.Millisecond
	crashMaxKillAfter = 1300 * time.Millisecond
)

// crashSite is the Caddy process of the crash test and what the test
// holds of it across restarts.
type crashSite struct {
	t         *testing.T
	dir       string // the test's directory: Caddyfile and logs
	base      string // http://localhost:port
	caddyfile string // its path
	redirect  string
	keys      backendKeys
	env       []string
	c         *http.Client
	browser   *browser // signed in as alice; keeps its session across restarts
	kids      []string // the JWK Set's key ids at the first start
	proc      *caddyProcess
	starts    int
}

// issuer is the authorization server's URL.
func (s *crashSite) issuer() string { return s.base + "/auth" }

// newCrashSite writes the Caddyfile of the crash test: open registration,
// a confidential app that refreshes and revokes, a backend service with
// private_key_jwt, a user with a cheap bcrypt hash and remembered consent
// (so that a new refresh-token family costs two requests), and a trivial
// FHIR upstream. Registration is open and counted per client address;
// the test's requests come through a trusted proxy (127.0.0.1) that names
// a different address for each, so that the limit never applies. options
// are further lines of the smart_auth block (refresh_grace_period 1m).
func newCrashSite(t *testing.T, options ...string) *crashSite {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("alice-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	s := &crashSite{
		t:        t,
		dir:      t.TempDir(),
		base:     fmt.Sprintf("http://localhost:%d", port),
		redirect: "http://localhost:9/callback",
		keys:     newBackendKeys(t),
		env:      []string{"SMARTAUTH_TEST_CONF_SECRET=" + confSecret},
		c:        loadClient(),
		browser:  newBrowser(t),
	}
	s.caddyfile = filepath.Join(s.dir, "Caddyfile")
	writeCaddyfile(t, s.caddyfile, fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
	servers {
		trusted_proxies static 127.0.0.1/32 ::1/128
	}
}

http://localhost:%[1]d {
	smart_auth {
		issuer http://localhost:%[1]d/auth
		fhir_base http://localhost:%[1]d/fhir
		storage %[2]s
		remember_consent 1h
		registration open
		client crash-app {
			secret {env.SMARTAUTH_TEST_CONF_SECRET}
			redirect_uri %[3]s
		}
		client crash-backend {
			jwks `+"`%[4]s`"+`
			scopes system/*.rs
		}
		user alice {
			password_hash %[5]s
			fhir_user Practitioner/dr-alice
		}
		%[6]s
	}
	respond /fhir/* "upstream" 200
}
`, port, filepath.Join(s.dir, "storage"), s.redirect, s.keys.jwks(t), hash, strings.Join(options, "\n")))
	return s
}

// start runs Caddy on the site's storage and waits until it answers.
func (s *crashSite) start() {
	s.t.Helper()
	s.starts++
	s.proc = startCaddyProcess(s.t, s.caddyfile, filepath.Join(s.dir, fmt.Sprintf("caddy-%d.log", s.starts)), s.env...)
	s.proc.waitReady(s.issuer() + "/jwks")
	kids := jwksKIDs(s.t, s.issuer()+"/jwks")
	slices.Sort(kids)
	switch {
	case s.kids == nil:
		s.kids = kids
	case !slices.Equal(kids, s.kids):
		s.t.Errorf("start %d: the signing keys changed: %v, first %v", s.starts, kids, s.kids)
	}
}

// post builds a form POST to an endpoint of the issuer; the app's
// credentials go in HTTP Basic when basic is set.
func (s *crashSite) post(endpoint string, form url.Values, basic bool) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, s.issuer()+endpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic {
		req.SetBasicAuth("crash-app", confSecret)
	}
	return req
}

// refreshFamily is one authorization of the app: the tokens of a chain of
// refresh-token rotations as the app saw them.
type refreshFamily struct {
	access  string   // the access token of the code exchange
	current string   // the newest refresh token the app was given
	spent   []string // refresh tokens the app presented and got a successor for
	checked int      // spent[:checked] were found refused after a restart
	// lost: current was presented and the answer never came, so the
	// app does not know whether current is used up.
	lost bool
}

// newFamily completes the authorization code flow for the app (signing
// in on first use; then the session and the remembered consent skip every
// page) and exchanges the code.
func (s *crashSite) newFamily() *refreshFamily {
	s.t.Helper()
	cfg := &oauth2.Config{ClientID: "crash-app", RedirectURL: s.redirect, Scopes: []string{"offline_access"},
		Endpoint: oauth2.Endpoint{AuthURL: s.issuer() + "/authorize"}}
	verifier := oauth2.GenerateVerifier()
	q := s.browser.run(cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", s.base+"/fhir")), s.redirect)
	a := send(s.c, s.post("/token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {s.redirect}, "code_verifier": {verifier}}, true))
	tok := tokenAnswer(a)
	if a.err != nil || a.status != http.StatusOK || tok.Refresh == "" || tok.Access == "" {
		s.t.Fatalf("code exchange: %d %v %.200s", a.status, a.err, a.body)
	}
	return &refreshFamily{access: tok.Access, current: tok.Refresh}
}

// tokenReply is the part of a token response the test reads.
type tokenReply struct {
	Access  string `json:"access_token"`
	Refresh string `json:"refresh_token"`
	Error   string `json:"error"`
	Desc    string `json:"error_description"`
}

// tokenAnswer decodes a token endpoint answer (zero for a non-JSON one).
func tokenAnswer(a answer) tokenReply {
	var r tokenReply
	_ = json.Unmarshal(a.body, &r)
	return r
}

// registered is a client registered at the registration endpoint, with
// its newest registration access token.
type registered struct {
	id, rat string
}

// assertionUse is a client assertion the token endpoint answered, with
// the access token it got.
type assertionUse struct {
	assertion, access string
}

// crashRound is what one round's load did, as the client saw it.
type crashRound struct {
	mu          sync.Mutex
	killedAfter time.Duration
	registered  []registered
	regLost     int
	rotations   int              // rotations answered with a successor
	rotating    []*refreshFamily // the families the rotators worked on
	ccUsed      []assertionUse
	ccLost      []string // assertions whose answer was lost
	revoked     []*refreshFamily
	revLost     []*refreshFamily
	revUntried  []*refreshFamily // the pool's families never sent to /revoke
	notSent     int              // requests refused at connect: never received
	problems    []string         // answers the test did not expect
}

// note records the outcome of a request that got no answer: never sent
// (the server was already gone) or lost (sent; the answer never came).
func (r *crashRound) note(a answer, lost func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a.notSent() {
		r.notSent++
		return
	}
	lost()
}

// problem records an answer the test did not expect.
func (r *crashRound) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// rotator rotates one family's refresh token until a request goes
// unanswered.
func (s *crashSite) rotator(r *crashRound, f *refreshFamily) {
	for {
		a := send(s.c, s.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {f.current}}, true))
		if a.err != nil {
			r.note(a, func() { f.lost = true })
			return
		}
		tok := tokenAnswer(a)
		if a.status != http.StatusOK || tok.Refresh == "" {
			r.problem("refresh: %d %.200s", a.status, a.body)
			return
		}
		r.mu.Lock()
		f.spent = append(f.spent, f.current)
		f.current = tok.Refresh
		r.rotations++
		r.mu.Unlock()
	}
}

// registrar registers clients until a request goes unanswered.
func (s *crashSite) registrar(r *crashRound) {
	for {
		req, _ := http.NewRequest(http.MethodPost, s.issuer()+"/register",
			strings.NewReader(`{"client_name":"crash","redirect_uris":["`+s.redirect+`"]}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.%d.%d.%d", rand.IntN(256), rand.IntN(256), 1+rand.IntN(254)))
		a := send(s.c, req)
		if a.err != nil {
			r.note(a, func() { r.regLost++ })
			return
		}
		var reg struct {
			ID  string `json:"client_id"`
			RAT string `json:"registration_access_token"`
		}
		if a.status != http.StatusCreated || json.Unmarshal(a.body, &reg) != nil || reg.ID == "" || reg.RAT == "" {
			r.problem("register: %d %.200s", a.status, a.body)
			return
		}
		r.mu.Lock()
		r.registered = append(r.registered, registered{id: reg.ID, rat: reg.RAT})
		r.mu.Unlock()
	}
}

// backend runs client_credentials with a fresh jti each time until a
// request goes unanswered.
func (s *crashSite) backend(r *crashRound) {
	for {
		assertion, err := loadAssertion(s.keys, "crash-backend", s.issuer()+"/token", newJTI())
		if err != nil {
			r.problem("signing an assertion: %v", err)
			return
		}
		a := send(s.c, s.post("/token", ccForm(assertion, "system/Patient.rs"), false))
		if a.err != nil {
			r.note(a, func() { r.ccLost = append(r.ccLost, assertion) })
			return
		}
		tok := tokenAnswer(a)
		if a.status != http.StatusOK || tok.Access == "" {
			r.problem("client_credentials: %d %.200s", a.status, a.body)
			return
		}
		r.mu.Lock()
		r.ccUsed = append(r.ccUsed, assertionUse{assertion: assertion, access: tok.Access})
		r.mu.Unlock()
	}
}

// revoker revokes the refresh tokens of the pool's families one by one,
// with short random pauses so that revocations go on until the kill.
func (s *crashSite) revoker(r *crashRound, pool []*refreshFamily) {
	for i, f := range pool {
		time.Sleep(time.Duration(5+rand.IntN(25)) * time.Millisecond)
		a := send(s.c, s.post("/revoke", url.Values{"token": {f.current}, "token_type_hint": {"refresh_token"}}, true))
		if a.err != nil {
			r.mu.Lock()
			defer r.mu.Unlock()
			if a.notSent() {
				r.notSent++
				r.revUntried = append(r.revUntried, pool[i:]...)
			} else {
				r.revLost = append(r.revLost, f)
				r.revUntried = append(r.revUntried, pool[i+1:]...)
			}
			return
		}
		if a.status != http.StatusOK {
			r.problem("revoke: %d %.200s", a.status, a.body)
			return
		}
		r.mu.Lock()
		r.revoked = append(r.revoked, f)
		r.mu.Unlock()
	}
}

// runRound starts the load on the running process, kills the process
// with SIGKILL after killAfter, and waits for every worker to stop.
func (s *crashSite) runRound(rotating, pool []*refreshFamily, killAfter time.Duration) *crashRound {
	s.t.Helper()
	r := &crashRound{killedAfter: killAfter, rotating: rotating}
	var wg sync.WaitGroup
	for _, f := range rotating {
		wg.Go(func() { s.rotator(r, f) })
	}
	for range crashRegistrars {
		wg.Go(func() { s.registrar(r) })
	}
	for range crashBackends {
		wg.Go(func() { s.backend(r) })
	}
	wg.Go(func() { s.revoker(r, pool) })
	time.Sleep(killAfter)
	s.proc.kill()
	wg.Wait()
	for _, p := range r.problems {
		s.t.Errorf("round under load: %s", p)
	}
	return r
}

// TestCrashDurability kills a Caddy process with SIGKILL at random moments
// under a mixed load of registrations, refresh-token rotations,
// client_credentials grants and revocations, restarts it on the same
// storage each time, and checks that every write whose answer the client
// received survived. Writes whose answer was lost may have happened or
// not; the test counts them and checks that they left nothing broken.
func TestCrashDurability(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("SMARTAUTH_CRASH_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("SMARTAUTH_CRASH_SEED: %v", err)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("kill times seeded with %d (SMARTAUTH_CRASH_SEED=%[1]d repeats them)", seed)
	s := newCrashSite(t)
	var (
		all      []registered
		revoked  []*refreshFamily
		rotating []*refreshFamily
		prev     *crashRound
		total    crashTotals
	)
	for round := 1; round <= crashRounds+1; round++ {
		s.start()
		if prev != nil {
			out := s.verifyRound(prev)
			total.add(prev, out)
			t.Logf("round %d: killed %s into the load; %s", round-1, prev.killedAfter.Round(time.Millisecond), describeRound(prev, out))
			all = append(all, prev.registered...)
			revoked = append(revoked, prev.revoked...)
			rotating = out.live
		}
		if t.Failed() {
			return
		}
		if round > crashRounds {
			break
		}
		for len(rotating) < crashRotators {
			rotating = append(rotating, s.newFamily())
		}
		pool := make([]*refreshFamily, crashRevokePool)
		for i := range pool {
			pool[i] = s.newFamily()
		}
		killAfter := crashMinKillAfter + time.Duration(rng.Int64N(int64(crashMaxKillAfter-crashMinKillAfter)))
		prev = s.runRound(rotating, pool, killAfter)
	}
	t.Logf("total over %d kills: %s", crashRounds, total)
	s.finalChecks(all, revoked, rotating)
	s.proc.stop()
}
