package clients

import (
	"testing"
)

// BenchmarkParseAssertion compares, for one RS384 client assertion, the
// fast parser with jwx: reading the header and claims and validating
// the claims (what the grant pays besides the signature and the store).
//
//	go test -run '^$' -bench BenchmarkParseAssertion -benchmem ./handlers/clients
func BenchmarkParseAssertion(b *testing.B) {
	e := newFastEnv(b)
	c := fastSeeds()[0]
	c.alg, c.kid = "RS384", "rs1"
	tok := c.build(e)
	for _, p := range []struct {
		name  string
		parse func(string) (*assertion, bool)
	}{
		{"fast", func(s string) (*assertion, bool) { a, f, ok := parseAssertionFast(s); return a, ok && f == nil }},
		{"jwx", func(s string) (*assertion, bool) { a, f := parseAssertionJWX([]byte(s)); return a, f == nil }},
	} {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				a, ok := p.parse(tok)
				if !ok || a.claims.validate(faClient, e.now) != "" {
					b.Fatal("refused")
				}
			}
		})
	}
}
