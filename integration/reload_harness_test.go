package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// reloads is how many times the reload test replaces the configuration.
const reloads = 20

// readerPause is the pause between two reads of the reader that uses a
// token from before the reloads; without it the reader, far cheaper than
// a grant, takes most of the CPU.
const readerPause = 2 * time.Millisecond

// reloadTarget is a Caddy process with an admin endpoint, and the
// configurations the test switches it between.
type reloadTarget struct {
	t       *testing.T
	name    string // for messages: "smart_auth" or "plain Caddy"
	base    string // http://localhost:port
	admin   string // http://localhost:adminport
	valid   [2][]byte
	markers [2]string // a text only the first, only the second valid configuration holds
	invalid []invalidConfig
	proc    *caddyProcess
}

// invalidConfig is a configuration /load must refuse, with a part of the
// error it must give.
type invalidConfig struct {
	what, want string
	js         []byte
}

// running checks through the admin API that the configuration running is
// valid[i].
//
// Caddy replaces its admin server with each configuration it loads, and
// shuts the old one down after /load has answered: a fresh connection made
// just then can be accepted by the old listener and reset. Only such a
// connection-level failure is retried, a few times; a wrong configuration
// is never retried.
func (r *reloadTarget) running(c *http.Client, i int) error {
	a := send(c, getRequest(r.admin+"/config/"))
	for try := 0; a.err != nil && try < 5; try++ {
		r.t.Logf("%s: GET /config/ got no answer (%v), the old admin server closing: trying again", r.name, a.err)
		time.Sleep(50 * time.Millisecond)
		a = send(c, getRequest(r.admin+"/config/"))
	}
	if a.err != nil || a.status != http.StatusOK || !bytes.Contains(a.body, []byte(r.markers[i])) || bytes.Contains(a.body, []byte(r.markers[1-i])) {
		return fmt.Errorf("GET /config/: %d %v: not the configuration with %q: %.300s", a.status, a.err, r.markers[i], a.body)
	}
	return nil
}

// loadConfig posts a JSON configuration to the admin API's /load.
func (r *reloadTarget) loadConfig(c *http.Client, js []byte) answer {
	req, _ := http.NewRequest(http.MethodPost, r.admin+"/load", bytes.NewReader(js))
	req.Header.Set("Content-Type", "application/json")
	return send(c, req)
}

// reloadStats counts what the load got while the configuration changed.
type reloadStats struct {
	mu        sync.Mutex
	ok        map[string]int // answers as expected, by kind of request
	transport []lostRequest  // requests that got no answer
	bad       []string       // answers with a status the request should not get
}

// lostRequest is a request of the load that got no answer.
type lostRequest struct {
	kind string
	a    answer
}

// String describes it.
func (l lostRequest) String() string { return fmt.Sprintf("%s (%s): %v", l.kind, l.a.method, l.a.err) }

// closedUnderfoot tells whether a request got no answer because the server
// closed its connection as the request went out: what Go's
// http.Server.Shutdown does to idle connections when Caddy swaps a
// configuration. Go's client retries such requests once itself when they
// are idempotent (GET), but the retry can meet the same closing server:
// plain Caddy, without smart_auth, loses GETs that way too (seen in CI).
// A handler's panic would also end in EOF; reloadUnderLoad tells the two
// apart by the Caddy log, which names every panic.
func (l lostRequest) closedUnderfoot() bool {
	err := l.a.err
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || strings.Contains(err.Error(), "server closed idle connection")
}

// expect records an answer of a kind of request; it tells whether the
// answer had the wanted status.
func (st *reloadStats) expect(kind string, a answer, want int) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	switch {
	case a.err != nil:
		st.transport = append(st.transport, lostRequest{kind: kind, a: a})
		return false
	case a.status != want:
		st.bad = append(st.bad, fmt.Sprintf("%s: %d %.300s", kind, a.status, a.body))
		return false
	}
	st.ok[kind]++
	return true
}

