package guard

import (
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/smartcaddy/smartauth/handlers/oauth"
)

// audit is one guard decision, logged once: who (client, user, patient),
// what (method, interaction, resource type), and the outcome with its
// reason. It never holds the token.
type audit struct {
	method  string
	p       *principal
	in      *interaction
	allowed bool
	reason  string
	fault   *oauth.Error // the refusal, for its metrics class
	start   time.Time    // when the decision started (zero: metrics off)
}

// logDecision writes the audit entry of a decision through Caddy's logger
// (logger "http.handlers.smart_auth.guard", message "guard decision", at
// INFO).
func (g *Guard) logDecision(a *audit) {
	g.recordDecision(a)
	ce := g.gs.audit.Check(zapcore.InfoLevel, "guard decision")
	if ce == nil {
		return
	}
	fields := make([]zap.Field, 0, 9)
	fields = append(fields, zap.Bool("allowed", a.allowed), zap.String("reason", a.reason), zap.String("method", a.method))
	if a.p != nil {
		fields = append(fields, zap.String("client_id", a.p.clientID), zap.String("user", a.p.sub), zap.String("patient", a.p.patient))
	}
	if a.in != nil {
		fields = append(fields, zap.String("interaction", a.in.name), zap.String("resource_type", a.in.resourceType))
		if a.in.op != "" {
			fields = append(fields, zap.String("operation", a.in.op))
		}
	}
	ce.Write(fields...)
}

// recordDecision counts a decision in the metrics (when on).
func (g *Guard) recordDecision(a *audit) {
	if g.metrics == nil {
		return
	}
	ix, status, code := "", 0, ""
	if a.in != nil {
		ix = a.in.name
	}
	if a.fault != nil {
		status, code = a.fault.Status, a.fault.Code
	}
	g.metrics.Decision(a.allowed, ix, status, code, a.start)
}
