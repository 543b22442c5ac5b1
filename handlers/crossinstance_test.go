package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/smartcaddy/smartauth/handlers"
	"github.com/smartcaddy/smartauth/internal/pgtest"
	"github.com/smartcaddy/smartauth/store"
	"github.com/smartcaddy/smartauth/store/postgres"
)

// cluster is two instances of one authorization server (two
// handlers.Servers, each with its own key ring and store handle on the
// same database) behind a round-robin balancer: each request goes to the
// instance that did not answer the one before. served records which
// instance answered what.
//
// With restart set, the instance is made anew for every request, after
// the previous one was closed: no memory of the process (the router's
// reload-surviving state included) carries a request from one step to
// the next, only the store and what the browser holds.
type cluster struct {
	env *flowEnv
	mu  sync.Mutex
	// served lists "instance method path" per request, in order.
	served []string
	turn   int
}

// newCluster serves two instances over the stores open gives (one handle
// each, both on the same database), at one issuer.
func newCluster(t *testing.T, open func(t *testing.T) store.Store, restart bool) *cluster {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	base := "http://" + ts.Listener.Addr().String()
	dbs := [2]store.Store{open(t), open(t)}
	var instances [2]*handlers.Server
	start := func(i int) *handlers.Server {
		s, err := handlers.New(newFlowConfig(t, dbs[i], base))
		if err != nil {
			t.Error(err)
			return nil
		}
		return s
	}
	if !restart {
		for i := range instances {
			instances[i] = start(i)
			t.Cleanup(func() { _ = instances[i].Close() })
		}
	}
	c := &cluster{}
	var prev *handlers.Server
	ts.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		i := c.turn % 2
		c.turn++
		c.served = append(c.served, string(rune('A'+i))+" "+r.Method+" "+r.URL.Path)
		s := instances[i]
		if restart {
			if prev != nil {
				_ = prev.Close()
			}
			if s = start(i); s == nil {
				http.Error(w, "instance did not start", http.StatusInternalServerError)
				return
			}
			prev = s
		}
		_ = s.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
	})
	ts.Start()
	t.Cleanup(ts.Close)
	t.Cleanup(func() {
		if prev != nil {
			_ = prev.Close()
		}
	})
	c.env = &flowEnv{t: t, ts: ts, issuer: base + "/auth", fhirBase: base + "/fhir"}
	return c
}

// last returns the record of the latest request.
func (c *cluster) last() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.served[len(c.served)-1]
}

// badgerStores opens one Badger store that both instances share (one
// process may hold a Badger directory).
func badgerStores(t *testing.T) func(*testing.T) store.Store {
	db, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return func(*testing.T) store.Store { return db }
}

