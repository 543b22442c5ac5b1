package register

import (
	"net/http"

	"github.com/smartcaddy/smartauth/handlers/internal/throttle"
	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/internal/audit"
)

// id is the registered client's id; "" for none (nil).
func (c *clientInformation) id() string {
	if c == nil {
		return ""
	}
	return c.ClientID
}

// refuseNew counts and audits a refused registration, then writes its
// error (refuseRegistration).
func (s *Registrar) refuseNew(w http.ResponseWriter, r *http.Request, f *oauth.Error) {
	s.recordRegistration(r, "", f)
	s.refuseRegistration(w, f)
}

// recordRegistration counts a registration (Options.Metrics: outcome
// "registered" or the error code) and writes its audit entry: the new
// client id or the refusal, the remote address. Never the secret nor the
// registration access token.
func (s *Registrar) recordRegistration(r *http.Request, clientID string, f *oauth.Error) {
	outcome := "registered"
	if f != nil {
		outcome = f.Code
	}
	s.opts.Metrics.Registration(outcome)
	if s.opts.Audit == nil {
		return
	}
	e := audit.Event{Action: audit.ActionRegistration, Outcome: audit.OutcomeSuccess, Client: clientID,
		Remote: throttle.ClientIP(r), Detail: "client registered"}
	if f != nil {
		e.Outcome, e.Detail, e.Reason = audit.OutcomeRefused, "registration refused", f.Code+": "+f.Description
		if f.Status >= http.StatusInternalServerError {
			e.Outcome = audit.OutcomeError
		}
	}
	s.opts.Audit.Record(e)
}
