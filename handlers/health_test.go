package handlers_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/handlers"
	"github.com/smartcaddy/smartauth/store"
)

// slowProbeStore answers the readiness probe's read slowly and counts it,
// as a busy database would.
type slowProbeStore struct {
	store.Store
	reads atomic.Int64
}

func (s *slowProbeStore) GetClient(ctx context.Context, id string) (*store.Client, error) {
	if id == "-health-probe-" {
		s.reads.Add(1)
		time.Sleep(50 * time.Millisecond)
	}
	return s.Store.GetClient(ctx, id)
}

// TestHealthFloodSharesOneCheck: /health is public, so concurrent callers
// share one run of the readiness checks instead of each reading the
// store; every caller still gets the full answer.
func TestHealthFloodSharesOneCheck(t *testing.T) {
	var probe *slowProbeStore
	env := newFlowEnv(t, flowOptions{config: func(c *handlers.Config) {
		probe = &slowProbeStore{Store: c.Store}
		c.Store = probe
	}})
	const callers = 40
	var wg sync.WaitGroup
	start := make(chan struct{})
	statuses := make([]int, callers)
	for i := range callers {
		wg.Go(func() {
			<-start
			resp, err := http.Get(env.issuer + "/health")
			if err != nil {
				t.Error(err)
				return
			}
			_ = resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	before := probe.reads.Load()
	close(start)
	wg.Wait()
	for i, st := range statuses {
		if st != http.StatusOK {
			t.Fatalf("caller %d: %d, want 200", i, st)
		}
	}
	if n := probe.reads.Load() - before; n >= callers/2 {
		t.Errorf("%d concurrent /health requests read the store %d times, want them to share the checks", callers, n)
	} else {
		t.Logf("%d concurrent /health requests, %d store reads", callers, n)
	}
}
