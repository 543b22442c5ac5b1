package integration

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/oauth2"
)

// The load of the failure tests (SIGKILL of an instance, PostgreSQL
// stopped): workers that repeat one kind of request on one instance until
// told to stop, recording what was answered.

// multiLoad is what the workers did, as the clients saw it.
type multiLoad struct {
	m    *instances
	stop atomic.Bool
	wg   sync.WaitGroup

	mu         sync.Mutex
	issued     [2][]string // access tokens each instance answered with
	registered []registered
	codes      []issuedCode
	families   []*multiFamily
	counts     map[string]int // answers by kind, instance and status, for the log
	problems   []string
}

// issuedCode is a code an instance answered with, not redeemed yet.
type issuedCode struct {
	code, verifier string
	by             int
}

// multiFamily is a refresh-token family as the app saw it.
type multiFamily struct {
	current string
	// lost: current was presented and no answer came, so whether it is
	// used up is unknown.
	lost bool
	// last is the answer to the family's latest request.
	last answer
}

// newLoad prepares the load of a pair.
func newLoad(m *instances) *multiLoad {
	return &multiLoad{m: m, counts: make(map[string]int)}
}

// count records one answer for the log.
func (l *multiLoad) count(kind string, i int, a answer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	status := fmt.Sprint(a.status)
	if a.err != nil {
		status = "no answer"
	}
	l.counts[fmt.Sprintf("%s on %s: %s", kind, instanceNames[i], status)]++
}

// problem records an answer the test did not expect.
func (l *multiLoad) problem(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.problems) < 50 {
		l.problems = append(l.problems, fmt.Sprintf(format, args...))
	}
}

// run starts n workers running fn(i) on instance i until stop is set or
// fn returns false.
func (l *multiLoad) run(n, i int, fn func(i int) bool) {
	for range n {
		l.wg.Go(func() {
			for !l.stop.Load() && fn(i) {
			}
		})
	}
}

// finish stops the workers and waits for them.
func (l *multiLoad) finish() {
	l.stop.Store(true)
	l.wg.Wait()
}

// newFamily signs the confidential app in on instance i with a browser
// whose consent is remembered, and returns the family of the code's
// refresh token and the code exchange's access token.
func (l *multiLoad) newFamily(b *browser, i int) (*multiFamily, string) {
	m := l.m
	m.t.Helper()
	code, verifier := m.codeFlow(b, i, multiScopes...)
	tok := m.mustTokens(m.exchange(i, code, verifier), true, "code exchange on "+instanceNames[i])
	f := &multiFamily{current: tok.Refresh}
	l.families = append(l.families, f)
	return f, tok.Access
}

// multiScopes are the scopes the confidential app asks for in the failure
// tests: no patient scope, so that no page asks for a patient once the
// consent is remembered; its access tokens are refused by the guard for
// pat-1 with insufficient_scope, after they verified.
var multiScopes = []string{"openid", "fhirUser", "offline_access"}

// authorizeOnce asks instance i for a code with the browser's session
// and remembered consent: a single redirect to the app.
func (m *instances) authorizeOnce(b *browser, i int) (issuedCode, answer) {
	cfg := &oauth2.Config{ClientID: "multi-conf", RedirectURL: m.redirect, Scopes: multiScopes,
		Endpoint: oauth2.Endpoint{AuthURL: m.base[i] + "/auth/authorize"}}
	verifier := oauth2.GenerateVerifier()
	req, _ := http.NewRequest(http.MethodGet, cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("aud", m.fhirBase())), nil)
	resp, err := b.c.Do(req)
	if err != nil {
		return issuedCode{}, answer{err: err}
	}
	resp.Body.Close()
	a := answer{method: http.MethodGet, status: resp.StatusCode, header: resp.Header}
	loc, _ := resp.Location()
	if loc == nil || !strings.HasPrefix(loc.String(), m.redirect) || loc.Query().Get("code") == "" {
		a.body = []byte(resp.Header.Get("Location"))
		return issuedCode{}, a
	}
	return issuedCode{code: loc.Query().Get("code"), verifier: verifier, by: i}, a
}

