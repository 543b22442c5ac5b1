package token

import (
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/handlers/users"
	"github.com/smartcaddy/smartauth/keys"
)

// BenchmarkIDTokenSigning measures minting one id_token (claims, JSON,
// signature) with RS256, the OpenID default, and with ES256, which a
// client gets by registering id_token_signed_response_alg ES256 (issue
// 16: the id_token dominates the CPU of a code exchange or refresh with
// openid).
func BenchmarkIDTokenSigning(b *testing.B) {
	opts := newTestOptions(b)
	opts.Users = map[string]*users.User{"alice": {Name: "alice", FHIRUser: "Practitioner/alice-1", DisplayName: "Alice Example"}}
	s, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	for _, alg := range []string{keys.RS256, keys.ES256} {
		b.Run(alg, func(b *testing.B) {
			g := &tokenGrant{ClientID: "app", Subject: "alice", Scope: "openid fhirUser profile patient/*.rs",
				Nonce: "n-0S6_WzA2Mj", AuthTime: time.Now(), IDTokenAlg: alg}
			for b.Loop() {
				if _, err := s.mintIDToken(g); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The id_token's algorithm is the client's registered one, RS256 unless
// it registered ES256 — never anything else a record might hold.
func TestIDTokenAlgDefaults(t *testing.T) {
	for registered, want := range map[string]string{"": keys.RS256, "RS256": keys.RS256, "ES256": keys.ES256, "HS256": keys.RS256, "none": keys.RS256} {
		if got := idTokenAlg(registered); got != want {
			t.Errorf("idTokenAlg(%q) = %s, want %s", registered, got, want)
		}
	}
}
