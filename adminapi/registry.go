// Package adminapi is smart_auth's part of Caddy's admin API: the module
// admin.api.smart_auth, which Caddy loads into its admin endpoint (with
// that endpoint's access controls), serving routes under /smart-auth/ to
// list, register and remove clients, revoke tokens (of a client, of a
// user, of one refresh-token family), list a user's grants, show and
// rotate the signing keys, and report readiness.
//
// The running smart_auth handlers register themselves here, by issuer,
// as a Target (Register at Provision, the returned function at Cleanup).
// During a config reload the old and the new handler of an issuer are
// both registered for a moment; the newest one answers.
//
// The package imports the store and the key ring, never the handlers nor
// the module (internal/depcheck): the module fills a Target with what
// the admin API needs of a running handler.
package adminapi

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	auditlog "github.com/smartcaddy/smartauth/internal/audit"
	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/store"
)

// Target is what the admin API acts on for one running issuer.
type Target struct {
	// Issuer is the issuer URL, as in its tokens.
	Issuer string
	// FHIRBase is the guarded FHIR base URL.
	FHIRBase string
	// Storage names the kind of store: "badger" or "postgres".
	Storage string
	// StorageDir is the Badger directory (absolute, clean), "" for
	// PostgreSQL: the command line matches its --storage against it.
	StorageDir string
	// Store is the issuer's store.
	Store store.Store
	// Keys is the issuer's signing key ring.
	Keys *keys.Ring
	// Configured are the clients from the configuration, by id.
	Configured map[string]*store.Client
	// Users tells whether a user name is a configured user.
	Users func(name string) bool
	// RevocationPeriod is how long a revocation of every token of a
	// client, a user or a family is kept by default: the longest token
	// lifetime plus a margin.
	RevocationPeriod time.Duration
	// Register registers a client from the RFC 7591 metadata in the
	// request's body, with the registration endpoint's checks, and
	// returns the registration response; its error is a caddy.APIError.
	Register func(w http.ResponseWriter, r *http.Request) (any, error)
	// Health runs the readiness checks: ready, and the report to send.
	Health func(ctx context.Context) (ready bool, report any)
	// Logger receives the admin actions (who, what; never a secret).
	Logger *zap.Logger
	// Audit also records the admin actions in the issuer's audit trail
	// (and its FHIR AuditEvents); nil: the log entry only.
	Audit *auditlog.Trail
	// Config identifies the Caddy config the handler was provisioned in
	// (a comparable value, the same for every handler of one config;
	// nil for none), so that a handler can find the others of its config
	// (Guarding) and not those of a config being replaced by a reload.
	Config any
}

// registry holds the running targets: per issuer, in registration order,
// so that the newest answers.
var registry = struct {
	sync.Mutex
	by map[string][]*Target
}{by: map[string][]*Target{}}

// Register makes a running handler's target reachable through the admin
// API and returns the function that removes it (call it at Cleanup; it
// is safe to call more than once). Of several targets with one issuer
// (a config reload in progress), the last registered answers.
func Register(t *Target) (unregister func()) {
	iss := canonicalIssuer(t.Issuer)
	registry.Lock()
	registry.by[iss] = append(registry.by[iss], t)
	registry.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			registry.Lock()
			defer registry.Unlock()
			list := slices.DeleteFunc(registry.by[iss], func(x *Target) bool { return x == t })
			if len(list) == 0 {
				delete(registry.by, iss)
				return
			}
			registry.by[iss] = list
		})
	}
}

// Guarding returns the issuers of the registered targets of config
// (Target.Config, not nil) that guard fhirBase (compared without a
// trailing slash), each once, sorted.
func Guarding(config any, fhirBase string) []string {
	if config == nil {
		return nil
	}
	base := strings.TrimSuffix(fhirBase, "/")
	registry.Lock()
	defer registry.Unlock()
	var out []string
	for iss, list := range registry.by {
		for _, t := range list {
			if t.Config == config && strings.TrimSuffix(t.FHIRBase, "/") == base {
				out = append(out, iss)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// canonicalIssuer is an issuer URL without a trailing slash, as the
// registry keys it and as a caller may name it.
func canonicalIssuer(iss string) string {
	return strings.TrimSuffix(iss, "/")
}

// targets returns the newest target of each running issuer, by issuer.
func targets() []*Target {
	registry.Lock()
	defer registry.Unlock()
	out := make([]*Target, 0, len(registry.by))
	for _, list := range registry.by {
		out = append(out, list[len(list)-1])
	}
	slices.SortFunc(out, func(a, b *Target) int { return strings.Compare(a.Issuer, b.Issuer) })
	return out
}

// lookup returns the newest target of an issuer, or nil.
func lookup(iss string) *Target {
	registry.Lock()
	defer registry.Unlock()
	list := registry.by[canonicalIssuer(iss)]
	if len(list) == 0 {
		return nil
	}
	return list[len(list)-1]
}
