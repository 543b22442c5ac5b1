package integration

import (
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard" // reverse_proxy, file_server, respond, … of the test sites

	_ "github.com/smartcaddy/smartauth" // registers http.handlers.smart_auth and the smart_auth directive
	"github.com/smartcaddy/smartauth/internal/pgtest"
)

// TestMain keeps Caddy's autosave and data directories out of the user's
// home, stops the in-process Caddy at the end and, through pgtest.Run,
// the PostgreSQL cluster pgtest may have started for the tests.
func TestMain(m *testing.M) {
	tmp, err := os.MkdirTemp("", "smartauth-test-")
	if err != nil {
		panic(err)
	}
	for _, v := range []string{"XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"} {
		_ = os.Setenv(v, tmp+"/"+strings.ToLower(v))
	}
	code := pgtest.Run(m)
	_ = caddy.Stop()
	_ = os.RemoveAll(tmp)
	os.Exit(code)
}

// freePort returns a TCP port free on the loopback interface.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// globalOptions turn off what in-process tests must not touch: the admin
// endpoint, the autosaved config and automatic HTTPS.
const globalOptions = `{
	admin off
	persist_config off
	auto_https off
	log {
		output discard
	}
}
`

// adapt turns a Caddyfile into JSON, failing on warnings.
func adapt(t *testing.T, caddyFile string) []byte {
	t.Helper()
	// Tests build Caddyfiles from templates; format them as `caddy fmt`
	// would, so that the adapter's only formatting warning stays quiet.
	formatted := caddyfile.Format([]byte(caddyFile))
	js, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(formatted, map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapting: %v\n%s", err, caddyFile)
	}
	for _, w := range warnings {
		t.Errorf("adapter warning: %s", w.String())
	}
	return js
}

// load runs a JSON config in this process, replacing any running one. Its
// Cleanup stops Caddy, so that the test's temporary directories are no
// longer held open when they are removed.
func load(t *testing.T, js []byte) {
	t.Helper()
	if err := caddy.Load(js, true); err != nil {
		t.Fatalf("loading config: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
}

// startCaddyfile adapts and runs a Caddyfile.
func startCaddyfile(t *testing.T, caddyfile string) {
	t.Helper()
	load(t, adapt(t, caddyfile))
}

// client is an HTTP client that does not follow redirects.
var client = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// fetch performs a request and returns the response with its body read.
func fetch(t *testing.T, method, url string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// site builds a test Caddyfile with one smart_auth site on a free port.
type site struct {
	port    int
	storage string
	extra   string // more smart_auth options
	after   string // directives after smart_auth in the site
}

func (s site) base() string { return fmt.Sprintf("http://localhost:%d", s.port) }

func (s site) caddyfile() string {
	after := s.after
	if after == "" {
		after = `respond /fhir/* "upstream {path}" 200`
	}
	return globalOptions + fmt.Sprintf(`
http://localhost:%d {
	smart_auth {
		issuer http://localhost:%d/auth
		fhir_base http://localhost:%d/fhir
		storage %s
		%s
	}
	%s
}
`, s.port, s.port, s.port, s.storage, s.extra, after)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
