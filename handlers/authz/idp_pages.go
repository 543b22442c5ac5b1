package authz

import (
	"net/http"
	"net/url"

	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/handlers/oauth"
)

// The pages of a sign-in through an identity provider that did not end
// in a session. Each says what happened and what to do; when an app is
// waiting (a pending authorization request), a link takes the user back
// to it with the OAuth error the app should get (RFC 6749 §4.1.2.1), and
// another starts the sign-in again. Nothing is used up: the app's
// request may still be completed by signing in again.

// idpFailure shows a failure page; with a pending request it offers the
// way back to the app (with code) and to sign in again.
func (s *Server) idpFailure(w http.ResponseWriter, status int, title, message string, p *pendingAuthorization, code string) {
	data := messagePage{Title: title, Message: message, Status: status}
	if p != nil {
		data.Links = []pageLink{
			{Href: s.Endpoint(pathLogin) + "?" + url.Values{pendingFieldName: {s.pending.seal(*p)}}.Encode(), Text: "Try signing in again"},
			{Href: s.appErrorURL(*p, code, title), Text: "Return to " + p.clientName},
		}
	}
	s.pages.render(w, status, pageMessage, pageSecurity{}, data)
}

// appErrorURL is the app's redirect URI with an authorization error.
func (s *Server) appErrorURL(p pendingAuthorization, code, description string) string {
	v := url.Values{"error": {code}, "error_description": {description}, "iss": {s.cfg.Issuer.String()}}
	if p.state != "" {
		v.Set("state", p.state)
	}
	return withQuery(p.redirectURI, v)
}

// idpUnavailable shows that a provider cannot be reached (503).
func (s *Server) idpUnavailable(w http.ResponseWriter, c *idpClient, p *pendingAuthorization) {
	w.Header().Set("Retry-After", oauth.RetryAfterSeconds(oauth.UnavailableRetryAfter))
	s.idpFailure(w, http.StatusServiceUnavailable, "Sign-in service unavailable",
		c.cfg.DisplayName+" cannot be reached just now, so you cannot sign in through it. Try again in a few minutes; "+
			"if it lasts, tell your organization's service desk.", p, oauth.CodeTemporarilyUnavailable)
}

// idpInvalid shows that a provider's answer failed a check (502): an
// invalid, expired or foreign id_token, a refused code exchange.
func (s *Server) idpInvalid(w http.ResponseWriter, c *idpClient, p *pendingAuthorization, why error) {
	s.logger.Warn("identity provider answer refused", zap.String("identity_provider", c.cfg.Name), zap.Error(idpSafeError(why)))
	s.idpFailure(w, http.StatusBadGateway, "Sign-in could not be verified",
		"The answer from "+c.cfg.DisplayName+" could not be verified, so you are not signed in. Start again; "+
			"if it happens again, tell your organization's service desk (the time on this server and on the sign-in service may differ).",
		p, oauth.CodeServerError)
}

// idpProviderError shows an error the provider sent back instead of a
// code.
func (s *Server) idpProviderError(w http.ResponseWriter, c *idpClient, p *pendingAuthorization, code string) {
	s.logger.Info("identity provider answered with an error", zap.String("identity_provider", c.cfg.Name), zap.String("error", code))
	switch code {
	case "access_denied", "login_required", "interaction_required", "consent_required", "account_selection_required":
		s.idpFailure(w, http.StatusForbidden, "Not signed in",
			c.cfg.DisplayName+" did not sign you in ("+code+"): the sign-in was cancelled or refused. "+
				"Try again, or return to the app.", p, "access_denied")
	case "temporarily_unavailable", "server_error":
		s.idpUnavailable(w, c, p)
	default:
		s.idpFailure(w, http.StatusBadGateway, "Sign-in failed",
			c.cfg.DisplayName+" could not sign you in ("+code+"). Tell your organization's service desk; "+
				"this server may not be set up correctly there.", p, oauth.CodeServerError)
	}
}