// postgresStores gives each instance its own connection pool on one
// fresh PostgreSQL database.
func postgresStores(t *testing.T) func(*testing.T) store.Store {
	dsn := pgtest.DSN(t)
	return func(t *testing.T) store.Store {
		db, err := postgres.Open(context.Background(), dsn, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		return db
	}
}

// TestFlowAcrossInstances runs, on Badger and on PostgreSQL, a standalone
// launch whose every request lands on the other instance than the one
// before (authorize, sign-in page, sign-in, picker, choice, consent page,
// consent, token), then replays the consent: refused, no second code.
// Then an EHR launch created on one instance is completed on the other.
// Both run with two live instances, and with an instance restarted for
// every request (which no state kept in the process survives).
func TestFlowAcrossInstances(t *testing.T) {
	for name, stores := range map[string]func(*testing.T) func(*testing.T) store.Store{
		"Badger": badgerStores, "PostgreSQL": postgresStores,
	} {
		for mode, restart := range map[string]bool{"TwoInstances": false, "RestartEveryRequest": true} {
			t.Run(name+"/"+mode, func(t *testing.T) {
				c := newCluster(t, stores(t), restart)
				t.Run("Standalone", func(t *testing.T) { standaloneAcross(t, c) })
				t.Run("EHRLaunch", func(t *testing.T) { ehrLaunchAcross(t, c) })
			})
		}
	}
}

// standaloneAcross is the standalone launch of TestFlowAcrossInstances.
func standaloneAcross(t *testing.T, c *cluster) {
	env := c.env
	b := env.browser()
	verifier, params := codeParams(env, "openid fhirUser launch/patient patient/Observation.rs")
	var steps []string
	step := func(p page) page {
		steps = append(steps, c.last())
		return p
	}
	p := step(b.get(env.authorizeURL(params)))
	p = step(b.follow(p))
	p = step(b.login(p, "alice", alicePassword))
	if !strings.HasPrefix(p.location, env.issuer+"/select-patient?") {
		t.Fatalf("after sign-in: want the picker, got %d %s %s", p.status, p.location, p.body)
	}
	p = step(b.follow(p))
	p = step(b.submit(onlyForm(t, p), func(v url.Values) { v.Set("patient", "pat2") }))
	if !strings.HasPrefix(p.location, env.issuer+"/consent?") {
		t.Fatalf("after the picker: want consent, got %d %s %s", p.status, p.location, p.body)
	}
	consent := onlyForm(t, step(b.follow(p)))
	q := appRedirectParams(t, step(b.submit(consent, func(v url.Values) { v.Set("decision", "allow") })), appRedirect)
	if q.Get("code") == "" || q.Get("state") != params.Get("state") {
		t.Fatalf("consent: %v", q)
	}
	tok := step(exchange(t, env, q.Get("code"), verifier))
	if tok.status != http.StatusOK || !strings.Contains(tok.body, `"patient":"pat2"`) || !strings.Contains(tok.body, "access_token") {
		t.Fatalf("token: %d %s", tok.status, tok.body)
	}
	for i := 1; i < len(steps); i++ {
		if steps[i][0] == steps[i-1][0] {
			t.Fatalf("steps %d and %d on the same instance: %v", i-1, i, steps)
		}
	}

	// The request was used up with its code: posted again, on either
	// instance, it is expired and issues nothing.
	for range 2 {
		p = b.submit(consent, func(v url.Values) { v.Set("decision", "allow") })
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, "Request expired") || p.location != "" {
			t.Fatalf("the consent replayed on %s: %d %s %s", c.last(), p.status, p.location, p.body)
		}
	}
}

// ehrLaunchAcross is the EHR launch of TestFlowAcrossInstances: the
// launch made on one instance, the code issued on the other.
func ehrLaunchAcross(t *testing.T, c *cluster) {
	env := c.env
	status, out := env.createLaunch("ehr", ehrSecret, `{"patient":"pat1","encounter":"enc1","client_id":"app"}`)
	if status != http.StatusCreated {
		t.Fatalf("launch API: %d %v", status, out)
	}
	created := c.last()
	b := env.browser()
	verifier, params := codeParams(env, "launch openid fhirUser patient/*.rs")
	params.Set("launch", out["launch"].(string))
	p := b.login(b.follow(b.get(env.authorizeURL(params))), "alice", alicePassword)
	if !strings.HasPrefix(p.location, env.issuer+"/consent?") {
		t.Fatalf("after sign-in: want consent, got %d %s %s", p.status, p.location, p.body)
	}
	consent := onlyForm(t, b.follow(p))
	c.mu.Lock()
	next := c.turn % 2
	c.mu.Unlock()
	if next == int(created[0]-'A') { // the consent would go to the launch's instance
		_ = b.get(env.issuer + "/jwks")
	}
	q := appRedirectParams(t, b.submit(consent, func(v url.Values) { v.Set("decision", "allow") }), appRedirect)
	if completed := c.last(); completed[0] == created[0] {
		t.Fatalf("launch created (%s) and completed (%s) on the same instance", created, completed)
	}
	tok := exchange(t, env, q.Get("code"), verifier)
	if tok.status != http.StatusOK || !strings.Contains(tok.body, `"patient":"pat1"`) || !strings.Contains(tok.body, `"encounter":"enc1"`) {
		t.Fatalf("token: %d %s", tok.status, tok.body)
	}
}

// codeParams are the parameters of a standalone request of "app" with a
// PKCE verifier to redeem its code with.
func codeParams(env *flowEnv, scope string) (verifier string, v url.Values) {
	verifier, challenge := pkcePair()
	v = env.authParams(scope)
	v.Set("code_challenge", challenge)
	return verifier, v
}

// exchange redeems a code of "app" at the token endpoint.
func exchange(t *testing.T, env *flowEnv, code, verifier string) page {
	t.Helper()
	resp, err := http.PostForm(env.issuer+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {appRedirect}, "client_id": {"app"}, "code_verifier": {verifier}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("token response: %v", err)
	}
	return page{status: resp.StatusCode, header: resp.Header, body: string(body)}
}
