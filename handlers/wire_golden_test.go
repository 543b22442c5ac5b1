package handlers_test

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// updateWire rewrites testdata/wire.golden from the running code.
var updateWire = flag.Bool("update-wire", false, "rewrite testdata/wire.golden")

// TestWireGolden sends 67 requests that end in an error or a fixed answer
// (the token, introspection, revocation, userinfo, registration, client
// configuration and launch endpoints, discovery, the guard) and compares
// each status, header (but Date; discovery's ETag normalised) and body
// with testdata/wire.golden, byte for byte: what issue 11's split had to
// keep unchanged. The golden was written from the code before the split
// (dd0e1c3) and matched it. -update-wire rewrites it.
func TestWireGolden(t *testing.T) {
	const golden = "testdata/wire.golden"
	e := newRegEnv(t, false)
	tok := e.exchange(e.seedCode(codeOptions{})).str("access_token")
	noOpenID := e.exchange(e.seedCode(codeOptions{scope: "launch/patient patient/*.rs"})).str("access_token")
	if tok == "" || noOpenID == "" {
		t.Fatal("no tokens")
	}
	var b strings.Builder
	do := func(name, method, u, ct, body string, hdr ...string) {
		req, _ := http.NewRequest(method, u, strings.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Add(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		rb, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Fprintf(&b, "== %s\n%d\n", name, resp.StatusCode)
		var keys []string
		for k := range resp.Header {
			if k != "Date" {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "%s: %q\n", k, resp.Header[k])
		}
		fmt.Fprintf(&b, "%s\n", rb)
	}
	form := "application/x-www-form-urlencoded"
	bas := func(id, sec string) string {
		r, _ := http.NewRequest("GET", "/", nil)
		r.SetBasicAuth(id, sec)
		return r.Header.Get("Authorization")
	}
	T := e.tokenURL
	do("token GET", "GET", T, "", "")
	do("token ct", "POST", T, "text/plain", "grant_type=x")
	do("token no grant", "POST", T, form, "a=b")
	do("token foo", "POST", T, form, "grant_type=foo")
	do("token long", "POST", T, form, "grant_type="+strings.Repeat("x", 100))
	do("token repeated", "POST", T, form, "grant_type=a&grant_type=b")
	do("token big", "POST", T, form, "x="+strings.Repeat("a", 70<<10))
	do("token basic wrong", "POST", T, form, "grant_type=authorization_code&code=x&redirect_uri=y", "Authorization", bas(tkConfidential, "nope"))
	do("token basic malformed", "POST", T, form, "grant_type=authorization_code", "Authorization", "Basic !!!")
	do("token two methods", "POST", T, form, "grant_type=authorization_code&client_secret=x", "Authorization", bas(tkConfidential, "nope"))
	do("token cc noauth", "POST", T, form, "grant_type=client_credentials")
	do("token cc public", "POST", T, form, "grant_type=client_credentials&client_id="+tkPublic)
	do("token cc basic wrong", "POST", T, form, "grant_type=client_credentials", "Authorization", bas(tkConfidential, "nope"))
	do("token code bad", "POST", T, form, "grant_type=authorization_code&client_id="+tkPublic+"&code=zzz&redirect_uri="+url.QueryEscape(tkRedirect)+"&code_verifier="+strings.Repeat("a", 43))
	do("token refresh bad", "POST", T, form, "grant_type=refresh_token&refresh_token=zzz")
	do("token unknown client", "POST", T, form, "grant_type=authorization_code&client_id=nobody&code=x&redirect_uri=y")
	do("token codeonly refresh", "POST", T, form, "grant_type=refresh_token&client_id="+tkCodeOnly+"&refresh_token=x")
	I := e.issuer + "/introspect"
	do("introspect GET", "GET", I, "", "")
	do("introspect noauth", "POST", I, form, "token=x")
	do("introspect bearer bad", "POST", I, form, "token=x", "Authorization", "Bearer garbage")
	do("introspect bearer noscope", "POST", I, form, "token=x", "Authorization", "Bearer "+tok)
	do("introspect bearer+secret", "POST", I, form, "token=x&client_secret=y", "Authorization", "Bearer "+tok)
	do("introspect basic wrong", "POST", I, form, "token=x", "Authorization", bas(tkConfidential, "nope"))
	do("introspect public", "POST", I, form, "token=x&client_id="+tkPublic)
	do("introspect no token", "POST", I, form, "", "Authorization", bas(tkConfidential, tkSecret))
	R := e.issuer + "/revoke"
	do("revoke GET", "GET", R, "", "")
	do("revoke basic wrong", "POST", R, form, "token=x", "Authorization", bas(tkConfidential, "nope"))
	do("revoke noauth", "POST", R, form, "token=x")
	do("revoke no token", "POST", R, form, "", "Authorization", bas(tkConfidential, tkSecret))
	do("revoke ct", "POST", R, "text/plain", "token=x", "Authorization", bas(tkConfidential, tkSecret))
	U := e.issuer + "/userinfo"
	do("userinfo PUT", "PUT", U, "", "")
	do("userinfo none", "GET", U, "", "")
	do("userinfo basic", "GET", U, "", "", "Authorization", bas("a", "b"))
	do("userinfo bad", "GET", U, "", "", "Authorization", "Bearer garbage")
	do("userinfo noopenid", "GET", U, "", "", "Authorization", "Bearer "+noOpenID)
	do("userinfo ok", "GET", U, "", "", "Authorization", "Bearer "+tok)
	G := e.issuer + "/register"
	do("register GET", "GET", G, "", "")
	do("register none", "POST", G, "application/json", "{}")
	do("register wrong", "POST", G, "application/json", "{}", "Authorization", "Bearer nope")
	do("register ct", "POST", G, "text/plain", "{}", "Authorization", "Bearer "+regIAT)
	do("register big", "POST", G, "application/json", `{"client_name":"`+strings.Repeat("a", 70<<10)+`"}`, "Authorization", "Bearer "+regIAT)
	do("register swst", "POST", G, "application/json", `{"software_statement":"x","redirect_uris":["https://app.example/cb"]}`, "Authorization", "Bearer "+regIAT)
	do("register grant", "POST", G, "application/json", `{"grant_types":["password"],"redirect_uris":["https://app.example/cb"]}`, "Authorization", "Bearer "+regIAT)
	do("register refresh only", "POST", G, "application/json", `{"grant_types":["refresh_token"],"redirect_uris":["https://app.example/cb"]}`, "Authorization", "Bearer "+regIAT)
	do("register redirect", "POST", G, "application/json", `{"redirect_uris":["ftp://x"]}`, "Authorization", "Bearer "+regIAT)
	do("register type", "POST", G, "application/json", `{"redirect_uris":"x"}`, "Authorization", "Bearer "+regIAT)
	do("regman PATCH", "PATCH", G+"/abc", "", "", "Authorization", "Bearer x")
	do("regman none", "GET", G+"/abc", "", "")
	do("regman wrong", "GET", G+"/abc", "", "", "Authorization", "Bearer x")
	do("regman delete wrong", "DELETE", G+"/abc", "", "", "Authorization", "Bearer x")
	L := e.issuer + "/launch"
	do("launch GET", "GET", L, "", "")
	do("launch noauth", "POST", L, "application/json", "{}")
	do("launch basic wrong", "POST", L, "application/json", "{}", "Authorization", bas(tkConfidential, "nope"))
	do("launch basic unknown", "POST", L, "application/json", "{}", "Authorization", bas("nobody", "nope"))
	do("launch no right", "POST", L, "application/json", "{}", "Authorization", bas(tkConfidential, tkSecret))
	do("oidc POST", "POST", e.issuer+"/.well-known/openid-configuration", "", "")
	do("oidc GET", "GET", e.issuer+"/.well-known/openid-configuration", "", "")
	do("smart GET", "GET", e.fhirBase+"/.well-known/smart-configuration", "", "")
	F := e.fhirBase
	do("fhir none", "GET", F+"/Patient/pat-1", "", "")
	do("fhir bad", "GET", F+"/Patient/pat-1", "", "", "Authorization", "Bearer garbage")
	do("fhir two", "GET", F+"/Patient/pat-1", "", "", "Authorization", "Bearer "+tok, "Authorization", "Bearer "+tok)
	do("fhir other patient", "GET", F+"/Patient/pat-2", "", "", "Authorization", "Bearer "+tok)
	do("fhir scope", "GET", F+"/Condition?patient=pat-1", "", "", "Authorization", "Bearer "+noOpenID)
	do("fhir patch", "PATCH", F+"/Observation/1", "text/plain", "x", "Authorization", "Bearer "+tok)
	do("fhir weird method", "PROPFIND", F+"/Observation/1", "", "", "Authorization", "Bearer "+tok)
	do("fhir bundle", "POST", F, "application/fhir+json", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient/pat-2"}}]}`, "Authorization", "Bearer "+tok)
	do("fhir override", "GET", F+"/Patient/pat-1?_method=DELETE", "", "", "Authorization", "Bearer "+tok)
	s := strings.ReplaceAll(b.String(), e.srv.URL, "BASE")
	s = regexp.MustCompile(`(?m)^Etag: .*$`).ReplaceAllString(s, "Etag: ETAG")
	if *updateWire {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update-wire to write it)", err)
	}
	if s != string(want) {
		got, exp := strings.Split(s, "\n"), strings.Split(string(want), "\n")
		for i := range min(len(got), len(exp)) {
			if got[i] != exp[i] {
				t.Fatalf("the wire answers differ from %s at line %d:\n got %s\nwant %s", golden, i+1, got[i], exp[i])
			}
		}
		t.Fatalf("the wire answers differ from %s in length: %d lines, want %d", golden, len(got), len(exp))
	}
}
