// Package audit is smart_auth's audit trail: one structured log entry
// (who, what, when, outcome) per security-relevant action of the
// authorization server — token issuance and refusals at the token
// endpoint, sign-ins, consents, revocations, registrations and admin
// actions — and, when configured, the same as FHIR R4 AuditEvent
// resources written to a file or POSTed to a FHIR server (sink.go).
//
// An Event never holds a secret: no token, code, client secret, password
// nor key; only identifiers (client id, user name, patient id, jti,
// refresh-token family id) and OAuth error codes with their descriptions.
// The guard's per-request decisions have their own entries
// (handlers/guard) and are not part of this trail.
//
// A nil *Trail records nothing.
package audit

import (
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Action is what an audited event did.
type Action string

// The audited actions.
const (
	// ActionSignIn is a user's sign-in (password form or trusted
	// identity).
	ActionSignIn Action = "sign-in"
	// ActionTokenIssued is a successful token request.
	ActionTokenIssued Action = "token-issued"
	// ActionTokenRefused is a token request refused with an OAuth error.
	ActionTokenRefused Action = "token-refused"
	// ActionConsent is a user's decision on a consent page (allow or
	// deny).
	ActionConsent Action = "consent"
	// ActionRevocation is a revocation: a token at the revocation
	// endpoint (RFC 7009), a sign-out of an app on the management page,
	// or an operator's revocation through the admin API.
	ActionRevocation Action = "revocation"
	// ActionRegistration is a dynamic client registration, update or
	// deletion (RFC 7591/7592).
	ActionRegistration Action = "registration"
	// ActionAdmin is an action through Caddy's admin API (other than a
	// revocation).
	ActionAdmin Action = "admin"
)

// Outcome is how an audited event ended.
type Outcome string

// The outcomes.
const (
	// OutcomeSuccess: done.
	OutcomeSuccess Outcome = "success"
	// OutcomeRefused: refused for the requester's fault (bad credentials,
	// invalid request, denied consent).
	OutcomeRefused Outcome = "refused"
	// OutcomeError: failed on the server's side (store unavailable).
	OutcomeError Outcome = "error"
)

// Event is one audited action. Only Action and Outcome are required.
type Event struct {
	// Time is when it happened; zero: when Record is called.
	Time    time.Time
	Action  Action
	Outcome Outcome
	// Client is the client id concerned (the requester at the token
	// endpoint, the app consented to, the client registered).
	Client string
	// User is the user concerned (who signed in, who consented, whose
	// token was issued or revoked).
	User string
	// Patient is the patient in context (token issuance), if any.
	Patient string
	// Admin is who acted through the admin API (remote address, client
	// certificate subject), for admin actions.
	Admin string
	// Remote is the requester's IP address.
	Remote string
	// Detail says what was done, briefly ("password", "client_credentials",
	// "client removed", …).
	Detail string
	// Scope is the scope granted or asked for.
	Scope string
	// Target identifies what was acted on besides the client and the user
	// (a jti, a family id, a kind of revocation).
	Target string
	// Reason is why it was refused: an OAuth error code and its
	// description.
	Reason string
}

// Trail writes audit entries for one issuer: to the module's logger
// (child "audit", message "audit", at INFO) and, when set, to a Sink. It
// is immutable and safe for concurrent use.
type Trail struct {
	logger *zap.Logger
	issuer string
	sink   Sink
}

// Sink receives every event after it is logged (a FHIR AuditEvent
// writer). Send must not block.
type Sink interface {
	Send(issuer string, e Event)
}

// New returns a Trail that logs to logger's child "audit" and forwards to
// sink (nil: none).
func New(logger *zap.Logger, issuer string, sink Sink) *Trail {
	if logger == nil {
		logger = zap.NewNop()
	}
	return &Trail{logger: logger.Named("audit"), issuer: issuer, sink: sink}
}

// Record writes an event.
func (t *Trail) Record(e Event) {
	if t == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if ce := t.logger.Check(zapcore.InfoLevel, "audit"); ce != nil {
		ce.Write(e.fields()...)
	}
	if t.sink != nil {
		t.sink.Send(t.issuer, e)
	}
}

// fields are the event's log fields; empty ones are left out.
func (e Event) fields() []zap.Field {
	f := make([]zap.Field, 0, 12)
	f = append(f, zap.String("action", string(e.Action)), zap.String("outcome", string(e.Outcome)), zap.Time("at", e.Time))
	for _, kv := range [...][2]string{
		{"client_id", e.Client}, {"user", e.User}, {"patient", e.Patient}, {"admin", e.Admin},
		{"remote", e.Remote}, {"detail", e.Detail}, {"scope", e.Scope}, {"target", e.Target}, {"reason", e.Reason},
	} {
		if kv[1] != "" {
			f = append(f, zap.String(kv[0], kv[1]))
		}
	}
	return f
}
