package clients

import "golang.org/x/net/http/httpguts"

// Public JWKs for the seed corpora of the fuzz targets that read JWK Sets
// (generated once; no private half is kept, except for ecPrivateJWK,
// which is a private key on purpose).
const (
	ec256JWK     = `{"crv":"P-256","kid":"ec256","kty":"EC","x":"4lS-E5OELyR2PWjw7Grw7efQlWZAZ3_NdIPu6Zbbuyo","y":"-YaWQ9eATUWcnzdizLx4ieX3qw3IWkbQ2qJIenq8-sU"}`
	ec384JWK     = `{"crv":"P-384","kid":"ec1","kty":"EC","x":"i5eMhu01J1UzxP_n04XKpjyXyGlYX59Ijl_fLFGp3pr06_9yAVucwnTKfqPpri-D","y":"9zEPZez6GpZ8iukIijHxMBRVgz9xyp9r1Si97ISLrSZlwwJJLhrltcSGeaS-IS2p"}`
	ec521JWK     = `{"crv":"P-521","kid":"ec521","kty":"EC","x":"AUgPsG2G-jUstWIK8JMU4mV21bSbyBGAbgOgasH_8GadG8zenKJQFpQeY7yoKkZJ9kZEsIJhs1JdH2y8Upgw3fyp","y":"AKZp0Db4wH_3XiWr_dBXC81S-tROK7RGEez2BWghR3Al5jXL7LRzxBIDCNkCem_8FDZaUFHGUUTmJHvZR9HEnGIa"}`
	rsa2048JWK   = `{"e":"AQAB","kid":"rs1","kty":"RSA","n":"0yP-OQsF2Yry_hwLy76A1Ti4QTpDhW27-b6s8La1u47t_QtwixdXG6FaUTgKaIOvd8GthXKBuuucxQGeKlujIXZCiJ9Ya474VY_ydlyQq7e5wBKneiuzX_YpG6TorN6d-_3FscpLGH6vnfGuKWNo34g32XmOlp-08ckkUS4WhK5Hz5cLunq8nDVGNGoRKeccP_JBPSHCeavxK3nzEQltJu8TMaw1XEOksPfRH_22wkyhfHg_rQ0tP5sBVPvsMskT4IffJm-TRL5fnheUzDjehk_IGubWwcVDy4FYPf5OQaHJkeTUtAc3pDh-IzEiNflxSYDWEGcumpS6fpeUbCvL_Q"}`
	rsa1024JWK   = `{"e":"AQAB","kid":"rs-short","kty":"RSA","n":"u5oemG0OvGnAgPHFvuSSjJPTYHUP_3QczRkgPrRuSycSerR6VwxiJ2y5WBSYsNgd6me9vU6bKkoU-YaBbpPKoSRaVEt-MydSwQq3PQAj-tJLlaD2XbEM4V_g7urkITTK2Z9okmYxf-l68DOHpMSR_y9CjAarna4JNmNSP7VqFbs"}`
	ecPrivateJWK = `{"crv":"P-256","d":"OJdCGpMDUUrTK6-kLFd6bRqFrtIp3K7ZVa8eqvfTkxs","kid":"ec-private","kty":"EC","x":"4lS-E5OELyR2PWjw7Grw7efQlWZAZ3_NdIPu6Zbbuyo","y":"-YaWQ9eATUWcnzdizLx4ieX3qw3IWkbQ2qJIenq8-sU"}`
	octJWK       = `{"k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY","kid":"hmac","kty":"oct"}`
)

// jwksSeed is a seed of FuzzJWKSFetch.
type jwksSeed struct {
	body         []byte
	cc, kid, alg string
}

// jwksSeeds are JWK Sets worth starting from: usable keys, keys that must
// never be chosen, private material, duplicates and malformed sets.
func jwksSeeds() []jwksSeed {
	set := func(keys ...string) []byte {
		out := `{"keys":[`
		for i, k := range keys {
			if i > 0 {
				out += ","
			}
			out += k
		}
		return []byte(out + "]}")
	}
	return []jwksSeed{
		{set(ec384JWK, ec256JWK, rsa2048JWK), "max-age=600", "ec1", "ES384"},
		{set(ec384JWK), "", "ec1", "ES256"},
		{set(ec256JWK), "no-store", "ec256", "ES256"},
		{set(rsa2048JWK), "public, max-age=172800", "rs1", "RS384"},
		{set(rsa1024JWK), "", "rs-short", "RS256"},
		{set(ec521JWK), "", "ec521", "ES384"},
		{set(ecPrivateJWK), "", "ec-private", "ES256"},
		{set(octJWK), "", "hmac", "HS256"},
		{set(ec384JWK, ec384JWK), "max-age=0", "ec1", "ES384"},
		{set(), "", "", ""},
		{[]byte(`{"keys":null}`), "", "", ""},
		{[]byte(ec384JWK), "", "ec1", "ES384"},
		{[]byte(`{"keys":[{"kty":"EC","crv":"P-384","kid":"ec1","use":"enc","x":"AA","y":"AA"}]}`), "no-cache", "ec1", "ES384"},
		{[]byte(`not json`), "", "", ""},
	}
}

// validHeader tells whether v may be sent as a header field value.
func validHeader(v string) bool { return httpguts.ValidHeaderFieldValue(v) }
