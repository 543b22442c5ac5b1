package authz

import (
	"context"
	"net/url"
)

// Signing out of a session that an identity provider started also signs
// out at the provider when it advertises an end_session_endpoint (OpenID
// Connect RP-Initiated Logout 1.0): the browser is sent there with
// client_id and post_logout_redirect_uri={issuer}/logout, which the
// operator registers at the provider. No id_token_hint is sent, since
// the provider's id_token is never kept; providers then ask the user to
// confirm, which is the safe default anyway.

// idpLogoutURL is where the browser goes after a session of the provider
// ended here; "" when the session is not a provider's, the provider is
// gone from the configuration, or it has no end_session_endpoint.
func (s *Server) idpLogoutURL(ctx context.Context, provider string) string {
	c := s.idps[provider]
	if c == nil {
		return ""
	}
	d, _, err := c.discover(ctx, idpDiscoveryTTL)
	if err != nil || d.meta.EndSession == "" {
		return ""
	}
	return withQuery(d.meta.EndSession, url.Values{
		"client_id":                {c.cfg.ClientID},
		"post_logout_redirect_uri": {s.Endpoint(pathLogout)},
	})
}
