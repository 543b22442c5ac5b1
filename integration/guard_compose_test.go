package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGuardPlaceholdersComposeWithCaddy checks that the placeholders the
// guard sets reach other Caddy modules: reverse_proxy's header_up passes
// them upstream, an expression matcher in a later route matches on them,
// and log_append writes them to the access log (which never holds the
// token).
func TestGuardPlaceholdersComposeWithCaddy(t *testing.T) {
	up := startUpstream(t)
	signer := newTokenSigner(t)
	accessLog := filepath.Join(t.TempDir(), "access.log")
	g := &guardSite{up: up, signer: signer, site: site{port: freePort(t), storage: t.TempDir()}}
	signer.issuer, signer.aud = g.base()+"/auth", g.base()+"/fhir"
	g.extra = fmt.Sprintf(`signing_key ES256 %s
		client app {
			redirect_uri https://app.example.org/callback
		}
		user alice {
			password_hash %s
			fhir_user Practitioner/dr-alice
			patients p1 p2
		}`, signer.pemPath, testHash)
	g.after = fmt.Sprintf(`log {
		output file %s
		format json
	}
	log_append smart_patient {smart.patient}
	log_append smart_client {smart.client_id}
	route /fhir/* {
		@contextP1 expression {smart.patient} == "p1"
		header @contextP1 X-Context-Patient p1
		reverse_proxy %s {
			header_up X-Scope {smart.scope}
			header_up X-Jti {smart.jti}
			header_up X-Auth-User {http.auth.user.id}
			header_up X-Fhir-User {smart.user}
		}
	}`, accessLog, strings.TrimPrefix(up.URL, "http://"))
	startCaddyfile(t, g.caddyfile())

	jti := guardJTI()
	token := signer.mint(t, tokenSpec{scope: "patient/Observation.rs", patient: "p1", jti: jti, fhirUser: g.base() + "/fhir/Practitioner/dr-alice"})
	resp, body := g.do(t, http.MethodGet, "Observation?code=1234", token, "", http.Header{"X-Test-Case": {"compose"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("allowed search: %d %s", resp.StatusCode, body)
	}
	got, ok := up.reached("compose")
	if !ok {
		t.Fatal("the request did not reach the upstream")
	}
	for h, want := range map[string]string{
		"X-Scope":     "patient/Observation.rs",
		"X-Jti":       jti,
		"X-Auth-User": "alice",
		"X-Fhir-User": g.base() + "/fhir/Practitioner/dr-alice",
	} {
		if v := got.Header.Get(h); v != want {
			t.Errorf("upstream %s = %q, want %q", h, v, want)
		}
	}
	if resp.Header.Get("X-Context-Patient") != "p1" {
		t.Errorf("the expression matcher on {smart.patient} did not match: %v", resp.Header)
	}

	// Another patient's token: the matcher does not match.
	other := signer.mint(t, tokenSpec{scope: "patient/Observation.rs", patient: "p2"})
	resp, _ = g.do(t, http.MethodGet, "Observation?code=1234", other, "", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Context-Patient") != "" {
		t.Errorf("p2: %d %v", resp.StatusCode, resp.Header)
	}

	// The access log is written when the response is done.
	var log string
	for range 50 {
		b, _ := os.ReadFile(accessLog)
		if log = string(b); strings.Count(log, "\n") >= 2 {
			break
		}
		waitBriefly()
	}
	if !strings.Contains(log, `"smart_patient":"p1"`) || !strings.Contains(log, `"smart_client":"app"`) {
		t.Errorf("access log lacks the smart_* fields:\n%s", log)
	}
	if strings.Contains(log, token) || strings.Contains(log, other) {
		t.Error("the access log holds a token")
	}
}

// waitBriefly yields to Caddy's log writer between reads of a log file.
func waitBriefly() { time.Sleep(20 * time.Millisecond) }
