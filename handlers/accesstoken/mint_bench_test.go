package accesstoken

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"testing"
)

// BenchmarkMint is the cost of minting a backend service's access token
// (claims, JSON, ES256 signature), for comparison with
// BenchmarkStdlibES256Sign, the bare signature.
func BenchmarkMint(b *testing.B) {
	e := newDiffEnv(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := e.p.Mint(Grant{ClientID: "bench-0", Scope: "system/Patient.rs"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStdlibES256Sign is the bare ES256 signature of a token-sized
// input with the standard library.
func BenchmarkStdlibES256Sign(b *testing.B) {
	e := newDiffEnv(b)
	in := make([]byte, 400)
	b.ReportAllocs()
	for b.Loop() {
		h := sha256.Sum256(in)
		if _, err := ecdsa.SignASN1(rand.Reader, e.es, h[:]); err != nil {
			b.Fatal(err)
		}
	}
}
