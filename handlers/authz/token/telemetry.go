package token

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/smartcaddy/smartauth/handlers/internal/throttle"
	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/internal/audit"
)

// recordToken counts and times a token endpoint answer (Options.Metrics)
// and writes its audit entry (Options.Audit): who (client, user, remote
// address), the grant, and the scope issued or the refusal's error. Never
// a token.
func (s *Service) recordToken(ex *tokenExchange, resp *tokenResponse, fault *oauth.Error, start time.Time) {
	outcome := "issued"
	if fault != nil {
		outcome = fault.Code
	}
	if ex.clientID == "" { // refused before the client was known: the one it claimed
		if u, _, ok := ex.r.BasicAuth(); ok {
			ex.clientID, _ = url.QueryUnescape(u)
		}
	}
	s.cfg.Metrics.Token(string(ex.grantType), ex.clientID, outcome, time.Since(start))
	if s.cfg.Audit == nil {
		return
	}
	e := audit.Event{Action: audit.ActionTokenIssued, Outcome: audit.OutcomeSuccess, Client: ex.clientID,
		Remote: throttle.ClientIP(ex.r), Detail: clip(string(ex.grantType))}
	if fault != nil {
		e.Action, e.Outcome, e.Reason = audit.ActionTokenRefused, faultOutcome(fault), fault.Code+": "+fault.Description
		e.Client = clip(e.Client) // as the request named it, unchecked
	} else {
		e.User, e.Patient, e.Scope = resp.subject, resp.Patient, resp.Scope
	}
	s.cfg.Audit.Record(e)
}

// faultOutcome is the audit outcome of an OAuth refusal: an error of the
// server (5xx) or a refusal of the request.
func faultOutcome(f *oauth.Error) audit.Outcome {
	if f.Status >= http.StatusInternalServerError {
		return audit.OutcomeError
	}
	return audit.OutcomeRefused
}

// recordRevocation writes the audit entry of a request to the revocation
// endpoint (RFC 7009): the client, what kind of token was revoked ("" when
// none was found or it was refused) and the outcome.
func (s *Service) recordRevocation(r *http.Request, clientID, kind string, outcome audit.Outcome, reason string) {
	target := "token not found: nothing revoked"
	if kind != "" {
		target = kind
	}
	if outcome != audit.OutcomeSuccess {
		target = ""
	}
	s.cfg.Audit.Record(audit.Event{Action: audit.ActionRevocation, Outcome: outcome, Client: clientID,
		Remote: throttle.ClientIP(r), Detail: "revocation endpoint", Target: target, Reason: reason})
}

// clip bounds a value the request supplied for the audit trail: at most
// 128 bytes, valid UTF-8.
func clip(v string) string {
	if len(v) > 128 {
		v = v[:128]
	}
	return strings.ToValidUTF8(v, "?")
}
