package handlers_test

import (
	"context"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// idTokenAlg reads the alg header of an id_token.
func idTokenAlg(t *testing.T, raw string) string {
	t.Helper()
	msg, err := jws.Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	alg, _ := msg.Signatures()[0].ProtectedHeaders().Algorithm()
	return alg.String()
}

// A client that registers id_token_signed_response_alg ES256 gets ES256
// id_tokens, from the code exchange and from refreshes, verifiable with
// the published JWKS; a client that registers nothing gets RS256, the
// OpenID default; any other value is refused at registration.
func TestIDTokenSignedResponseAlg(t *testing.T) {
	e := newRegEnv(t, false)
	r := e.register(map[string]any{"redirect_uris": []string{tkRedirect}, "token_endpoint_auth_method": "none",
		"scope": "openid fhirUser profile offline_access patient/*.rs", "grant_types": []string{"authorization_code", "refresh_token"},
		"id_token_signed_response_alg": "ES256"})
	if r.status != 201 || r.str("id_token_signed_response_alg") != "ES256" {
		t.Fatalf("register: %d %v", r.status, r.body)
	}
	id := r.str("client_id")
	tok := e.exchange(e.seedCode(codeOptions{client: id}))
	if tok.status != 200 {
		t.Fatalf("code exchange: %d %v", tok.status, tok.body)
	}
	for step, raw := range map[string]string{"code": tok.str("id_token"), "refresh": e.refresh(tok.str("refresh_token"), nil, nil).str("id_token")} {
		if got := idTokenAlg(t, raw); got != "ES256" {
			t.Fatalf("%s: id_token alg %s, want ES256", step, got)
		}
		ctx := context.Background()
		v := oidc.NewVerifier(e.issuer, oidc.NewRemoteKeySet(ctx, e.issuer+"/jwks"), &oidc.Config{ClientID: id, SupportedSigningAlgs: []string{oidc.ES256}})
		if _, err := v.Verify(ctx, raw); err != nil {
			t.Fatalf("%s: the ES256 id_token does not verify against the JWKS: %v", step, err)
		}
	}

	if got := idTokenAlg(t, e.exchange(e.seedCode(codeOptions{})).str("id_token")); got != "RS256" {
		t.Errorf("a client that registered no alg: id_token alg %s, want RS256", got)
	}
	r = e.register(map[string]any{"redirect_uris": []string{tkRedirect}, "token_endpoint_auth_method": "none", "id_token_signed_response_alg": "HS256"})
	if r.status != 400 || r.str("error") != "invalid_client_metadata" || r.str("error_description") != `id_token_signed_response_alg: "HS256" is not one of RS256, ES256` {
		t.Fatalf("HS256: %d %v", r.status, r.body)
	}
}
