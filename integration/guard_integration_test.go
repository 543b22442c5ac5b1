package integration

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/smartcaddy/smartauth/store"
)

// revocationBound is how soon a revocation recorded in the store must
// reach the guard (issue 5).
const revocationBound = time.Second

func TestGuardRefusesBadTokens(t *testing.T) {
	g := startGuardSite(t, "")
	now := time.Now()
	other := *g.signer
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other.key = key // same kid, another key: the signature must fail
	for name, tok := range map[string]string{
		"expired":          g.signer.mint(t, tokenSpec{scope: "user/*.rs", iat: now.Add(-2 * time.Hour), exp: now.Add(-time.Hour)}),
		"not yet valid":    g.signer.mint(t, tokenSpec{scope: "user/*.rs", iat: now.Add(time.Hour), exp: now.Add(2 * time.Hour)}),
		"another audience": g.signer.mint(t, tokenSpec{scope: "user/*.rs", aud: "https://other.example/fhir"}),
		"another issuer":   g.signer.mint(t, tokenSpec{scope: "user/*.rs", iss: "https://other.example/auth"}),
		"an id_token":      g.signer.mint(t, tokenSpec{scope: "user/*.rs", typ: "JWT"}),
		"forged signature": other.mint(t, tokenSpec{scope: "user/*.rs"}),
	} {
		resp, body := g.do(t, "GET", "Observation", tok, "", http.Header{"X-Test-Case": {"bad-" + name}})
		if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) || !strings.Contains(body, "OperationOutcome") {
			t.Errorf("%s: %d %q %s", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
		if name == "expired" && !strings.Contains(resp.Header.Get("WWW-Authenticate"), "expired") {
			t.Errorf("expired: %q", resp.Header.Get("WWW-Authenticate"))
		}
		if _, reached := g.up.reached("bad-" + name); reached {
			t.Errorf("%s reached the upstream", name)
		}
	}
	// A token within the clock leeway still passes.
	ok := g.signer.mint(t, tokenSpec{scope: "user/*.rs", iat: now.Add(-time.Hour), exp: now.Add(-5 * time.Second)})
	if resp, body := g.do(t, "GET", "Observation", ok, "", nil); resp.StatusCode != 200 {
		t.Errorf("token within leeway: %d %s", resp.StatusCode, body)
	}
}

// revokeInStore records a revocation through the instance's own store, as
// the revocation endpoint or a refresh-token replay does.
func revokeInStore(t *testing.T, dir string, kind store.RevocationKind, id string) {
	t.Helper()
	db, err := store.Acquire(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = store.Release(dir) }()
	if err := db.Revoke(context.Background(), kind, id, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
}

func TestGuardSeesRevocationsOfCachedTokens(t *testing.T) {
	g := startGuardSite(t, "")
	for _, kind := range []store.RevocationKind{store.RevokedToken, store.RevokedFamily, store.RevokedClient} {
		t.Run(string(kind), func(t *testing.T) {
			clientID := "app"
			if kind == store.RevokedClient {
				clientID = "backend"
			}
			spec := tokenSpec{scope: "user/*.rs system/Observation.rs", jti: randomString(t), family: randomString(t), clientID: clientID, iat: time.Now().Add(-time.Minute)}
			if clientID == "backend" {
				spec.sub = "backend"
			}
			tok := g.signer.mint(t, spec)
			for range 3 { // verified once, then served from the cache
				if resp, body := g.do(t, "GET", "Observation", tok, "", nil); resp.StatusCode != 200 {
					t.Fatalf("before revocation: %d %s", resp.StatusCode, body)
				}
			}
			id := map[store.RevocationKind]string{store.RevokedToken: spec.jti, store.RevokedFamily: spec.family, store.RevokedClient: clientID}[kind]
			revokeInStore(t, g.storage, kind, id)
			time.Sleep(revocationBound)
			resp, _ := g.do(t, "GET", "Observation", tok, "", nil)
			if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "revoked") {
				t.Fatalf("%s revocation not seen after %s: %d %q", kind, revocationBound, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
			if kind == store.RevokedClient {
				// Tokens issued after the revocation still work.
				spec.jti, spec.iat = randomString(t), time.Now().Add(2*time.Second)
				later := g.signer.mint(t, spec)
				if resp, body := g.do(t, "GET", "Observation", later, "", nil); resp.StatusCode != 200 {
					t.Fatalf("token issued after the client revocation: %d %s", resp.StatusCode, body)
				}
			}
		})
	}
}

func TestGuardWithTokensFromTheRealFlow(t *testing.T) {
	up := startUpstream(t)
	s := newFlowSite(t, guardBlock)
	s.after = "reverse_proxy /fhir/* " + strings.TrimPrefix(up.URL, "http://")
	startCaddyfile(t, s.caddyfile())
	cfg := s.oauth("public-app", "", "launch/patient", "patient/Patient.rs", "patient/Observation.rs", "offline_access")
	verifier := oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL(randomString(t), oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", s.fhirBase()))
	q := newBrowser(t).run(authURL, s.redirect)
	tok, err := cfg.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	get := func(path, caseID string) *http.Response {
		req, _ := http.NewRequest("GET", s.fhirBase()+"/"+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		req.Header.Set("X-Test-Case", caseID)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := get("Patient/p1", "flow-own"); resp.StatusCode != 200 {
		t.Fatalf("own patient: %d", resp.StatusCode)
	}
	if r, _ := up.reached("flow-own"); r.Header.Get("X-Smart-Patient") != "p1" || r.Header.Get("X-Smart-Client") != "public-app" {
		t.Errorf("upstream headers %v", r.Header)
	}
	if resp := get("Patient/p2", "flow-other"); resp.StatusCode != 403 {
		t.Errorf("other patient: %d", resp.StatusCode)
	}
	if _, reached := up.reached("flow-other"); reached {
		t.Error("a refused request reached the upstream")
	}
	if resp := get("Observation?code=1", "flow-search"); resp.StatusCode != 200 {
		t.Errorf("search: %d", resp.StatusCode)
	}
	if r, _ := up.reached("flow-search"); !strings.Contains(r.RawQuery, "subject=Patient%2Fp1") {
		t.Errorf("search arrived as %q", r.RawQuery)
	}
	if resp := get("Condition", "flow-unscoped"); resp.StatusCode != 403 {
		t.Errorf("unscoped type: %d", resp.StatusCode)
	}
	// Replaying a rotated refresh token revokes the family: the guard of
	// the same instance refuses the family's access token within a second.
	first := tok.RefreshToken
	if next := refresh(t, s, first, "public-app"); next["refresh_token"] == nil {
		t.Fatalf("refresh: %v", next)
	}
	if again := refresh(t, s, first, "public-app"); again["error"] != "invalid_grant" {
		t.Fatalf("replay: %v", again)
	}
	time.Sleep(revocationBound)
	if resp := get("Patient/p1", "flow-revoked"); resp.StatusCode != 401 {
		t.Errorf("after the family was revoked: %d", resp.StatusCode)
	}
}

func TestGuardCapabilityStatement(t *testing.T) {
	g := startGuardSite(t, "")
	resp, body := g.do(t, "GET", "metadata", "", "", http.Header{"Origin": {"https://anywhere.example"}})
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	var cs struct {
		ResourceType string `json:"resourceType"`
		Rest         []struct {
			Security struct {
				Extension []struct {
					URL       string `json:"url"`
					Extension []struct {
						URL      string `json:"url"`
						ValueURI string `json:"valueUri"`
					} `json:"extension"`
				} `json:"extension"`
				Service []struct {
					Coding []struct{ System, Code string } `json:"coding"`
				} `json:"service"`
			} `json:"security"`
		} `json:"rest"`
	}
	if err := json.Unmarshal([]byte(body), &cs); err != nil || cs.ResourceType != "CapabilityStatement" || len(cs.Rest) != 1 {
		t.Fatalf("%v %s", err, body)
	}
	sec := cs.Rest[0].Security
	if len(sec.Extension) != 1 || sec.Extension[0].URL != "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris" {
		t.Fatalf("security %s", body)
	}
	got := map[string]string{}
	for _, e := range sec.Extension[0].Extension {
		got[e.URL] = e.ValueURI
	}
	for _, name := range []string{"authorize", "token", "manage", "introspect", "revoke"} {
		if got[name] != g.base()+"/auth/"+name {
			t.Errorf("oauth-uris %s = %q", name, got[name])
		}
	}
	if len(sec.Service) != 1 || sec.Service[0].Coding[0].Code != "SMART-on-FHIR" || sec.Service[0].Coding[0].System != "http://terminology.hl7.org/CodeSystem/restful-security-service" {
		t.Errorf("service %s", body)
	}
	if resp.Header.Get("Content-Length") != fmt.Sprint(len(body)) {
		t.Errorf("Content-Length %s for %d bytes", resp.Header.Get("Content-Length"), len(body))
	}
}

func TestGuardCORSOriginsConfigured(t *testing.T) {
	g := startGuardSite(t, "guard {\n\t\t\tcors_origins *\n\t\t}")
	resp, _ := g.do(t, "GET", "Observation", "", "", http.Header{"Origin": {"https://any.example"}})
	if resp.StatusCode != 401 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("%d %v", resp.StatusCode, resp.Header)
	}
	g2 := startGuardSite(t, "guard {\n\t\t\tcors_origins https://only.example\n\t\t}")
	resp, _ = g2.do(t, "GET", "Observation", "", "", http.Header{"Origin": {"https://app.example.org"}})
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("a registered app's origin is allowed despite cors_origins: %v", resp.Header)
	}
	resp, _ = g2.do(t, "GET", "Observation", "", "", http.Header{"Origin": {"https://only.example"}})
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://only.example" {
		t.Errorf("configured origin: %v", resp.Header)
	}
}

func TestGuardAuditLog(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "audit.log")
	g := &guardSite{up: startUpstream(t), signer: newTokenSigner(t)}
	g.site = site{port: freePort(t), storage: t.TempDir()}
	g.signer.issuer, g.signer.aud = g.base()+"/auth", g.base()+"/fhir"
	g.extra = fmt.Sprintf("signing_key ES256 %s\n\t\tclient app {\n\t\t\tredirect_uri https://app.example.org/cb\n\t\t}\n\t\tuser alice {\n\t\t\tpassword_hash %s\n\t\t\tpatients p1\n\t\t}", g.signer.pemPath, testHash)
	g.after = "reverse_proxy /fhir/* " + strings.TrimPrefix(g.up.URL, "http://")
	cf := strings.Replace(g.caddyfile(), "\tlog {\n\t\toutput discard\n\t}\n",
		fmt.Sprintf("\tlog {\n\t\toutput discard\n\t\texclude http.handlers.smart_auth.guard\n\t}\n\tlog audit {\n\t\toutput file %s\n\t\tformat json\n\t\tinclude http.handlers.smart_auth.guard\n\t}\n", logFile), 1)
	startCaddyfile(t, cf)
	tok := g.signer.mint(t, tokenSpec{scope: "patient/Observation.rs", patient: "p1"})
	g.do(t, "GET", "Observation?code=1", tok, "", nil)
	g.do(t, "GET", "Condition", tok, "", nil)
	g.do(t, "GET", "Observation", "", "", nil)

	raw, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), tok) || strings.Contains(string(raw), strings.Split(tok, ".")[2]) {
		t.Fatal("the audit log holds the token")
	}
	var entries []map[string]any
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%v: %s", err, sc.Text())
		}
		if m["msg"] == "guard decision" {
			entries = append(entries, m)
		}
	}
	if len(entries) != 3 {
		t.Fatalf("%d decisions logged:\n%s", len(entries), raw)
	}
	first := entries[0]
	if first["allowed"] != true || first["client_id"] != "app" || first["user"] != "alice" || first["patient"] != "p1" ||
		first["interaction"] != "search-type" || first["resource_type"] != "Observation" || first["reason"] == "" {
		t.Errorf("allowed entry %v", first)
	}
	if entries[1]["allowed"] != false || entries[1]["resource_type"] != "Condition" || !strings.Contains(fmt.Sprint(entries[1]["reason"]), "do not permit") {
		t.Errorf("denied entry %v", entries[1])
	}
	if entries[2]["allowed"] != false || entries[2]["client_id"] != nil {
		t.Errorf("no-token entry %v", entries[2])
	}
}

func TestGuardRefusesOtherSpellingsOfTheBase(t *testing.T) {
	g := startGuardSite(t, "")
	tok := g.signer.mint(t, tokenSpec{scope: "patient/*.rs", patient: "p1"})
	for i, p := range []string{"/FHIR/Patient/p2", "//fhir/Patient/p2", "/x/../fhir/Patient/p2", "/fhir/./Patient/p2", "/Fhir/metadata"} {
		id := fmt.Sprintf("spelling-%d", i)
		// A raw request line, so that the path arrives as written.
		conn, err := net.Dial("tcp", strings.TrimPrefix(g.base(), "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nX-Test-Case: %s\r\nConnection: close\r\n\r\n",
			p, strings.TrimPrefix(g.base(), "http://"), tok, id)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		conn.Close()
		if resp.StatusCode != 400 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
		if _, reached := g.up.reached(id); reached {
			t.Errorf("%s reached the upstream", p)
		}
	}
}
