package handlers

import (
	"maps"

	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/store"
)

// pathHealth is the readiness endpoint, under the issuer.
const pathHealth = "/health"

// healthTimeout bounds one readiness check: a store that does not answer
// within it is not ready.
const healthTimeout = 2 * time.Second

// Readiness states, in Health.Status.
const (
	HealthReady   = "ready"
	HealthUnready = "unready"
)

// Health is a readiness report: whether the issuer can serve, and the
// outcome of each check ("ok", or a short reason without details: the
// report is public). Failed names the required checks that failed (the
// issuer is then unready); Degraded the advisory ones (it stays ready).
type Health struct {
	Status   string            `json:"status"`
	Issuer   string            `json:"issuer"`
	Checks   map[string]string `json:"checks"`
	Failed   []string          `json:"failed,omitempty"`
	Degraded []string          `json:"degraded,omitempty"`
}

// Ready tells whether every check passed.
func (h Health) Ready() bool { return h.Status == HealthReady }

// healthCheck is one readiness check: a name and a function whose error
// makes the issuer unready, or only degraded when the check is advisory.
// The error is logged, never sent.
type healthCheck struct {
	name     string
	check    func(ctx context.Context) error
	advisory bool
}

// healthChecks lists the readiness checks: the store answers a cheap
// read, the key ring holds a signing key for every algorithm, and the
// identity providers, where configured, answered their discovery
// document within the last minute (authz.CheckIdentityProviders). The
// last is advisory: a provider's outage hits every instance alike, so
// taking them out of a load balancer would only stop the token endpoint
// and the guard too, which do not need the provider.
func (s *Server) healthChecks() []healthCheck {
	checks := []healthCheck{
		{name: "store", check: s.checkStore},
		{name: "keys", check: s.checkKeys},
	}
	if s.authz.HasIdentityProviders() {
		checks = append(checks, healthCheck{name: "identity_providers", check: s.authz.CheckIdentityProviders, advisory: true})
	}
	return checks
}

// healthProbeClient is a client id no client can have (ids of registered
// clients are base32), read to see that the store answers.
const healthProbeClient = "-health-probe-"

// checkStore reads one (absent) client from the store: ErrNotFound is an
// answer, anything else is not.
func (s *Server) checkStore(ctx context.Context) error {
	_, err := s.cfg.Store.GetClient(ctx, healthProbeClient)
	if err == nil || errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// checkKeys tells whether the ring can sign access tokens and id_tokens.
func (s *Server) checkKeys(context.Context) error {
	if !s.cfg.Keys.Ready() {
		return errors.New("no current signing key for every algorithm")
	}
	return nil
}

// healthStates remembers, per issuer, whether it was last seen ready, so
// that a change is logged once, by whichever Server (of the config being
// replaced or its successor) sees it first.
var healthStates sync.Map // issuer → *healthState

// healthState is an issuer's last readiness outcome.
type healthState struct {
	mu     sync.Mutex
	known  bool
	failed string
}

// Health runs the readiness checks and logs when the outcome differs
// from the previous one (ready → unready, or the failed checks change,
// and back), not on every call.
//
// Concurrent calls for one issuer share one run of the checks: /health is
// public, and a flood of it must not become a flood of store reads.
func (s *Server) Health(ctx context.Context) Health {
	v, _, _ := healthRuns.Do(s.cfg.Issuer.String(), func() (any, error) {
		// Not the first caller's cancellation: others share the result.
		return s.runHealthChecks(context.WithoutCancel(ctx)), nil
	})
	h := v.(Health)
	h.Checks = maps.Clone(h.Checks) // each caller gets its own map
	return h
}

// healthRuns joins concurrent readiness checks of an issuer.
var healthRuns singleflight.Group

// runHealthChecks runs the readiness checks once (Health).
func (s *Server) runHealthChecks(ctx context.Context) Health {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	iss := s.cfg.Issuer.String()
	h := Health{Status: HealthReady, Issuer: iss, Checks: map[string]string{}}
	var errs []zap.Field
	for _, c := range s.healthChecks() {
		if err := c.check(ctx); err != nil {
			h.Checks[c.name] = "failed"
			if errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
				h.Checks[c.name] = "unavailable"
			}
			if c.advisory {
				h.Degraded = append(h.Degraded, c.name)
			} else {
				h.Failed = append(h.Failed, c.name)
			}
			errs = append(errs, zap.NamedError(c.name, err))
			continue
		}
		h.Checks[c.name] = "ok"
	}
	if len(h.Failed) > 0 {
		h.Status = HealthUnready
	}
	s.noteHealth(h, errs)
	return h
}

// noteHealth logs a readiness change of the issuer.
func (s *Server) noteHealth(h Health, errs []zap.Field) {
	v, _ := healthStates.LoadOrStore(h.Issuer, &healthState{})
	st := v.(*healthState)
	failed := ""
	for _, f := range h.Failed {
		failed += f + " "
	}
	for _, f := range h.Degraded {
		failed += "(" + f + ") "
	}
	st.mu.Lock()
	changed := !st.known && failed != "" || st.known && st.failed != failed
	st.known, st.failed = true, failed
	st.mu.Unlock()
	if !changed {
		return
	}
	switch {
	case h.Ready() && len(h.Degraded) == 0:
		s.logger.Info("ready again: every readiness check passes", zap.String("issuer", h.Issuer))
		return
	case h.Ready():
		s.logger.Warn("degraded: an advisory readiness check fails (still ready)",
			append([]zap.Field{zap.String("issuer", h.Issuer), zap.Strings("degraded", h.Degraded)}, errs...)...)
		return
	}
	s.logger.Error("not ready: a readiness check fails",
		append([]zap.Field{zap.String("issuer", h.Issuer), zap.Strings("failed", h.Failed)}, errs...)...)
}

// serveHealth is GET {issuer}/health: 200 with the report when ready, 503
// when not, never cached. A load balancer can poll it.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		oauth.Write(w, &oauth.Error{Status: http.StatusMethodNotAllowed, Code: oauth.CodeInvalidRequest,
			Description: "the health endpoint accepts only GET and HEAD"})
		return
	}
	h := s.Health(r.Context())
	status := http.StatusOK
	if !h.Ready() {
		status = http.StatusServiceUnavailable
	}
	oauth.WriteJSON(w, status, h)
}
