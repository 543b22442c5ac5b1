package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	auditlog "github.com/smartcaddy/smartauth/internal/audit"
	"github.com/smartcaddy/smartauth/store"
)

func init() {
	caddy.RegisterModule(API{})
}

// BasePath is where the admin API's routes are, on Caddy's admin endpoint.
const BasePath = "/smart-auth/"

// API is the Caddy admin module admin.api.smart_auth. Caddy loads every
// registered admin.api module into its admin endpoint, which applies its
// own access controls (origins, remote admin's client certificates and
// permissions) before any route here runs.
type API struct{}

// CaddyModule returns the Caddy module information.
func (API) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.smart_auth",
		New: func() caddy.Module { return new(API) },
	}
}

// Routes returns the admin route: everything under BasePath.
func (API) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: BasePath, Handler: caddy.AdminHandlerFunc(serve)}}
}

// handlerFunc is a route of the admin API: it answers for a target, or
// returns an error that Caddy's admin endpoint writes as JSON.
type handlerFunc func(w http.ResponseWriter, r *http.Request, t *Target) error

// routes maps method and path patterns to the routes. The issuer is the
// `issuer` query parameter (optional with a single running issuer).
var routes = map[string]handlerFunc{
	"GET /smart-auth/health":                       serveHealth,
	"GET /smart-auth/clients":                      listClients,
	"POST /smart-auth/clients":                     registerClient,
	"DELETE /smart-auth/clients/{client_id}":       removeClient,
	"POST /smart-auth/clients/{client_id}/revoke":  revokeClient,
	"GET /smart-auth/users/{user}/grants":          listGrants,
	"POST /smart-auth/users/{user}/revoke":         revokeUser,
	"POST /smart-auth/families/{family_id}/revoke": revokeFamily,
	"GET /smart-auth/keys":                         showKeys,
	"POST /smart-auth/keys/rotate":                 rotateKeys,
	"GET /smart-auth/issuers":                      nil, // listIssuers: needs no target
}

// mux routes the requests; built once from routes.
var mux = func() *http.ServeMux {
	m := http.NewServeMux()
	for pattern, h := range routes {
		m.Handle(pattern, route(h))
	}
	return m
}()

// errSlot carries a route's error from the mux back to serve.
type errSlot struct{ err error }

// errSlotKey is the context key of the request's errSlot.
type errSlotKey struct{}

// route adapts a handlerFunc to the mux: it finds the target and stores
// the route's error for serve to return.
func route(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slot := r.Context().Value(errSlotKey{}).(*errSlot)
		if h == nil {
			slot.err = listIssuers(w)
			return
		}
		t, err := targetOf(r)
		if err != nil {
			slot.err = err
			return
		}
		slot.err = h(w, r, t)
	})
}

// serve is the admin route's handler: it routes by method and path and
// returns errors as caddy.APIError, which the admin endpoint writes as
// {"error": "..."} with the status.
func serve(w http.ResponseWriter, r *http.Request) error {
	if _, pattern := mux.Handler(r); pattern == "" {
		return noRoute(r)
	}
	slot := &errSlot{}
	mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), errSlotKey{}, slot)))
	return slot.err
}

// noRoute is the error for a request no route takes: 405 when the path
// exists for another method, 404 otherwise.
func noRoute(r *http.Request) error {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		return apiError(http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: method not allowed (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", ")))
	}
	return apiError(http.StatusNotFound, fmt.Sprintf("no smart-auth admin route %s %s", r.Method, r.URL.Path))
}

// apiError is an error answer with a status and a message safe to send.
func apiError(status int, msg string) error {
	return caddy.APIError{HTTPStatus: status, Err: errors.New(msg), Message: msg}
}

// storeError maps a store failure to an answer: 503 when the store is
// unavailable now, 500 otherwise. The message names what failed, not the
// store's error (which is logged).
func storeError(t *Target, what string, err error) error {
	t.Logger.Error("admin API: "+what, zap.Error(err))
	if errors.Is(err, store.ErrUnavailable) {
		return apiError(http.StatusServiceUnavailable, what+": the store is unavailable; try again")
	}
	return apiError(http.StatusInternalServerError, what+": internal error (see the log)")
}

