// Package guard is the FHIR resource server's side of smartauth: the guard
// in front of the FHIR API. For every request under the FHIR base it
// answers CORS, passes the public CapabilityStatement (with the SMART
// markers added), checks the access token (with a cache that the store's
// revocation log keeps honest), decides the FHIR interaction against the
// token's scopes and the patient compartment, sets the placeholders and
// configured headers of an allowed request, and logs one audit entry per
// decision. Refusals are OperationOutcomes with a Bearer challenge.
//
// A Guard is built by New from the operator's Options and its run-time
// Deps (the FHIR base, the access-token profile, the client registry, the
// configured users and the reach rule, the store's revocation log and
// clients, the logger, the endpoint URLs it advertises). It never imports
// the authorization server, registration or the router.
package guard

import (
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/scopes"
)

// Options are the operator's settings of the guard (the Caddyfile's
// `guard { … }` block, handlers.Config.Guard). The zero value is the safe
// default: registered apps' origins for CORS, no operations beyond
// $everything and $export, nothing outside the patient compartment for
// patient/ scopes, no headers set upstream. What the guard needs at run
// time besides (the FHIR base, the token profile, the clients, the users,
// the store) comes through Deps.
type Options struct {
	// CORSOrigins are the origins browser apps may call the FHIR API from;
	// "*" allows any origin. Empty: the origins of the registered
	// clients' redirect and launch URIs.
	CORSOrigins []string
	// Operations allow FHIR operations besides $everything and $export,
	// which are built in. Every other operation is refused.
	Operations []OperationRule
	// OutsideCompartment are resource types outside the Patient
	// compartment that patient/ scopes may reach (Medication,
	// Organization, Practitioner, Location, …). Default: none.
	OutsideCompartment []string
	// Headers are request headers the guard sets before the request goes
	// on (values may hold placeholders such as {smart.patient}). The guard
	// removes them from every incoming request first, so a client cannot
	// forge them.
	Headers []HeaderRule
	// RevocationStaleness bounds how old the guard's view of the
	// revocation log may be while it serves tokens from its cache: once no
	// read of the log has succeeded for longer (the store unreachable from
	// this instance), a cached token gets the same 503 as a token that
	// cannot be checked, until a read succeeds again. A revocation
	// recorded meanwhile through another instance is then never missed for
	// longer than this. 0: DefaultRevocationStaleness. Negative: no bound
	// (cached tokens are served until they expire).
	RevocationStaleness time.Duration
}

// DefaultRevocationStaleness is Options.RevocationStaleness when it is 0.
const DefaultRevocationStaleness = time.Minute

// OperationRule allows an operation: Name (with its "$") on ResourceType
// ("*" for every type and the system level), needing Perms of the scopes
// on that type ("*" at the system level).
type OperationRule struct {
	Name         string
	ResourceType string
	Perms        scopes.Perms
}

// HeaderRule is a request header the guard sets upstream.
type HeaderRule struct {
	Name  string
	Value string
}

