package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"

	"golang.org/x/oauth2"

	"github.com/smartcaddy/smartauth/store"
)

// Concurrent redemptions of one single-use credential (issue 10 §3): of
// raceWidth simultaneous requests exactly one wins, every other one gets
// the OAuth error a replay deserves, and none gets a 5xx. Each race runs
// raceRounds times on a fresh credential.
const (
	raceWidth  = 50
	raceRounds = 5
)

// raceAnswer is one answer of a race: the status and, for a JSON body,
// its error code.
type raceAnswer struct {
	status int
	code   string
	body   map[string]any
	err    error
}

// raceTransport keeps enough connections open for a whole race.
var raceClient = &http.Client{
	Transport: &http.Transport{MaxIdleConnsPerHost: raceWidth, MaxConnsPerHost: raceWidth},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// race sends raceWidth requests made by mk, all released at the same
// moment, and returns their answers in request order. It never calls
// t.Fatal from a request goroutine.
func race(mk func() (*http.Request, error)) []raceAnswer {
	out := make([]raceAnswer, raceWidth)
	reqs := make([]*http.Request, raceWidth)
	for i := range reqs {
		r, err := mk()
		if err != nil {
			out[i].err = err
		}
		reqs[i] = r
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, r := range reqs {
		if r == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, err := raceClient.Do(r)
			if err != nil {
				out[i].err = err
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			out[i].status = resp.StatusCode
			if len(b) > 0 {
				_ = json.Unmarshal(b, &out[i].body)
				out[i].code, _ = out[i].body["error"].(string)
			}
		}()
	}
	close(start)
	wg.Wait()
	return out
}

// tally counts the answers by "status error".
func tally(answers []raceAnswer) map[string]int {
	m := map[string]int{}
	for _, a := range answers {
		k := fmt.Sprintf("%d %s", a.status, a.code)
		if a.err != nil {
			k = "transport error: " + a.err.Error()
		}
		m[strings.TrimSpace(k)]++
	}
	return m
}

// formatTally prints a tally in a stable order.
func formatTally(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// oneWinner checks a race: exactly one answer with status win, every
// other one status lose with OAuth error code, no 5xx. It returns the
// winning answer and the number of 5xx answers.
func oneWinner(t *testing.T, name string, answers []raceAnswer, win, lose int, code string) (raceAnswer, int) {
	t.Helper()
	var winner raceAnswer
	wins, fives := 0, 0
	for _, a := range answers {
		switch {
		case a.err != nil:
			t.Errorf("%s: transport error %v", name, a.err)
		case a.status >= 500:
			fives++
		case a.status == win:
			wins++
			winner = a
		case a.status != lose || a.code != code:
			t.Errorf("%s: answer %d %v, want %d %s", name, a.status, a.body, lose, code)
		}
	}
	if wins != 1 || fives != 0 {
		t.Errorf("%s: %d winners and %d 5xx of %d (%s)", name, wins, fives, len(answers), formatTally(tally(answers)))
	}
	return winner, fives
}

// raceExtra is the race site's configuration besides the flow site's: a
// backend client with an inline JWK Set and open registration.
func raceExtra(k backendKeys, t *testing.T) string {
	return fmt.Sprintf("registration open\nclient race-backend {\n jwks `%s`\n scopes system/*.rs\n}", k.jwks(t))
}

// formPost builds a form POST.
func formPost(u string, form url.Values) (*http.Request, error) {
	r, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err == nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return r, err
}

// authCode runs the standalone launch for public-app with offline_access
// and returns a fresh code and its verifier.
func authCode(t *testing.T, s flowSite) (code, verifier string) {
	t.Helper()
	cfg := s.oauth("public-app", "", "launch/patient", "patient/*.rs", "offline_access")
	verifier = oauth2.GenerateVerifier()
	q := newBrowser(t).run(cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", s.fhirBase())), s.redirect)
	if q.Get("code") == "" {
		t.Fatalf("no code: %v", q)
	}
	return q.Get("code"), verifier
}

// userinfoStatus is the userinfo endpoint's status for an access token.
func userinfoStatus(t *testing.T, s flowSite, access string) int {
	t.Helper()
	resp, _ := fetch(t, "GET", s.issuer()+"/userinfo", http.Header{"Authorization": {"Bearer " + access}})
	return resp.StatusCode
}

func TestConcurrentReplays(t *testing.T) {
	k := newBackendKeys(t)
	s := startFlowSite(t, raceExtra(k, t))
	tokenURL := s.issuer() + "/token"
	total5xx := map[string]int{}
	// Each race logs the store's conflict retries it caused; none may
	// give up.
	measure := func(t *testing.T) {
		before := storeConflicts(t, s.storage)
		t.Cleanup(func() {
			after := storeConflicts(t, s.storage)
			t.Logf("%s: store: %d conflicts retried, most attempts by one operation so far %d, %d gave up",
				t.Name(), after.Conflicts-before.Conflicts, after.MaxAttempts, after.GaveUp-before.GaveUp)
			if after.GaveUp != before.GaveUp {
				t.Error("a store operation gave up on conflicts")
			}
		})
	}

	t.Run("authorization code", func(t *testing.T) {
		measure(t)
		for round := range raceRounds {
			code, verifier := authCode(t, s)
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {s.redirect},
				"client_id": {"public-app"}, "code_verifier": {verifier}}
			answers := race(func() (*http.Request, error) { return formPost(tokenURL, form) })
			w, fives := oneWinner(t, fmt.Sprintf("round %d", round), answers, 200, 400, "invalid_grant")
			total5xx["code"] += fives
			// The replays revoked what the winner got.
			if access, _ := w.body["access_token"].(string); access != "" {
				if st := userinfoStatus(t, s, access); st != 401 {
					t.Errorf("round %d: the winner's access token still works after replays: %d", round, st)
				}
			}
			if rt, _ := w.body["refresh_token"].(string); rt != "" {
				if r := refresh(t, s, rt, "public-app"); r["error"] != "invalid_grant" {
					t.Errorf("round %d: the winner's refresh token still works after replays: %v", round, r)
				}
			}
		}
	})

	t.Run("refresh token", func(t *testing.T) {
		measure(t)
		for round := range raceRounds {
			access, rt := codeFlowTokens(t, s)
			form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"public-app"}}
			answers := race(func() (*http.Request, error) { return formPost(tokenURL, form) })
			w, fives := oneWinner(t, fmt.Sprintf("round %d", round), answers, 200, 400, "invalid_grant")
			total5xx["refresh"] += fives
			// Strict rotation: every loser reused a rotated token, so
			// the family is revoked, the winner's tokens included.
			for name, tok := range map[string]string{"first": access, "winner's": str(w.body, "access_token")} {
				if tok != "" && userinfoStatus(t, s, tok) != 401 {
					t.Errorf("round %d: the %s access token survived the reuse", round, name)
				}
			}
			if next := str(w.body, "refresh_token"); next != "" {
				if r := refresh(t, s, next, "public-app"); r["error"] != "invalid_grant" {
					t.Errorf("round %d: the winner's refresh token survived the reuse: %v", round, r)
				}
			}
		}
	})

	t.Run("client assertion jti", func(t *testing.T) {
		measure(t)
		for round := range raceRounds {
			assertion := k.assertion(t, "ES384", "race-backend", tokenURL, nil, nil)
			form := ccForm(assertion, "system/Patient.rs")
			answers := race(func() (*http.Request, error) { return formPost(tokenURL, form) })
			_, fives := oneWinner(t, fmt.Sprintf("round %d", round), answers, 200, 401, "invalid_client")
			total5xx["jti"] += fives
		}
	})

	// RFC 7592: GET and PUT replace the registration access token, DELETE
	// removes the client. Of concurrent requests with one token exactly
	// one may act: the others hold a token that no longer opens the
	// client, and get 401 invalid_token.
	register := func(t *testing.T) (id, uri, rat string) {
		t.Helper()
		status, _, reg := dcr{t: t, s: s}.call(http.MethodPost, s.issuer()+"/register", "", map[string]any{
			"redirect_uris": []string{s.redirect}, "token_endpoint_auth_method": "none"})
		if status != 201 {
			t.Fatalf("register: %d %v", status, reg)
		}
		return str(reg, "client_id"), str(reg, "registration_client_uri"), str(reg, "registration_access_token")
	}
	bearer := func(method, u, rat, body string) func() (*http.Request, error) {
		return func() (*http.Request, error) {
			r, err := http.NewRequest(method, u, strings.NewReader(body))
			if err == nil {
				r.Header.Set("Authorization", "Bearer "+rat)
				if body != "" {
					r.Header.Set("Content-Type", "application/json")
				}
			}
			return r, err
		}
	}
	t.Run("registration access token: PUT", func(t *testing.T) {
		measure(t)
		for round := range raceRounds {
			id, uri, rat := register(t)
			body := fmt.Sprintf(`{"client_id":%q,"client_name":"renamed","redirect_uris":[%q],"token_endpoint_auth_method":"none"}`, id, s.redirect)
			answers := race(bearer(http.MethodPut, uri, rat, body))
			w, fives := oneWinner(t, fmt.Sprintf("round %d", round), answers, 200, 401, "invalid_token")
			total5xx["registration PUT"] += fives
			// Only the winner's new token opens the client.
			if next := str(w.body, "registration_access_token"); next != "" {
				if status, _, got := (dcr{t: t, s: s}).call(http.MethodGet, uri, next, nil); status != 200 || got["client_name"] != "renamed" {
					t.Errorf("round %d: read with the winner's token: %d %v", round, status, got)
				}
			}
		}
	})
	t.Run("registration access token: DELETE", func(t *testing.T) {
		measure(t)
		for round := range raceRounds {
			id, uri, rat := register(t)
			answers := race(bearer(http.MethodDelete, uri, rat, ""))
			// 204 has no body: the winner's code is "".
			_, fives := oneWinner(t, fmt.Sprintf("round %d", round), answers, 204, 401, "invalid_token")
			total5xx["registration DELETE"] += fives
			if status, _, _ := (dcr{t: t, s: s}).call(http.MethodGet, s.issuer()+"/register/"+id, rat, nil); status != 401 {
				t.Errorf("round %d: the deleted client is still readable: %d", round, status)
			}
		}
	})
	t.Logf("5xx answers per race (%d rounds of %d): %v", raceRounds, raceWidth, total5xx)
}

// storeConflicts reads the conflict counters of the store a running site
// holds.
func storeConflicts(t *testing.T, dir string) (s store.ConflictStats) {
	t.Helper()
	withStore(t, dir, func(db *store.DB) { s = db.ConflictStats() })
	return s
}

// str reads a string member of a decoded JSON object.
func str(m map[string]any, k string) string { v, _ := m[k].(string); return v }
