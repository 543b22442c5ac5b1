package authz

import (
	"net/http"
	"strings"

	"github.com/smartcaddy/smartauth/handlers/internal/throttle"
	"github.com/smartcaddy/smartauth/internal/audit"
)

// Sign-in methods and outcomes, as the metrics and the audit trail name
// them.
const (
	signInPassword   = "password"
	signInTrusted    = "trusted_identity"
	outcomeOK        = "ok"
	outcomeFailed    = "failed"
	outcomeThrottled = "throttled"
)

// recordSignIn counts a sign-in (Options.Metrics) and writes its audit
// entry: the method, the user name given, the remote address and the
// outcome. Never the password.
func (s *Server) recordSignIn(r *http.Request, method, user, outcome string) {
	s.cfg.Metrics.SignIn(method, outcome)
	if s.cfg.Audit == nil {
		return
	}
	e := audit.Event{Action: audit.ActionSignIn, Outcome: audit.OutcomeSuccess, User: user,
		Remote: throttle.ClientIP(r), Detail: method}
	switch outcome {
	case outcomeFailed:
		e.Outcome, e.Reason = audit.OutcomeRefused, "unknown user or wrong password"
		if method == signInTrusted {
			e.Reason = "the trusted identity names no configured user"
		}
	case outcomeThrottled:
		e.Outcome, e.Reason = audit.OutcomeRefused, "throttled: too many failed sign-ins"
	}
	s.cfg.Audit.Record(e)
}

// recordConsent writes the audit entry of a user's consent decision: the
// scopes granted (nil: denied), the client, the patient in context.
func (s *Server) recordConsent(r *http.Request, fs *flowSession, p pendingAuthorization, granted []string) {
	if s.cfg.Audit == nil {
		return
	}
	e := audit.Event{Action: audit.ActionConsent, Outcome: audit.OutcomeSuccess, User: fs.rec.User,
		Client: p.clientID, Patient: p.context.Patient, Remote: throttle.ClientIP(r), Detail: "allowed",
		Scope: strings.Join(granted, " ")}
	if granted == nil {
		e.Outcome, e.Detail, e.Reason = audit.OutcomeRefused, "denied", "access_denied: the user denied access"
	}
	s.cfg.Audit.Record(e)
}
