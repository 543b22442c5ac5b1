package scopes

import (
	"errors"
	"net/url"
	"reflect"
	"slices"
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

// permitsOracle is what Permits must answer, written from its contract:
// all of need, from the resource scopes of one context (the given one, or
// any when ""), each naming the type or "*"; a scope with a query
// restriction counts only when params carry each of its pairs literally,
// and then gives read and search at most.
func permitsOracle(granted []Scope, context Context, rt string, need Perms, params url.Values) bool {
	if need == 0 || rt == "" {
		return false
	}
	have := map[Context]Perms{}
	for _, s := range granted {
		if !s.IsResource() || context != "" && s.Context != context || s.ResourceType != "*" && s.ResourceType != rt {
			continue
		}
		p := s.Perms
		if len(s.Query) > 0 {
			for k, vs := range s.Query {
				for _, v := range vs {
					if !slices.Contains(params[k], v) {
						p = 0
					}
				}
			}
			p &= Read | Search
		}
		have[s.Context] |= p
	}
	for _, p := range have {
		if p&need == need {
			return true
		}
	}
	return false
}

// FuzzPermits checks the guard's scope decision (Permits) for any granted
// scopes, context, resource type, needed permissions and request
// parameters:
//   - it answers as permitsOracle: nothing without a need, permissions of
//     one context only, a restricted scope never gives c, u or d, only a
//     wildcard scope covers the system level ("*");
//   - more scopes never permit less, and whatever is permitted is
//     permitted in part too.
func FuzzPermits(f *testing.F) {
	for _, s := range []struct {
		granted   string
		ctx, need uint8
		rt, query string
	}{
		{"patient/*.rs", 1, uint8(Read), "Observation", ""},
		{"patient/Observation.rs?category=" + labCat, 1, uint8(Search), "Observation", "category=" + labCat},
		{"patient/Observation.cruds?category=x", 1, uint8(Create), "Observation", "category=x"},
		{"patient/Observation.r user/Observation.s", 0, uint8(Read | Search), "Observation", ""},
		{"user/*.cruds", 2, uint8(Delete), "*", ""},
		{"user/Observation.cruds", 2, uint8(Search), "*", ""},
		{"system/Patient.read", 3, uint8(Read | Search), "Patient", ""},
		{"patient/Observation.rs?a=1&a=2", 1, uint8(Read), "Observation", "a=1"},
		{"openid fhirUser launch", 0, uint8(Read), "Observation", ""},
	} {
		f.Add(s.granted, s.ctx, s.rt, s.need, s.query)
	}
	contexts := []Context{"", Patient, User, System}
	f.Fuzz(func(t *testing.T, list string, ci uint8, rt string, need uint8, rawQuery string) {
		params, err := url.ParseQuery(rawQuery)
		if err != nil {
			return
		}
		granted, _ := ParseAll(Split(list))
		ctx, n := contexts[int(ci)%len(contexts)], Perms(need)&AllPerms
		got := Permits(granted, ctx, rt, n, params)
		if want := permitsOracle(granted, ctx, rt, n, params); got != want {
			t.Fatalf("Permits(%q, %q, %q, %s, %v) = %v, want %v", list, ctx, rt, n, params, got, want)
		}
		if !got {
			return
		}
		more, _ := ParseAll(Split(list + " user/*.rs patient/Observation.c?x=1"))
		if !Permits(more, ctx, rt, n, params) {
			t.Fatalf("adding scopes to %q took away %s on %s", list, n, rt)
		}
		for sub := Perms(1); sub <= AllPerms; sub++ {
			if sub&^n == 0 && !Permits(granted, ctx, rt, sub, params) {
				t.Fatalf("%q permits %s on %s but not %s", list, n, rt, sub)
			}
		}
	})
}
