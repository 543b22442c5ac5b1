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

// BenchmarkParseClaims is the cost of reading a minted token's claims and
// header on the fast path (no signature).
func BenchmarkParseClaims(b *testing.B) {
	payload := []byte(`{"aud":["https://ehr.example.org/fhir"],"client_id":"app","exp":1796000000,"fhirUser":"https://ehr.example.org/fhir/Practitioner/p7","iat":1795999700,"iss":"https://ehr.example.org/auth","jti":"yK1-3xBdbmgcz4qcnPqM8qTqr9Bf4yB0mBLSC1-1N7c","nbf":1795999700,"need_patient_banner":true,"patient":"pat-1","scope":"launch/patient openid fhirUser patient/*.rs offline_access","sub":"alice"}`)
	hdr := []byte(`{"alg":"ES256","kid":"k1","typ":"at+jwt"}`)
	b.ReportAllocs()
	for b.Loop() {
		var fc fastClaims
		if !fc.parse(payload) {
			b.Fatal("not parsed")
		}
		if _, _, _, ok := parseHeader(hdr); !ok {
			b.Fatal("header not parsed")
		}
	}
}
