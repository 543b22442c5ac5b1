package jsonobj

import (
	"encoding/json"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

// TestWalk covers what Walk accepts and refuses.
func TestWalk(t *testing.T) {
	for _, c := range []struct {
		in   string
		want bool
	}{
		{`{}`, true},
		{` {"a":"x","b":[1,2],"c":{"d":null}} `, true},
		{`{"a":"x","a":"y"}`, false},      // duplicate name
		{`{"a":"x","\u0061":"y"}`, false}, // duplicate once unescaped
		{`{"a":"x"}{}`, false},            // two values
		{`{"a":"x"`, false},
		{`["a"]`, false},
		{"{\"a\":\"\xff\"}", false}, // invalid UTF-8
		{`{"a":01}`, false},
		{`{"a":"x",}`, false},
	} {
		got := Walk([]byte(c.in), func(name string, dec *jsontext.Decoder) bool { return dec.SkipValue() == nil })
		if got != c.want {
			t.Errorf("Walk(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

// TestReaders covers the value readers' domains.
func TestReaders(t *testing.T) {
	read := func(in string, f func(dec *jsontext.Decoder) bool) bool {
		return Walk([]byte(`{"v":`+in+`}`), func(_ string, dec *jsontext.Decoder) bool { return f(dec) })
	}
	for in, want := range map[string]bool{`0`: true, `1796000000`: true, `999999999999`: true,
		`1000000000000`: false, `-1`: false, `1.5`: false, `1e9`: false, `"1"`: false} {
		if got := read(in, func(dec *jsontext.Decoder) bool { _, ok := NumericDate(dec); return ok }); got != want {
			t.Errorf("NumericDate(%s) = %v, want %v", in, got, want)
		}
	}
	for in, want := range map[string]int{`"a"`: 1, `["a","b"]`: 2, `[]`: 0, `[1]`: -1, `1`: -1, `null`: -1} {
		var n int
		ok := read(in, func(dec *jsontext.Decoder) bool { s, ok := Strings(dec); n = len(s); return ok })
		if (want < 0) == ok || (ok && n != want) {
			t.Errorf("Strings(%s) = %d, %v; want %d", in, n, ok, want)
		}
	}
}

// FuzzWalk checks that every object Walk accepts is one encoding/json
// reads too, with the same members, none repeated.
func FuzzWalk(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1,"b":"x"}`, `{"a":{"a":1}}`, `{"a":"x","a":"y"}`, `{"\u00e9":[true,null]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var names []string
		if !Walk(b, func(name string, dec *jsontext.Decoder) bool {
			names = append(names, name)
			return dec.SkipValue() == nil
		}) {
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("Walk accepted %q, encoding/json refuses it: %v", b, err)
		}
		if len(m) != len(names) {
			t.Fatalf("Walk saw %d members of %q, encoding/json %d", len(names), b, len(m))
		}
		for _, n := range names {
			if _, ok := m[n]; !ok {
				t.Fatalf("member %q of %q unknown to encoding/json", n, b)
			}
		}
	})
}