// ServeHTTP stands in front of every request under the FHIR base (those
// for which Guards is true): CORS, the public CapabilityStatement, the
// token check, the interaction and scope check with the patient
// compartment, placeholders and configured headers, and one audit entry
// per decision. Refusals are written here as an OperationOutcome with a
// Bearer challenge; allowed requests go to next.
func (g *Guard) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	start := time.Now() // the token's cache check and the decision's latency
	g.dropConfiguredHeaders(r.Header)
	if !strings.HasPrefix(r.URL.Path, g.fhirPath) || (len(r.URL.Path) > len(g.fhirPath) && r.URL.Path[len(g.fhirPath)] != '/') {
		// A spelling of the base that Caddy's path matchers (case-
		// insensitive, on the cleaned path) would still send upstream.
		if g.guardCORS(w, r) {
			return nil
		}
		g.refuse(w, &audit{method: r.Method, start: start}, badRequest("the request path must spell the FHIR base exactly, without dot segments or double slashes"))
		return nil
	}
	rel := strings.TrimPrefix(r.URL.Path[len(g.fhirPath):], "/")
	rp, fault := refuseOverride(r, rel)
	if fault != nil {
		if g.guardCORS(w, r) {
			return nil // a preflight: answered here, never forwarded
		}
		a := &audit{method: r.Method, reason: fault.Description, start: start}
		if p, f := g.authenticate(r, start); f == nil {
			a.p = p // who tried, when the token is good
		}
		g.refuse(w, a, fault)
		return nil
	}
	// Only the plain spelling is public: a percent-encoded one goes on to
	// the token check and parseRequestInteraction, which refuses it.
	if rel == "metadata" && r.URL.RawPath == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		return g.serveCapability(w, r, next)
	}
	if g.guardCORS(w, r) {
		return nil
	}
	a := &audit{method: r.Method, start: start}
	p, fault := g.authenticate(r, start)
	if fault != nil {
		a.reason = fault.Description
		g.refuse(w, a, fault)
		return nil
	}
	a.p = p
	in, fault := parseRequestInteraction(r, rel, rp)
	if fault != nil {
		a.reason = fault.Description
		g.refuse(w, a, fault)
		return nil
	}
	a.in = in
	pl, fault := g.authorizeRequest(r, p, in)
	if fault != nil {
		a.reason = fault.Description
		g.refuse(w, a, fault)
		return nil
	}
	g.setIdentity(r, p)
	if !pl.checkResponse && !pl.precheck {
		a.allowed, a.reason = true, pl.reason
		g.logDecision(a)
		return next.ServeHTTP(w, r)
	}
	return g.serveChecked(w, r, next, pl, a)
}

// dropConfiguredHeaders removes from an incoming request the headers the
// guard sets (guard { header … }), in every spelling a server could read
// as the same name: any case, and '_' or '.' for '-' (CGI, PHP and WSGI read
// X_Smart_Patient as X-Smart-Patient).
func (g *Guard) dropConfiguredHeaders(h http.Header) {
	if len(g.opts.Headers) == 0 {
		return
	}
	for name := range h {
		for _, c := range g.opts.Headers {
			if sameHeaderName(name, c.Name) {
				delete(h, name)
				break
			}
		}
	}
}

// Guards tells whether a request path is the FHIR API's: under the
// FHIR base's path compared as Caddy's path matchers do (case-insensitive,
// on the cleaned path), so that no spelling of a FHIR path that a later
// `reverse_proxy /fhir/*` would proxy gets past the guard. The guard then
// refuses any spelling but the exact one.
func (g *Guard) Guards(p string) bool {
	if g.fhirPath == "" {
		return true
	}
	c := strings.ToLower(path.Clean("/" + p))
	base := strings.ToLower(g.fhirPath)
	return c == base || strings.HasPrefix(c, base+"/") || strings.HasPrefix(strings.ToLower(p), base+"/")
}

// A refusal of the guard is an *oauth.Error: a status, the Bearer error
// code ("" for a missing token), the scope needed (insufficient_scope) and
// a description. It is written as an OperationOutcome with a Bearer
// challenge (writeGuardFault).

// issueCode is the OperationOutcome issue code of a refusal's status.
func issueCode(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "login"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusBadRequest:
		return "invalid"
	case http.StatusMethodNotAllowed:
		return "not-supported"
	case http.StatusRequestEntityTooLarge:
		return "too-costly"
	case http.StatusServiceUnavailable:
		return "transient"
	default:
		return "exception"
	}
}

// storeUnavailable answers a request whose token cannot be checked
// because the store is unreachable (store.ErrUnavailable): 503 with
// Retry-After and no Bearer challenge, so that the app keeps its token and
// retries instead of signing the user in again.
func storeUnavailable() *oauth.Error {
	return &oauth.Error{Status: http.StatusServiceUnavailable, RetryAfter: oauth.UnavailableRetryAfter,
		Description: "the access token cannot be checked now (the authorization server's storage is unavailable); retry later"}
}

