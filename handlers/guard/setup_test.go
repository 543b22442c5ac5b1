package guard

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/store"
)

// Interface guards: the store satisfies the guard's view of it.
var _ Store = (*store.DB)(nil)

// TestNewNeedsDeps: a Guard without its run-time parts is refused, not
// built half-wired.
func TestNewNeedsDeps(t *testing.T) {
	if g, err := New(Options{}, Deps{}); err == nil || g != nil {
		t.Fatalf("New without deps: %v, %v", g, err)
	}
}

// TestContextStopsPoller: when Deps.Context is done, the guard's poller
// stops on its own, and Close afterwards (twice) still returns.
func TestContextStopsPoller(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	e := newGuardEnv(t, ctx)
	cancel()
	select {
	case <-e.g.gs.done:
	case <-time.After(30 * time.Second): // a hang guard, not a timing check
		t.Fatal("the poller did not stop when its context was done")
	}
	if err := e.g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.g.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCloseStopsPoller: Close stops the poller without a context, and
// the guard still answers from what it has (a cached check needs no
// poller).
func TestCloseStopsPoller(t *testing.T) {
	e := newFuzzEnv(t)
	if err := e.g.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.g.gs.done:
	default:
		t.Fatal("Close returned before the poller stopped")
	}
	req, _ := newFuzzRequest(http.MethodGet, "/fhir/Patient/"+fzPatient, nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	up := &upstream{}
	if w := e.serve(req, up); w.Code != http.StatusOK || len(up.calls) != 1 {
		t.Fatalf("after Close: %d, %d upstream calls", w.Code, len(up.calls))
	}
}
