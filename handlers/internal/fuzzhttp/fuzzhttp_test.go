package fuzzhttp

import (
	"net/http"
	"testing"
)

func TestNewRequest(t *testing.T) {
	r, ok := NewRequest(http.MethodGet, "/fhir/Patient?x=1", "h.example", []byte("b"))
	if !ok || r.Host != "h.example" || r.URL.Path != "/fhir/Patient" || r.URL.RawQuery != "x=1" || r.ContentLength != 1 {
		t.Fatalf("NewRequest: %v %+v", ok, r)
	}
	for _, c := range []struct{ method, target string }{
		{"", "/"}, {"GE T", "/"}, {"GET", "fhir"}, {"GET", "/a b"}, {"GET", "/\u00e9"}, {"GET", "/\x7f"},
	} {
		if _, ok := NewRequest(c.method, c.target, "h", nil); ok {
			t.Errorf("NewRequest(%q, %q) accepted a request line net/http refuses", c.method, c.target)
		}
	}
	if ValidHeader("a\nb") || !ValidHeader("a b") {
		t.Error("ValidHeader")
	}
}
