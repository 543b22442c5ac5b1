package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// The crash and reload tests run Caddy as a separate process, built from
// ../cmd/caddy, so that it can be killed with SIGKILL and reconfigured
// through its admin API without touching the in-process Caddy of the other
// tests.

// caddyBuild is the one build of ../cmd/caddy of this test process.
var caddyBuild struct {
	once sync.Once
	path string
	err  error
	took time.Duration // how long the build took, logged by the test that built it
}

// startEnv is the XDG part of the environment as the test process
// started, before TestMain pointed it into a temporary directory: the go
// command finds its build cache (XDG_CACHE_HOME) and its configuration
// (XDG_CONFIG_HOME) there. Package variables are set before TestMain runs.
var startEnv = map[string]*string{
	"XDG_CACHE_HOME":  lookupEnv("XDG_CACHE_HOME"),
	"XDG_CONFIG_HOME": lookupEnv("XDG_CONFIG_HOME"),
	"XDG_DATA_HOME":   lookupEnv("XDG_DATA_HOME"),
}

// lookupEnv returns a variable's value, nil when it is unset.
func lookupEnv(name string) *string {
	if v, ok := os.LookupEnv(name); ok {
		return &v
	}
	return nil
}

// goBuildEnv is the test's environment with the XDG variables as they were
// when the test process started, so that the go command it runs uses the
// usual build cache instead of an empty one.
func goBuildEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if _, ok := startEnv[name]; !ok {
			env = append(env, kv)
		}
	}
	for name, v := range startEnv {
		if v != nil {
			env = append(env, name+"="+*v)
		}
	}
	return env
}

// caddyBinary builds ../cmd/caddy once per test process (without -race: the
// binary is the system under test, not the test) and returns its path. The
// binary goes into a temporary directory under XDG_CACHE_HOME, which
// TestMain points into the directory it removes at the end.
func caddyBinary(t testing.TB) string {
	t.Helper()
	caddyBuild.once.Do(func() {
		start := time.Now()
		parent := os.Getenv("XDG_CACHE_HOME")
		if parent != "" {
			if err := os.MkdirAll(parent, 0o700); err != nil {
				caddyBuild.err = err
				return
			}
		}
		dir, err := os.MkdirTemp(parent, "caddy-bin-")
		if err != nil {
			caddyBuild.err = err
			return
		}
		goTool, err := exec.LookPath("go")
		if err != nil {
			caddyBuild.err = fmt.Errorf("the go command is needed to build ../cmd/caddy: %w", err)
			return
		}
		bin := filepath.Join(dir, "caddy")
		build := exec.Command(goTool, "build", "-o", bin, "../cmd/caddy")
		build.Env = goBuildEnv()
		dieWithTest(build)
		out, err := build.CombinedOutput()
		if err != nil {
			caddyBuild.err = fmt.Errorf("go build ../cmd/caddy: %v\n%s", err, out)
			return
		}
		caddyBuild.path, caddyBuild.took = bin, time.Since(start)
		t.Logf("built ../cmd/caddy in %s", caddyBuild.took.Round(time.Millisecond))
	})
	if caddyBuild.err != nil {
		t.Fatal(caddyBuild.err)
	}
	return caddyBuild.path
}

// caddyProcess is a running `caddy run` process.
type caddyProcess struct {
	t       testing.TB
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed when the process has been waited for
	waitErr error
}

// writeCaddyfile writes a Caddyfile, formatted as `caddy fmt` would, to
// path.
func writeCaddyfile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, caddyfile.Format([]byte(content)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startCaddyProcess runs `caddy run` on a Caddyfile, with env added to the
// test's environment and Caddy's output appended to logPath. A Cleanup
// kills the process if the test leaves it running, and prints the end of
// its log if the test failed.
func startCaddyProcess(t testing.TB, caddyfilePath, logPath string, env ...string) *caddyProcess {
	t.Helper()
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(caddyBinary(t), "run", "--config", caddyfilePath, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	dieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		t.Fatalf("starting caddy: %v", err)
	}
	p := &caddyProcess{t: t, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		_ = logFile.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("end of the caddy log %s:\n%s", logPath, logTail(logPath, 40))
		}
	})
	return p
}

// logTail returns the last n lines of a file.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitReady polls url until it answers 200, failing the test if the
// process exits first or if a minute passes.
func (p *caddyProcess) waitReady(url string) {
	p.t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := c.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.exited:
			p.t.Fatalf("caddy exited before it was ready (%v):\n%s", p.waitErr, logTail(p.logPath, 40))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("caddy not ready at %s after a minute (last error %v):\n%s", url, err, logTail(p.logPath, 40))
		}
	}
}

// kill ends the process with SIGKILL, as a power cut or the OOM killer
// would, and waits for it. Killing an exited process does nothing.
func (p *caddyProcess) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop asks the process to shut down (SIGINT, as Ctrl-C) and waits up to
// half a minute before killing it.
func (p *caddyProcess) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.t.Errorf("caddy did not stop within 30s of SIGINT")
		p.kill()
	}
}

// loadClient is an HTTP client for load against a Caddy process: it keeps
// connections alive (as real clients do), follows no redirects and waits
// long enough that a slow machine never makes a request fail.
func loadClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &http.Client{
		Transport:     tr,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// answer is what came back for one request: a status and a body read to
// the end, or the transport error that kept it from coming.
type answer struct {
	method string
	status int
	header http.Header
	body   []byte
	err    error
}

// notSent tells whether the request certainly never reached the server:
// the connection could not even be opened.
func (a answer) notSent() bool {
	var op *net.OpError
	return a.err != nil && errors.As(a.err, &op) && op.Op == "dial"
}

// send performs a request and reads its whole answer; a body cut short
// counts as no answer.
func send(c *http.Client, req *http.Request) answer {
	resp, err := c.Do(req)
	if err != nil {
		return answer{method: req.Method, err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{method: req.Method, err: err}
	}
	return answer{method: req.Method, status: resp.StatusCode, header: resp.Header, body: b}
}

// loadAssertion signs a private_key_jwt client assertion (ES384) with a
// given jti; unlike backendKeys.assertion it reports errors instead of
// failing the test, for use in load goroutines.
func loadAssertion(k backendKeys, client, aud, jti string) (string, error) {
	now := time.Now()
	payload, err := json.Marshal(map[string]any{"iss": client, "sub": client, "aud": aud, "jti": jti,
		"exp": now.Add(4 * time.Minute).Unix(), "iat": now.Unix()})
	if err != nil {
		return "", err
	}
	h := jws.NewHeaders()
	_ = h.Set(jws.TypeKey, "JWT")
	_ = h.Set(jws.KeyIDKey, "ec1")
	b, err := jws.Sign(payload, jws.WithKey(jwa.ES384(), k.ec, jws.WithProtectedHeaders(h)))
	return string(b), err
}