// missingToken refuses a request that carried no access token (RFC 6750
// §3.1: no error code then).
func missingToken(desc string) *oauth.Error {
	return &oauth.Error{Status: http.StatusUnauthorized, Description: desc}
}

// invalidToken refuses an access token that is not valid.
func invalidToken(desc string) *oauth.Error {
	return &oauth.Error{Status: http.StatusUnauthorized, Code: oauth.CodeInvalidToken, Description: desc}
}

// forbidden refuses a request the token's scopes do not allow; scope is
// what it would need.
func forbidden(scope, desc string) *oauth.Error {
	return &oauth.Error{Status: http.StatusForbidden, Code: oauth.CodeInsufficientScope, Scope: scope, Description: desc}
}

// badRequest refuses a malformed request.
func badRequest(desc string) *oauth.Error {
	return &oauth.Error{Status: http.StatusBadRequest, Code: oauth.CodeInvalidRequest, Description: desc}
}

// refuse writes a refusal with its Bearer challenge (RFC 6750 §3) and an
// OperationOutcome, and logs the decision.
func (g *Guard) refuse(w http.ResponseWriter, a *audit, f *oauth.Error) {
	a.allowed, a.fault = false, f
	g.logDecision(a)
	g.writeGuardFault(w, f)
}

// writeGuardFault writes a refusal without logging it: an OperationOutcome
// and, for a 401 or a refusal with an error code, a Bearer challenge whose
// realm is the FHIR base.
func (g *Guard) writeGuardFault(w http.ResponseWriter, f *oauth.Error) {
	if f.Status == http.StatusUnauthorized || f.Code != "" {
		w.Header().Set("WWW-Authenticate", oauth.BearerChallenge(g.base, f.Code, f.Description, f.Scope))
	}
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", oauth.RetryAfterSeconds(f.RetryAfter))
	}
	writeOutcome(w, f.Status, issueCode(f.Status), f.Description)
}

// setIdentity sets the placeholders of an allowed request and the headers
// the configuration asks for.
func (g *Guard) setIdentity(r *http.Request, p *principal) {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		return
	}
	// Empty values are left unset: an unset placeholder reads as "".
	for _, kv := range [...][2]string{
		{"smart.patient", p.patient}, {"smart.encounter", p.encounter},
		{"smart.user", p.fhirUser}, {"smart.sub", p.sub},
		{"smart.client_id", p.clientID}, {"smart.scope", p.scope},
		{"smart.jti", p.jti}, {"http.auth.user.id", p.sub},
	} {
		if kv[1] != "" {
			repl.Set(kv[0], kv[1])
		}
	}
	for _, h := range g.opts.Headers {
		if v := repl.ReplaceAll(h.Value, ""); v != "" {
			r.Header.Set(h.Name, v)
		}
	}
}

// operationOutcome is a minimal FHIR OperationOutcome.
type operationOutcome struct {
	ResourceType string         `json:"resourceType"`
	Issue        []outcomeIssue `json:"issue"`
}

// outcomeIssue is one issue of an OperationOutcome.
type outcomeIssue struct {
	Severity    string `json:"severity"`
	Code        string `json:"code"`
	Diagnostics string `json:"diagnostics,omitempty"`
}

// writeOutcome writes a FHIR OperationOutcome with one error issue.
func writeOutcome(w http.ResponseWriter, status int, code, diagnostics string) {
	w.Header().Set("Cache-Control", "no-store")
	oauth.WriteJSONAs(w, status, "application/fhir+json", operationOutcome{
		ResourceType: "OperationOutcome",
		Issue:        []outcomeIssue{{Severity: "error", Code: code, Diagnostics: diagnostics}},
	})
}
