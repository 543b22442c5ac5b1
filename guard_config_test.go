package smartauth

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/smartcaddy/smartauth/handlers/guard"
	"github.com/smartcaddy/smartauth/scopes"
)

func TestGuardCaddyfileOptions(t *testing.T) {
	s, err := parse(t, `smart_auth {
		issuer https://auth.example.org
		fhir_base https://fhir.example.org/r4
		guard {
			cors_origins https://app.example.org http://localhost:3000
			cors_origins https://other.example.org
			operation $validate * r
			operation $lastn Observation s
			allow_outside_compartment Medication Organization
			allow_outside_compartment Location
			header X-Smart-Patient {smart.patient}
			header x-smart-user {smart.user}
			revocation_staleness 90s
		}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	o, err := s.Guard.options()
	if err != nil {
		t.Fatal(err)
	}
	want := guard.Options{
		CORSOrigins:         []string{"https://app.example.org", "http://localhost:3000", "https://other.example.org"},
		Operations:          []guard.OperationRule{{Name: "$validate", ResourceType: "*", Perms: scopes.Read}, {Name: "$lastn", ResourceType: "Observation", Perms: scopes.Search}},
		OutsideCompartment:  []string{"Medication", "Organization", "Location"},
		Headers:             []guard.HeaderRule{{Name: "X-Smart-Patient", Value: "{smart.patient}"}, {Name: "X-Smart-User", Value: "{smart.user}"}},
		RevocationStaleness: 90 * time.Second,
	}
	gotJS, _ := json.Marshal(o)
	wantJS, _ := json.Marshal(want)
	if string(gotJS) != string(wantJS) {
		t.Errorf("options\n got %s\nwant %s", gotJS, wantJS)
	}
}

func TestGuardCaddyfileErrors(t *testing.T) {
	head := "smart_auth {\n issuer https://a.example\n fhir_base https://f.example\n guard {\n"
	for _, c := range []struct{ name, block, want string }{
		{"unknown option", "  colour blue", "guard: unrecognized subdirective 'colour', at Testfile:5"},
		{"cors_origins empty", "  cors_origins", "guard: cors_origins: at least one origin (or *) is required, at Testfile:5"},
		{"cors_origins not an origin", "  cors_origins https://a.example/path", `guard: cors_origins: "https://a.example/path" is not an origin (scheme://host[:port]), at Testfile:5`},
		{"operation arity", "  operation $validate *", "guard: operation: want <$name> <ResourceType|*> <permissions>, at Testfile:5"},
		{"operation name", "  operation validate * r", `guard: operation: "validate" is not an operation name ($name), at Testfile:5`},
		{"operation built in", "  operation $export * r", "guard: operation: $export is built in and cannot be configured, at Testfile:5"},
		{"operation type", "  operation $validate observation r", `guard: operation: "observation" is not a FHIR resource type or *, at Testfile:5`},
		{"operation permissions", "  operation $validate * read", `guard: operation: "read": permissions are SMART v2 letters in the order c r u d s, at Testfile:5`},
		{"operation permissions order", "  operation $validate * sr", `guard: operation: "sr": permissions are SMART v2 letters`},
		{"allow_outside_compartment empty", "  allow_outside_compartment", "guard: allow_outside_compartment: at least one resource type is required, at Testfile:5"},
		{"allow_outside_compartment type", "  allow_outside_compartment medication", `guard: allow_outside_compartment: "medication" is not a FHIR resource type, at Testfile:5`},
		{"allow_outside_compartment Patient", "  allow_outside_compartment Patient", "guard: allow_outside_compartment: the Patient type is the compartment itself, at Testfile:5"},
		{"header arity", "  header X-Smart-Patient", "guard: header: want <Name> <value>, at Testfile:5"},
		{"header name", "  header X(Patient) {smart.patient}", `guard: header: "X(Patient)" is not a header name, at Testfile:5`},
		{"header reserved", "  header authorization {smart.jti}", "guard: header: authorization cannot be set by the guard, at Testfile:5"},
		{"header second line", "  header X-A {smart.sub}\n  header Host x", "guard: header: Host cannot be set by the guard, at Testfile:6"},
		{"revocation_staleness arity", "  revocation_staleness", "guard: revocation_staleness: want <duration> or off, at Testfile:5"},
		{"revocation_staleness not a duration", "  revocation_staleness soon", "guard: revocation_staleness: time: invalid duration \"soon\", at Testfile:5"},
		{"revocation_staleness too short", "  revocation_staleness 500ms", "guard: revocation_staleness: 500ms: must be at least 1s (or off), at Testfile:5"},
	} {
		t.Run(c.name, func(t *testing.T) { expectParseError(t, head+c.block+"\n }\n}", c.want) })
	}
	off, err := parse(t, "smart_auth {\n issuer https://a.example\n fhir_base https://f.example\n guard {\n revocation_staleness off\n }\n}")
	if err != nil || off.Validate() != nil {
		t.Fatalf("revocation_staleness off: %v", err)
	}
	if o, _ := off.Guard.options(); o.RevocationStaleness >= 0 {
		t.Errorf("revocation_staleness off: %s, want a negative duration (no bound)", o.RevocationStaleness)
	}
	if _, err := parse(t, "smart_auth {\n issuer https://a.example\n fhir_base https://f.example\n guard on {\n }\n}"); err == nil || !strings.Contains(err.Error(), `guard: takes a block, not "on", at Testfile:4`) {
		t.Errorf("guard argument: %v", err)
	}
}

func TestGuardJSONValidation(t *testing.T) {
	for name, g := range map[string]*GuardConfig{
		"cors_origins":              {CORSOrigins: []string{"ftp://x"}},
		"operation":                 {Operations: []GuardOperation{{Name: "$x", ResourceType: "*", Permissions: ""}}},
		"allow_outside_compartment": {AllowOutsideCompartment: []string{"x"}},
		"header":                    {Headers: []GuardHeader{{Name: "X-A", Value: " "}}},
		"revocation_staleness":      {RevocationStaleness: caddy.Duration(10 * time.Millisecond)},
	} {
		s := &SmartAuth{Issuer: "https://a.example", FHIRBase: "https://f.example", Guard: g}
		if err := s.Validate(); err == nil || !strings.HasPrefix(err.Error(), "guard: "+name+": ") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
