package register

// Public JWKs for the seed corpus of FuzzRegister (generated once; no
// private half is kept, except for ecPrivateJWK, which is a private key on
// purpose). FuzzJWKSFetch's are in handlers/clients.
const (
	ec384JWK     = `{"crv":"P-384","kid":"ec1","kty":"EC","x":"i5eMhu01J1UzxP_n04XKpjyXyGlYX59Ijl_fLFGp3pr06_9yAVucwnTKfqPpri-D","y":"9zEPZez6GpZ8iukIijHxMBRVgz9xyp9r1Si97ISLrSZlwwJJLhrltcSGeaS-IS2p"}`
	rsa1024JWK   = `{"e":"AQAB","kid":"rs-short","kty":"RSA","n":"u5oemG0OvGnAgPHFvuSSjJPTYHUP_3QczRkgPrRuSycSerR6VwxiJ2y5WBSYsNgd6me9vU6bKkoU-YaBbpPKoSRaVEt-MydSwQq3PQAj-tJLlaD2XbEM4V_g7urkITTK2Z9okmYxf-l68DOHpMSR_y9CjAarna4JNmNSP7VqFbs"}`
	ecPrivateJWK = `{"crv":"P-256","d":"OJdCGpMDUUrTK6-kLFd6bRqFrtIp3K7ZVa8eqvfTkxs","kid":"ec-private","kty":"EC","x":"4lS-E5OELyR2PWjw7Grw7efQlWZAZ3_NdIPu6Zbbuyo","y":"-YaWQ9eATUWcnzdizLx4ieX3qw3IWkbQ2qJIenq8-sU"}`
)