// String sums the counts up: answers by kind of request, then requests
// without an answer by kind and by error.
func (st *reloadStats) String() string {
	count := func(m map[string]int) string {
		parts := make([]string, 0, len(m))
		for k, n := range m {
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
		slices.Sort(parts)
		return strings.Join(parts, ", ")
	}
	byKind, byError := map[string]int{}, map[string]int{}
	for _, l := range st.transport {
		byKind[l.kind]++
		e := l.a.err.Error()
		byError[e[strings.LastIndex(e, ": ")+2:]]++
	}
	return fmt.Sprintf("answered as expected: %s; with an unexpected status: %d; without an answer: %d (%s; %s)",
		count(st.ok), len(st.bad), len(st.transport), count(byKind), count(byError))
}

// reloadUnderLoad runs workers (each called in a loop until the end)
// while it replaces the target's configuration reloads times, alternating
// between the two valid ones, then tries each invalid one, which must be
// refused; the load goes on a little after that.
func reloadUnderLoad(t *testing.T, r *reloadTarget, workers ...func(st *reloadStats)) *reloadStats {
	t.Helper()
	st := &reloadStats{ok: map[string]int{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				w(st)
			}
		})
	}
	// Caddy restarts its admin endpoint with each new configuration: a
	// fresh connection for each admin request.
	admin := &http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}
	pause := func() { time.Sleep(time.Duration(100+rand.IntN(100)) * time.Millisecond) }
	pause()
	for i := range reloads {
		if a := r.loadConfig(admin, r.valid[(i+1)%2]); a.err != nil || a.status != http.StatusOK {
			t.Errorf("%s: reload %d: %d %v %s", r.name, i+1, a.status, a.err, a.body)
		}
		if err := r.running(admin, (i+1)%2); err != nil {
			t.Errorf("%s: after reload %d: %v", r.name, i+1, err)
		}
		pause()
	}
	for _, bad := range r.invalid {
		a := r.loadConfig(admin, bad.js)
		var reply struct {
			Error string `json:"error"`
		}
		if a.err != nil || a.status != http.StatusBadRequest || json.Unmarshal(a.body, &reply) != nil || !strings.Contains(reply.Error, bad.want) {
			t.Errorf("%s: loading a configuration with %s: %d %v %s, want 400 and an error with %q", r.name, bad.what, a.status, a.err, a.body, bad.want)
		} else {
			t.Logf("%s: a configuration with %s is refused: %d …%s", r.name, bad.what, a.status, reply.Error[max(0, len(reply.Error)-160):])
		}
		if err := r.running(admin, reloads%2); err != nil {
			t.Errorf("%s: after the configuration with %s: %v", r.name, bad.what, err)
		}
		pause()
	}
	pause()
	close(stop)
	wg.Wait()
	for i, b := range st.bad {
		if i == 20 {
			t.Errorf("%s: %d more answers with an unexpected status", r.name, len(st.bad)-20)
			break
		}
		t.Errorf("%s: an unexpected status under reloads: %s", r.name, b)
	}
	for _, l := range st.transport {
		if !l.closedUnderfoot() {
			t.Errorf("%s: a request got no answer, and not because its kept-alive connection was closed: %s", r.name, l)
		}
	}
	if log, err := os.ReadFile(r.proc.logPath); err != nil {
		t.Errorf("%s: reading the Caddy log: %v", r.name, err)
	} else if bytes.Contains(bytes.ToLower(log), []byte("panic")) {
		t.Errorf("%s: the Caddy log names a panic under the reloads:\n%s", r.name, logTail(r.proc.logPath, 40))
	}
	return st
}

// sortedCopy returns a sorted copy of a list.
func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// getRequest builds a GET request (of a URL the test made, which parses).
func getRequest(u string) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return req
}

// plainReload is a Caddy without smart_auth under the same reloads.
type plainReload struct {
	reloadTarget
	c *http.Client
}

// startPlainReload starts a Caddy that answers the load's requests with
// respond alone; its two configurations differ in the FHIR answer's text.
func startPlainReload(t *testing.T) *plainReload {
	t.Helper()
	dir := t.TempDir()
	port, adminPort := freePort(t), freePort(t)
	p := &plainReload{c: loadClient()}
	p.reloadTarget = reloadTarget{t: t, name: "plain Caddy", base: fmt.Sprintf("http://localhost:%d", port),
		admin: fmt.Sprintf("http://localhost:%d", adminPort)}
	caddyfiles := [2]string{}
	p.markers = [2]string{"plain A", "plain B"}
	for i, text := range p.markers {
		caddyfiles[i] = fmt.Sprintf(`{
	admin localhost:%d
	persist_config off
	auto_https off
}

http://localhost:%d {
	respond /auth/token `+"`"+`{"access_token":"plain"}`+"`"+` 200
	respond /auth/authorize 303
	respond /fhir/* %q 200
}
`, adminPort, port, text)
		p.valid[i] = adapt(t, caddyfiles[i])
	}
	p.invalid = []invalidConfig{{"an unknown handler", "http.handlers.no_such_handler",
		bytes.Replace(p.valid[0], []byte(`"handler":"static_response"`), []byte(`"handler":"no_such_handler"`), 1)}}
	path := filepath.Join(dir, "Caddyfile")
	writeCaddyfile(t, path, caddyfiles[0])
	p.proc = startCaddyProcess(t, path, filepath.Join(dir, "caddy.log"))
	p.proc.waitReady(p.base + "/fhir/metadata")
	return p
}

// plainTokenRequest is a token request of the same shape as the smart_auth
// side's, to a respond handler.
func plainTokenRequest(base string) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, base+"/auth/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Patient.rs"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

// plainBackend mirrors smartReload.backendWorker against plain Caddy.
func plainBackend(st *reloadStats, c *http.Client, base string) {
	if st.expect("client_credentials", send(c, plainTokenRequest(base)), http.StatusOK) {
		req, _ := http.NewRequest(http.MethodGet, base+"/fhir/Patient/reload", nil)
		req.Header.Set("Authorization", "Bearer plain")
		st.expect("FHIR read with a new token", send(c, req), http.StatusOK)
	}
}
