package scopes

import (
	"errors"
	"reflect"
	"testing"
)

// FuzzParse checks that Parse never panics, that its errors wrap
// ErrInvalid, and that String round-trips: Parse(s.String()) gives the
// same meaning, String is stable, and Describe is never empty.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"openid", "launch/patient", "patient/*.cruds", "user/Observation.read", "system/*.*",
		"patient/Observation.rs?category=" + labCat, "patient/Observation.rs?a=b+c&a=%2B",
		"patient/Observation.sr", "patient/Observation.rs?", "patient/Observation.read?x=y",
		"user/*.rs?_security=R", "patient/Observation.rs?a=1;b=2", "patient/Obs.rs?a=%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		sc, err := Parse(in)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrInvalid", in, err)
			}
			return
		}
		if sc.Raw != in {
			t.Fatalf("Raw = %q, want %q", sc.Raw, in)
		}
		if sc.IsResource() && sc.Perms == 0 {
			t.Fatalf("Parse(%q) gave no permissions", in)
		}
		out := sc.String()
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(%q).String() = %q does not parse: %v", in, out, err)
		}
		again.Raw = sc.Raw
		if !reflect.DeepEqual(again, sc) {
			t.Fatalf("Parse(%q) = %+v, round trip through %q = %+v", in, sc, out, again)
		}
		if again.String() != out {
			t.Fatalf("String not stable: %q then %q", out, again.String())
		}
		if Describe(in) == "" {
			t.Fatalf("Describe(%q) is empty", in)
		}
		if !Covers([]string{in}, []string{in}) || !Covers([]string{out}, []string{in}) {
			t.Fatalf("%q does not cover itself or its canonical form", in)
		}
	})
}
