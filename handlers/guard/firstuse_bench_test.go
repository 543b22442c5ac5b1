package guard

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/handlers/accesstoken"
)

// BenchmarkGuardFirstUse is the guard's own cost (in process, no HTTP) of
// a request whose token it verified before (cached), of the first use of a
// token this server minted (minted: VerifyMinted, no signature check) and
// of the first use of a token another instance minted with the same keys
// (cold: one signature check).
//
//	go test -run '^$' -bench BenchmarkGuardFirstUse -benchmem ./handlers/guard
func BenchmarkGuardFirstUse(b *testing.B) {
	e := newFuzzEnv(b)
	other, err := accesstoken.New(accesstoken.Options{
		Issuer: fzIssuer, Audience: fzFHIRBase, Keys: e.ring, Lifetime: time.Hour, Store: e.db,
	})
	if err != nil {
		b.Fatal(err)
	}
	grant := accesstoken.Grant{ClientID: fzApp, Subject: "alice", Scope: "patient/*.rs", FHIRUser: fzFHIRBase + "/Practitioner/pr1"}
	grant.Context.Patient = fzPatient
	mint := func(p *accesstoken.Profile) string {
		tok, _, err := p.Mint(grant)
		if err != nil {
			b.Fatal(err)
		}
		return tok
	}
	serve := func(tok string) {
		r := httptest.NewRequest(http.MethodGet, fzFHIRBase+"/Observation?code=1234", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		if w := e.serve(r, nil); w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
	b.Run("cached", func(b *testing.B) {
		tok := mint(e.tokens)
		serve(tok)
		b.ReportAllocs()
		for b.Loop() {
			serve(tok)
		}
	})
	for _, c := range []struct {
		name string
		p    *accesstoken.Profile
	}{{"minted", e.tokens}, {"cold", other}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			// Minted in batches smaller than the minted-token set, as a
			// server's tokens are used soon after they are minted.
			for done := 0; done < b.N; {
				b.StopTimer()
				toks := make([]string, min(b.N-done, 2048))
				for i := range toks {
					toks[i] = mint(c.p)
				}
				b.StartTimer()
				for _, tok := range toks {
					serve(tok)
				}
				done += len(toks)
			}
		})
	}
}
