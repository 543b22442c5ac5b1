package audit

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestRecordLogsAndForwards: an event is logged once with its fields
// (empty ones left out) and handed to the sink; a nil Trail is a no-op.
func TestRecordLogsAndForwards(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	sink := &collect{}
	tr := New(zap.New(core), "https://auth.example.org", sink)
	tr.Record(Event{Action: ActionSignIn, Outcome: OutcomeRefused, User: "alice", Remote: "10.0.0.1", Reason: "wrong password"})
	entries := logs.FilterLoggerName("audit").All()
	if len(entries) != 1 || entries[0].Message != "audit" {
		t.Fatalf("entries %v", entries)
	}
	fields := entries[0].ContextMap()
	if fields["action"] != "sign-in" || fields["user"] != "alice" || fields["outcome"] != "refused" || fields["at"] == nil {
		t.Errorf("fields %v", fields)
	}
	if _, ok := fields["client_id"]; ok {
		t.Error("an empty field is logged")
	}
	if len(sink.events) != 1 || sink.events[0].Time.IsZero() {
		t.Errorf("sink got %v", sink.events)
	}
	var none *Trail
	none.Record(Event{Action: ActionAdmin}) // no panic
}

// collect is a Sink that keeps the events.
type collect struct{ events []Event }

// Send implements Sink.
func (c *collect) Send(_ string, e Event) { c.events = append(c.events, e) }

// TestToAuditEventEveryAction: every action converts to an AuditEvent with
// R4's required elements and one requesting agent.
func TestToAuditEventEveryAction(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, e := range []Event{
		{Action: ActionSignIn, Outcome: OutcomeSuccess, User: "alice", Remote: "10.0.0.1"},
		{Action: ActionTokenIssued, Outcome: OutcomeSuccess, Client: "app", User: "alice", Patient: "p1", Scope: "patient/*.rs"},
		{Action: ActionTokenRefused, Outcome: OutcomeRefused, Client: "app", Reason: "invalid_client"},
		{Action: ActionTokenRefused, Outcome: OutcomeError},
		{Action: ActionConsent, Outcome: OutcomeSuccess, User: "alice", Client: "app"},
		{Action: ActionRevocation, Outcome: OutcomeSuccess, Admin: "remote_addr=127.0.0.1:1", Client: "app", Target: "client"},
		{Action: ActionRegistration, Outcome: OutcomeSuccess, Client: "dyn"},
		{Action: ActionAdmin, Outcome: OutcomeSuccess, Admin: "remote_addr=127.0.0.1:1", Detail: "signing keys rotated"},
	} {
		e.Time = at
		ev := ToAuditEvent("https://auth.example.org", e)
		b, _ := json.Marshal(ev)
		requestors := 0
		for _, a := range ev.Agent {
			if a.Requestor {
				requestors++
			}
		}
		switch {
		case ev.ResourceType != "AuditEvent", ev.Type.Code == "", ev.Type.System == "", ev.Recorded != "2026-01-02T03:04:05Z",
			requestors != 1, ev.Source.Observer.Identifier == nil, ev.Action == "":
			t.Errorf("%s: %s", e.Action, b)
		}
		want := map[Outcome]string{OutcomeSuccess: "0", OutcomeRefused: "4", OutcomeError: "8"}[e.Outcome]
		if ev.Outcome != want {
			t.Errorf("%s %s: outcome %s, want %s", e.Action, e.Outcome, ev.Outcome, want)
		}
		if e.Patient != "" && !strings.Contains(string(b), `"reference":"Patient/p1"`) {
			t.Errorf("no patient entity: %s", b)
		}
	}
}

// TestFileWriterAppendsLines writes events to a file, one AuditEvent a
// line, and counts an event sent after Close as dropped.
func TestFileWriterAppendsLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.ndjson")
	var dropped atomic.Int32
	w, err := NewWriter(WriterOptions{Kind: SinkFile, Target: path, Dropped: func(_, reason string) {
		if reason == "closed" {
			dropped.Add(1)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		w.Send("iss", Event{Action: ActionAdmin, Outcome: OutcomeSuccess, Time: time.Now()})
	}
	_ = w.Close()
	w.Send("iss", Event{Action: ActionAdmin})
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 3 || dropped.Load() != 1 {
		t.Fatalf("%d lines, %d dropped after close", len(lines), dropped.Load())
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
}

// TestFHIRWriterNeverBlocks: with the FHIR server stuck, Send returns at
// once and what the queue cannot hold is dropped and counted.
func TestFHIRWriterNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	var mu sync.Mutex
	counts := map[string]int{}
	w, err := NewWriter(WriterOptions{Kind: SinkFHIR, Target: srv.URL, Dropped: func(_, reason string) {
		mu.Lock()
		counts[reason]++
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	for range queueSize + 50 {
		w.Send("iss", Event{Action: ActionAdmin, Outcome: OutcomeSuccess, Time: time.Now()})
	}
	mu.Lock()
	full := counts["queue_full"]
	mu.Unlock()
	if full < 49 { // the writer may have taken one off the queue
		t.Errorf("%d dropped as queue_full, want at least 49", full)
	}
	close(release)
	_ = w.Close()
}