// targetOf finds the issuer a request names (query parameter issuer), or
// the only running one when it names none.
func targetOf(r *http.Request) (*Target, error) {
	iss := r.URL.Query().Get("issuer")
	if iss != "" {
		if t := lookup(iss); t != nil {
			return t, nil
		}
		return nil, apiError(http.StatusNotFound, fmt.Sprintf("no running smart_auth handler has issuer %q", iss))
	}
	all := targets()
	switch len(all) {
	case 0:
		return nil, apiError(http.StatusNotFound, "no smart_auth handler is running")
	case 1:
		return all[0], nil
	}
	names := make([]string, 0, len(all))
	for _, t := range all {
		names = append(names, t.Issuer)
	}
	return nil, apiError(http.StatusBadRequest, "several issuers are running: name one with ?issuer= ("+strings.Join(names, ", ")+")")
}

// writeJSON answers with v as JSON, never cached.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, err = w.Write(append(b, '\n'))
	return err
}

// IssuerInfo describes a running issuer (GET /smart-auth/issuers).
type IssuerInfo struct {
	Issuer   string `json:"issuer"`
	FHIRBase string `json:"fhir_base"`
	Storage  string `json:"storage"`
	// StorageDir is the Badger directory; absent for PostgreSQL (whose
	// DSN is a secret).
	StorageDir string `json:"storage_dir,omitempty"`
}

// listIssuers answers GET /smart-auth/issuers.
func listIssuers(w http.ResponseWriter) error {
	out := []IssuerInfo{}
	for _, t := range targets() {
		out = append(out, IssuerInfo{Issuer: t.Issuer, FHIRBase: t.FHIRBase, Storage: t.Storage, StorageDir: t.StorageDir})
	}
	return writeJSON(w, http.StatusOK, out)
}

// serveHealth answers GET /smart-auth/health: the site's readiness
// report, 200 when ready and 503 when not.
func serveHealth(w http.ResponseWriter, r *http.Request, t *Target) error {
	ready, report := t.Health(r.Context())
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	return writeJSON(w, status, report)
}

// audit logs an admin action: who asked (the admin endpoint's view of the
// caller: remote address, Origin, client certificate subject) and what
// was done. Never a secret.
func audit(t *Target, r *http.Request, what string, fields ...zap.Field) {
	who := []zap.Field{zap.String("remote_addr", r.RemoteAddr)}
	if o := r.Header.Get("Origin"); o != "" {
		who = append(who, zap.String("origin", o))
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		who = append(who, zap.String("client_cert_subject", r.TLS.PeerCertificates[0].Subject.String()))
	}
	t.Logger.Info("admin: "+what, append(append(who, zap.String("issuer", t.Issuer)), fields...)...)
	if t.Audit != nil {
		t.Audit.Record(auditEvent(r, what, who, fields))
	}
}

// auditEvent is an admin action as an audit trail event: the caller (who)
// as the admin agent, the action's client, user and other identifiers
// from its log fields. Revocations are ActionRevocation, the rest
// ActionAdmin.
func auditEvent(r *http.Request, what string, who, fields []zap.Field) auditlog.Event {
	e := auditlog.Event{Action: auditlog.ActionAdmin, Outcome: auditlog.OutcomeSuccess, Detail: what}
	if strings.Contains(what, "revoked") {
		e.Action = auditlog.ActionRevocation
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		e.Remote = host
	}
	var admin, target []string
	for _, f := range who {
		admin = append(admin, f.Key+"="+f.String)
	}
	for _, f := range fields {
		switch {
		case f.Key == "client_id":
			e.Client = f.String
		case f.Key == "user":
			e.User = f.String
		case f.Type == zapcore.StringType:
			target = append(target, f.Key+"="+f.String)
		}
	}
	e.Admin, e.Target = strings.Join(admin, " "), strings.Join(target, " ")
	return e
}

// Interface guards
var _ caddy.AdminRouter = API{}