// rotate refreshes a family once on instance i; it returns false when
// the family can no longer be used by the load (no answer, or an
// unexpected one, recorded as a problem unless allowed says otherwise).
func (l *multiLoad) rotate(f *multiFamily, i int, allowed func(a answer) bool) bool {
	a := l.m.refresh(i, f.current)
	l.count("refresh", i, a)
	f.last = a
	if a.err != nil {
		// A request refused at connect never reached the server.
		f.lost = f.lost || !a.notSent()
		return false
	}
	tok := tokenAnswer(a)
	switch {
	case a.status == http.StatusOK && tok.Refresh != "" && tok.Access != "":
		l.mu.Lock()
		f.current = tok.Refresh
		l.issued[i] = append(l.issued[i], tok.Access)
		l.mu.Unlock()
		return true
	case allowed != nil && allowed(a):
		return true
	default:
		l.problem("refresh on %s: %d %.200s", instanceNames[i], a.status, a.body)
		return false
	}
}

// backend runs client_credentials once on instance i.
func (l *multiLoad) backend(i int, allowed func(a answer) bool) (string, bool) {
	tok, a := l.m.backendToken(i)
	l.count("client_credentials", i, a)
	switch {
	case a.err != nil:
		return "", false
	case a.status == http.StatusOK && tok != "":
		l.mu.Lock()
		l.issued[i] = append(l.issued[i], tok)
		l.mu.Unlock()
		return tok, true
	case allowed != nil && allowed(a):
		return "", true
	default:
		l.problem("client_credentials on %s: %d %.200s", instanceNames[i], a.status, a.body)
		return "", false
	}
}

// register registers a client on instance i, from an address of its own
// (through the trusted proxy header) so that the per-address limit never
// applies.
func (l *multiLoad) register(i int) bool {
	req, _ := http.NewRequest(http.MethodPost, l.m.base[i]+"/auth/register",
		strings.NewReader(`{"client_name":"multi","redirect_uris":["`+l.m.redirect+`"]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.%d.%d.%d", rand.IntN(256), rand.IntN(256), 1+rand.IntN(254)))
	a := send(l.m.c, req)
	l.count("register", i, a)
	if a.err != nil {
		return false
	}
	var reg struct {
		ID  string `json:"client_id"`
		RAT string `json:"registration_access_token"`
	}
	if a.status != http.StatusCreated || json.Unmarshal(a.body, &reg) != nil || reg.ID == "" || reg.RAT == "" {
		l.problem("register on %s: %d %.200s", instanceNames[i], a.status, a.body)
		return false
	}
	l.mu.Lock()
	l.registered = append(l.registered, registered{id: reg.ID, rat: reg.RAT})
	l.mu.Unlock()
	return true
}

// readRegistration reads a registered client on instance i with its
// registration access token (RFC 7592).
func (m *instances) readRegistration(i int, r registered) answer {
	req, _ := http.NewRequest(http.MethodGet, m.base[i]+"/auth/register/"+url.PathEscape(r.id), nil)
	req.Header.Set("Authorization", "Bearer "+r.rat)
	return send(m.c, req)
}

// verifiedBy tells whether instance i's guard took an access token as
// valid: pat-1's record (a backend token), or a refusal for scope only (a
// token of the app, which has no patient scope).
func (m *instances) verifiedBy(i int, access string) (bool, answer) {
	a := m.read(i, access)
	ok := a.err == nil && (a.status == http.StatusOK ||
		a.status == http.StatusForbidden && strings.Contains(a.header.Get("WWW-Authenticate"), "insufficient_scope"))
	return ok, a
}

// logCounts logs the answers by kind.
func (l *multiLoad) logCounts(t *testing.T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("answers: %v", l.counts)
}
