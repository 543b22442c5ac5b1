// Package compactjws splits and decodes compact JWS serializations on the
// fast paths of access-token and client-assertion verification, strictly:
// three non-empty parts of unpadded base64url, no white space, no
// padding, no non-zero trailing bits. Callers send whatever it refuses to
// jwx, which decides.
package compactjws

import (
	"encoding/base64"
	"strings"
	"unsafe"
)

// Split returns the three dot-separated parts of raw (header, payload,
// signature); ok is false unless there are exactly three, each non-empty
// and of the base64url alphabet only (the standard decoder would skip
// line breaks; padding is not unpadded base64url).
func Split(raw string) (header, payload, signature string, ok bool) {
	h, rest, ok1 := strings.Cut(raw, ".")
	p, s, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || !base64URL(h) || !base64URL(p) || !base64URL(s) {
		return "", "", "", false
	}
	return h, p, s, true
}

// base64URL tells whether s is non-empty and only of the base64url
// alphabet.
func base64URL(s string) bool {
	for i := range len(s) {
		if !alphabet[s[i]] {
			return false
		}
	}
	return s != ""
}

// alphabet tells the bytes of the base64url alphabet.
var alphabet = func() (t [256]bool) {
	for _, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" {
		t[c] = true
	}
	return t
}()

// strict is unpadded base64url that refuses non-zero trailing bits.
var strict = base64.RawURLEncoding.Strict()

// Decode writes the strict decoding of a part Split returned after dst,
// in dst's spare capacity (the caller sizes it: the encoded length bounds
// the decoded one), and returns the decoded bytes alone, whose spare
// capacity is the room left for the next part; false for non-zero
// trailing bits or a length no encoding has.
func Decode(dst []byte, s string) ([]byte, bool) {
	n := base64.RawURLEncoding.DecodedLen(len(s))
	if cap(dst)-len(dst) < n {
		return nil, false
	}
	out := dst[len(dst) : len(dst)+n]
	m, err := strict.Decode(out, unsafe.Slice(unsafe.StringData(s), len(s)))
	if err != nil {
		return nil, false
	}
	return out[:m], true
}
