package integration

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"golang.org/x/oauth2"
)

// TestLogsHoldNoSecrets runs the flows with every log at DEBUG into a
// file, and the audit trail also as FHIR AuditEvents into another, then
// checks that no password, client secret, code, token, launch id or
// cookie value appears in either. Caddy's own access log is not enabled:
// what is checked is what this module logs.
func TestLogsHoldNoSecrets(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	auditFile := filepath.Join(t.TempDir(), "audit.ndjson")
	s := newFlowSite(t, "audit_events file "+auditFile)
	cf := strings.Replace(s.caddyfile(), "output discard", "output file "+logFile+"\n\t\tlevel DEBUG", 1)
	startCaddyfile(t, cf)
	ctx := context.Background()
	var secrets []string
	keep := func(v ...string) {
		for _, x := range v {
			if x != "" {
				secrets = append(secrets, x)
			}
		}
	}
	keep("alice-pw", confSecret, ehrSecret)

	// A failed sign-in with a wrong password.
	b := newBrowser(t)
	resp, err := b.c.Get(s.issuer() + "/login")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	b.choose["password"] = "wrong-password-Zq81"
	keep("wrong-password-Zq81")
	if resp, err = b.c.Do(b.submit(resp.Request.URL, string(body))); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// A password typed into the user name field: the name is no user's,
	// so it is never logged.
	resp, err = b.c.Get(s.issuer() + "/login")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	b.choose["username"], b.choose["password"] = "Pw-in-the-name-field-71", "x"
	keep("Pw-in-the-name-field-71")
	if resp, err = b.c.Do(b.submit(resp.Request.URL, string(body))); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	b.choose["username"], b.choose["password"] = "alice", "alice-pw"

	// A standalone launch, a refresh, the reuse of the rotated token, a
	// replayed code and a wrong client secret.
	cfg := s.oauth("public-app", "", "openid", "fhirUser", "launch/patient", "patient/*.rs", "offline_access")
	verifier := oauth2.GenerateVerifier()
	keep(verifier)
	q := b.run(cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", s.fhirBase())), s.redirect)
	code := q.Get("code")
	keep(code)
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	keep(tok.AccessToken, tok.RefreshToken)
	if id, _ := tok.Extra("id_token").(string); id != "" {
		keep(id)
	}
	next := refresh(t, s, tok.RefreshToken, "public-app")
	if rt, _ := next["refresh_token"].(string); rt == "" {
		t.Fatalf("refresh: %v", next)
	} else {
		at, _ := next["access_token"].(string)
		keep(rt, at)
	}
	if again := refresh(t, s, tok.RefreshToken, "public-app"); again["error"] != "invalid_grant" {
		t.Fatalf("reuse: %v", again)
	}
	if _, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier)); err == nil {
		t.Fatal("a replayed code was accepted")
	}
	bad, err := http.PostForm(s.issuer()+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {"x"},
		"client_id": {"confidential-app"}, "client_secret": {"not-the-secret-Hx7"}})
	if err != nil {
		t.Fatal(err)
	}
	bad.Body.Close()
	keep("not-the-secret-Hx7")

	// An EHR launch: the launch id.
	req, _ := http.NewRequest("POST", s.issuer()+"/launch", strings.NewReader(`{"patient":"p2"}`))
	req.SetBasicAuth("ehr", ehrSecret)
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created struct{ Launch string }
	_ = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	keep(created.Launch)

	for _, u := range []string{s.issuer(), s.base()} {
		pu, _ := url.Parse(u)
		for _, c := range b.c.Jar.Cookies(pu) {
			keep(c.Value)
		}
	}

	_ = caddy.Stop() // the AuditEvent writer drains its queue
	raw, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	events, err := os.ReadFile(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	log := string(raw) + string(events)
	// The log was written: the failed sign-in and the refresh-token reuse
	// are logged events, and the audit trail has its entries and events.
	for _, want := range []string{"failed sign-in", "http.handlers.smart_auth", `"action":"token-refused"`,
		`"action":"token-issued"`, `"action":"sign-in"`, `"resourceType":"AuditEvent"`, `"code":"token-refused"`} {
		if !strings.Contains(log, want) {
			t.Fatalf("the log lacks %q; logging is not captured:\n%s", want, log)
		}
	}
	if len(secrets) < 12 {
		t.Fatalf("only %d secrets collected", len(secrets))
	}
	for _, sec := range secrets {
		if strings.Contains(log, sec) {
			t.Errorf("the log contains a secret (%d characters, starting %q)", len(sec), sec[:4])
		}
	}
}
