package scopes

import (
	"net/url"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// Properties of Grant, Covers and Permits on generated scope lists
// (pgregory.net/rapid; -rapid.checks=N for more cases, -rapid.seed=S to
// replay the seed a failure prints).

var (
	propTypes   = []string{"*", "Patient", "Observation", "Condition", "Encounter", "Medication"}
	propQueries = []string{"category=laboratory", "code=1234", "category=laboratory&code=1234", "category=vital-signs"}
	propOther   = []string{"openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter", "offline_access",
		"online_access", "everything", "patient/observation.rs", "user/*.x", "system/*.sr", "Patient/*.rs", "__introspect", "patient/*.rs?"}
)

// genPropScope draws a scope: a resource scope of any context (v2 letters,
// sometimes restricted, or a v1 word), a non-resource scope or junk.
func genPropScope() *rapid.Generator[string] {
	return rapid.Custom(func(t *rapid.T) string {
		if rapid.IntRange(0, 3).Draw(t, "other") == 0 {
			return rapid.SampledFrom(propOther).Draw(t, "scope")
		}
		s := rapid.SampledFrom([]string{"patient", "user", "system"}).Draw(t, "ctx") + "/" + rapid.SampledFrom(propTypes).Draw(t, "type") + "."
		if rapid.IntRange(0, 3).Draw(t, "v1") == 0 {
			return s + rapid.SampledFrom([]string{"read", "write", "*"}).Draw(t, "word")
		}
		p := Perms(rapid.IntRange(1, int(AllPerms)).Draw(t, "perms"))
		s += p.String()
		if rapid.IntRange(0, 3).Draw(t, "restricted") == 0 {
			s += "?" + rapid.SampledFrom(propQueries).Draw(t, "query")
		}
		return s
	})
}

// genPropList draws a list of scopes (possibly empty, with duplicates).
func genPropList(label string, minLen int) func(t *rapid.T) []string {
	return func(t *rapid.T) []string {
		return rapid.SliceOfN(genPropScope(), minLen, 6).Draw(t, label)
	}
}

// parseable keeps the scopes Parse accepts.
func parseable(list []string) []string {
	var out []string
	for _, s := range list {
		if _, err := Parse(s); err == nil {
			out = append(out, s)
		}
	}
	return out
}

// TestPropGrantIsAnOrderedSubsetOfTheRequest: Grant keeps only requested,
// known scopes, once each, in the requested order, and is idempotent.
func TestPropGrantIsAnOrderedSubsetOfTheRequest(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		req, allowed := genPropList("requested", 0)(t), genPropList("allowed", 0)(t)
		got := Grant(req, allowed)
		rest := Split(strings.Join(req, " "))
		for _, g := range got {
			i := slices.Index(rest, g)
			if i < 0 {
				t.Fatalf("Grant(%q, %q) = %q: %q is not requested (or out of order, or twice)", req, allowed, got, g)
			}
			rest = rest[i+1:]
			if _, err := Parse(g); err != nil {
				t.Fatalf("Grant(%q, %q) = %q holds the unknown %q", req, allowed, got, g)
			}
		}
		if again := Grant(got, allowed); !slices.Equal(again, got) {
			t.Fatalf("Grant is not idempotent: Grant(%q, %q) = %q, then %q", req, allowed, got, again)
		}
	})
}

// TestPropUnboundedGrantHasNoSystemScope: a client without a scope list
// is granted every known scope it asks for except system/ ones.
func TestPropUnboundedGrantHasNoSystemScope(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		req := genPropList("requested", 0)(t)
		var want []string
		for _, s := range Split(strings.Join(req, " ")) {
			if sc, err := Parse(s); err == nil && sc.Context != "system" {
				want = append(want, s)
			}
		}
		if got := Grant(req, nil); !slices.Equal(got, want) {
			t.Fatalf("Grant(%q, no list) = %q, want every known scope but system/ ones: %q", req, got, want)
		}
	})
}

// TestPropBoundedGrantIsWhatTheListCovers: with a list, Grant keeps
// exactly the requested scopes Covers says the list covers, and a longer
// list never grants less.
func TestPropBoundedGrantIsWhatTheListCovers(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		req, allowed := genPropList("requested", 0)(t), genPropList("allowed", 1)(t)
		got := Grant(req, allowed)
		for _, s := range parseable(Split(strings.Join(req, " "))) {
			if covers := Covers(allowed, []string{s}); covers != slices.Contains(got, s) {
				t.Fatalf("Grant(%q, %q) = %q, but Covers(allowed, %q) = %t", req, allowed, got, s, covers)
			}
		}
		more := append(slices.Clone(allowed), genPropList("more", 0)(t)...)
		for _, g := range got {
			if !slices.Contains(Grant(req, more), g) {
				t.Fatalf("a longer list %q grants less than %q: %q is lost", more, allowed, g)
			}
		}
	})
}

// TestPropCoversIsReflexiveAndTransitive: a list covers itself, a grant
// within a grant within a list is covered by the list, and nothing covers
// a non-empty list but a list.
func TestPropCoversIsReflexiveAndTransitive(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := parseable(genPropList("a", 1)(t))
		if !Covers(a, a) {
			t.Fatalf("Covers(%q, itself) = false", a)
		}
		if len(a) == 0 {
			return
		}
		// b and c are grants within a and b: each covered by the one before.
		b := Grant(genPropList("b", 1)(t), a)
		c := Grant(genPropList("c", 1)(t), b)
		if len(b) == 0 {
			c = nil
		}
		if !Covers(a, b) || !Covers(a, c) {
			t.Fatalf("Covers(%q, %q) = %t, Covers(b, %q) = %t, Covers(a, c) = %t", a, b, Covers(a, b), c, Covers(b, c), Covers(a, c))
		}
		if Covers(nil, b) != (len(b) == 0) {
			t.Fatalf("Covers(nothing, %q) = %t", b, Covers(nil, b))
		}
	})
}

// TestPropCoveredScopesPermitNoMore: whatever a list of scopes permits on
// the FHIR API (30 generated requests per pair of lists), a list covering
// it permits too. So a grant within a
// client's or user's list, or a refresh narrowed within the original
// grant, never lets the guard allow more than the list does.
func TestPropCoveredScopesPermitNoMore(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		wide := parseable(genPropList("wide", 1)(t))
		if len(wide) == 0 {
			return
		}
		narrow := Grant(genPropList("narrow", 1)(t), wide)
		if !Covers(wide, narrow) {
			t.Fatalf("Covers(%q, its own grant %q) = false", wide, narrow)
		}
		n, _ := ParseAll(narrow)
		w, _ := ParseAll(wide)
		for range 30 {
			ctx := rapid.SampledFrom([]Context{Patient, User, System, ""}).Draw(t, "context")
			typ := rapid.SampledFrom(propTypes).Draw(t, "resourceType")
			need := Perms(rapid.IntRange(1, int(AllPerms)).Draw(t, "need"))
			params := url.Values{}
			for _, q := range rapid.SliceOfN(rapid.SampledFrom(propQueries), 0, 2).Draw(t, "params") {
				v, _ := url.ParseQuery(q)
				for k, vs := range v {
					params[k] = append(params[k], vs...)
				}
			}
			if Permits(n, ctx, typ, need, params) && !Permits(w, ctx, typ, need, params) {
				t.Fatalf("%q permits %s on %s in context %q with %v; %q, which covers it, does not", narrow, need, typ, ctx, params, wide)
			}
		}
	})
}
