package handlers

import (
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// guard stands in front of every request under the FHIR base. The
// CapabilityStatement (/metadata) is public; everything else needs a valid
// access token. Until token checking is built, the guard fails closed.
func (s *Server) guard(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if r.URL.Path == s.fhirPath+"/metadata" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		return next.ServeHTTP(w, r)
	}
	if allowAnyOrigin(w, r, "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS") {
		return nil
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="`+s.cfg.FHIRBase.String()+`"`)
	writeOutcome(w, http.StatusUnauthorized, "login", "an access token is required")
	return nil
}

// operationOutcome is a minimal FHIR OperationOutcome.
type operationOutcome struct {
	ResourceType string         `json:"resourceType"`
	Issue        []outcomeIssue `json:"issue"`
}

type outcomeIssue struct {
	Severity    string `json:"severity"`
	Code        string `json:"code"`
	Diagnostics string `json:"diagnostics,omitempty"`
}

// writeOutcome writes a FHIR OperationOutcome with one error issue.
func writeOutcome(w http.ResponseWriter, status int, code, diagnostics string) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSONAs(w, status, "application/fhir+json", operationOutcome{
		ResourceType: "OperationOutcome",
		Issue:        []outcomeIssue{{Severity: "error", Code: code, Diagnostics: diagnostics}},
	})
}

// GuardOptions configure the guard.
type GuardOptions struct{}
