package compactjws

import "testing"

// TestSplitDecode covers the strict domain: exactly three non-empty parts
// of the base64url alphabet, decoded strictly, one buffer for all three.
func TestSplitDecode(t *testing.T) {
	for _, c := range []struct {
		raw  string
		want bool
	}{
		{"eyJh.e30.AAAA", true},
		{"eyJh.e30", false},
		{"eyJh.e30.AAAA.AAAA", false}, // a fourth part
		{".e30.AAAA", false},          // empty header
		{"eyJh.e30.", false},          // empty signature
		{"eyJh=.e30.AAAA", false},     // padding
		{"eyJh.e3\n0.AAAA", false},    // a line break the decoder would skip
		{"eyJh.e30.AA+A", false},      // standard, not URL, alphabet
	} {
		if _, _, _, ok := Split(c.raw); ok != c.want {
			t.Errorf("Split(%q) = %v, want %v", c.raw, ok, c.want)
		}
	}
	h, p, s, _ := Split("eyJhIjoxfQ.e30.AAE")
	hdr, ok1 := Decode(make([]byte, 0, 32), h)
	payload, ok2 := Decode(hdr[len(hdr):], p)
	sig, ok3 := Decode(payload[len(payload):], s)
	if !ok1 || !ok2 || !ok3 || string(hdr) != `{"a":1}` || string(payload) != "{}" || len(sig) != 2 || sig[1] != 1 {
		t.Errorf("Decode: %q %q %v (%v %v %v)", hdr, payload, sig, ok1, ok2, ok3)
	}
	if _, ok := Decode(make([]byte, 0, 8), "AAF"); ok { // non-zero trailing bits
		t.Error("Decode accepted non-zero trailing bits")
	}
	if _, ok := Decode(make([]byte, 0, 1), "AAAA"); ok { // no room
		t.Error("Decode wrote past the buffer's capacity")
	}
}
