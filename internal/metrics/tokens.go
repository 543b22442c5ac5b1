package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The label values of smart_auth_tokens_total.
var (
	grantTypes    = [...]string{"authorization_code", "refresh_token", "client_credentials", labelOther}
	tokenOutcomes = [...]string{"issued", "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
		"unsupported_grant_type", "invalid_scope", "temporarily_unavailable", "server_error", labelOther}
)

// Client label values besides the configured clients' ids.
const (
	// ClientRegistered is the client label of every client id that is not
	// a configured client: dynamically registered clients (their number
	// is not bounded) and ids that name no client.
	ClientRegistered = "registered"
	// ClientNone is the client label of a request that named no client.
	ClientNone = "none"
)

// tokenCells are one client label's counters, by grant type and outcome.
type tokenCells [len(grantTypes)][len(tokenOutcomes)]counterCell

// Tokens records the token endpoint of one issuer: its configured
// clients get their own client label, every other client
// ClientRegistered. It is immutable after Set.Tokens.
type Tokens struct {
	set       *Set
	byClient  map[string]*tokenCells               // configured clients
	other     *tokenCells                          // ClientRegistered
	none      *tokenCells                          // ClientNone
	durations [len(grantTypes)]prometheus.Observer // by grant type
}

// Tokens returns the token endpoint's recorder for an issuer whose
// configured clients are configured; nil (recording nothing) on a nil Set.
func (s *Set) Tokens(configured []string) *Tokens {
	if s == nil {
		return nil
	}
	t := &Tokens{set: s, byClient: make(map[string]*tokenCells, len(configured)), other: new(tokenCells), none: new(tokenCells)}
	for _, id := range configured {
		t.byClient[id] = new(tokenCells)
	}
	for i, g := range grantTypes {
		t.durations[i] = s.tokenDuration.WithLabelValues(g)
	}
	return t
}

// Token records one answer of the token endpoint: the grant type asked
// for, the client id (as the request named it; "" when none), the outcome
// ("issued" or the OAuth error code) and the time taken.
func (t *Tokens) Token(grant, client, outcome string, d time.Duration) {
	if t == nil {
		return
	}
	gi, oi := index(grantTypes[:], grant), index(tokenOutcomes[:], outcome)
	cells, label := t.byClient[client], client
	switch {
	case client == "":
		cells, label = t.none, ClientNone
	case cells == nil:
		cells, label = t.other, ClientRegistered
	}
	cells[gi][oi].get(func() prometheus.Counter {
		return t.set.tokens.WithLabelValues(grantTypes[gi], label, tokenOutcomes[oi])
	}).Inc()
	t.durations[gi].Observe(d.Seconds())
}
