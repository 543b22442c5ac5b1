package guard

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// Property tests of issue 10 §4 (pgregory.net/rapid; -rapid.checks=N for
// more cases, -rapid.seed to replay one).

const propBase = "https://fhir.example.org/r4"

// caseVariant draws a spelling of name that differs from it in the case
// of at least one letter.
func caseVariant(t *rapid.T, name string) string {
	b := []byte(name)
	var letters []int
	for i, c := range b {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			letters = append(letters, i)
		}
	}
	first := rapid.SampledFrom(letters).Draw(t, "flip")
	b[first] ^= 0x20
	for _, i := range letters {
		if i != first && rapid.Bool().Draw(t, "flip more") {
			b[i] ^= 0x20
		}
	}
	return string(b)
}

// member is one "key": value of an object written as JSON text.
type member struct {
	key   string
	value string // JSON
}

// objectText writes members in the order given.
func objectText(ms []member) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		k, _ := json.Marshal(m.key)
		parts[i] = string(k) + ":" + m.value
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// refText draws a Reference as JSON text.
var refGen = rapid.SampledFrom([]string{
	`{"reference":"Patient/p1"}`, `{"reference":"Patient/p2"}`, `{"reference":"` + propBase + `/Patient/p1"}`,
	`{"reference":"Practitioner/x"}`, `{"reference":"Group/p1"}`, `{"reference":"Patient?identifier=1"}`,
	`{"reference":"https://other.example/Patient/p1"}`, `{"type":"Patient","identifier":{"value":"1"}}`,
	`{"reference":"p1","type":"Patient"}`, `[{"reference":"Patient/p1"}]`, `[{"reference":"Patient/p1"},{"reference":"Patient/p2"}]`,
	`[{"actor":{"reference":"Patient/p1"}}]`, `[{"target":{"reference":"Patient/p2"}}]`, `[{"entity":{"reference":"Patient/p1"}}]`,
	`{"reference":"Patient/p1","extension":[{"url":"x","valueReference":{"reference":"Patient/p2"}}]}`,
})

// TestPropCaseVariantKeysRefused: a resource with a key that differs only
// in case from a compartment element (or any name the guard reads) is
// refused by the parser, so it is never found to belong, nor to be
// writable, whatever it holds and wherever the key stands.
func TestPropCaseVariantKeysRefused(t *testing.T) {
	types := compartmentTypes
	names := make([]string, 0, len(checkedNames))
	for _, n := range checkedNames {
		names = append(names, n)
	}
	slices.Sort(names)
	rapid.Check(t, func(t *rapid.T) {
		typ := rapid.SampledFrom(types).Draw(t, "type")
		el := rapid.SampledFrom(append(compartmentElements(typ), names...)).Draw(t, "element")
		variant := caseVariant(t, el)
		ms := []member{{"resourceType", `"` + typ + `"`}, {variant, refGen.Draw(t, "variant value")}}
		if rapid.Bool().Draw(t, "also the exact key") {
			ms = append(ms, member{el, refGen.Draw(t, "exact value")})
		}
		for _, other := range compartmentElements(typ) {
			if other != el && rapid.Bool().Draw(t, "other "+other) {
				ms = append(ms, member{other, refGen.Draw(t, "value of "+other)})
			}
		}
		ms = rapid.Permutation(ms).Draw(t, "order")
		body := objectText(ms)
		if rapid.Bool().Draw(t, "inside a Bundle entry") {
			body = `{"resourceType":"Bundle","type":"batch","entry":[{"resource":` + body + `,"request":{"method":"POST","url":"` + typ + `"}}]}`
		}
		res, _, err := parseCheckedJSON([]byte(body))
		if !errors.Is(err, errJSONKeys) {
			t.Fatalf("accepted (%v): %s", err, body)
		}
		if res != nil && (resourceBelongs(typ, res, "p1", propBase) || resourceWritable(typ, res, "p1", propBase)) {
			t.Fatalf("a refused body belongs: %s", body)
		}
	})
}

// TestPropDuplicateKeysRefused: an object with the same key twice (or
// spelled once with a JSON escape), at any depth, is refused.
func TestPropDuplicateKeysRefused(t *testing.T) {
	keys := []string{"resourceType", "id", "subject", "patient", "reference", "entry", "request", "method", "url", "code", "status", "a"}
	rapid.Check(t, func(t *rapid.T) {
		k := rapid.SampledFrom(keys).Draw(t, "key")
		second := k
		if rapid.Bool().Draw(t, "escaped") {
			i := rapid.IntRange(0, len(k)-1).Draw(t, "escaped at")
			second = k[:i] + fmt.Sprintf(`\u%04x`, k[i]) + k[i+1:]
		}
		inner := fmt.Sprintf(`{"x":1,%q:%s,"y":2,"%s":%s}`, k, refGen.Draw(t, "first"), second, refGen.Draw(t, "second"))
		for range rapid.IntRange(0, 5).Draw(t, "depth") {
			if rapid.Bool().Draw(t, "in an array") {
				inner = `{"entry":[` + inner + `]}`
			} else {
				inner = `{"resource":` + inner + `}`
			}
		}
		if _, _, err := parseCheckedJSON([]byte(inner)); !errors.Is(err, errJSONKeys) {
			t.Fatalf("accepted (%v): %s", err, inner)
		}
	})
}

// patientRefs lists every reference string under v (the "reference" of
// every object) and whether some object is a Reference of type Patient.
func patientRefs(v any, out *[]string, typed *bool) {
	switch x := v.(type) {
	case map[string]any:
		if r, ok := x["reference"].(string); ok {
			*out = append(*out, r)
		}
		if x["type"] == "Patient" {
			*typed = true
		}
		for _, e := range x {
			patientRefs(e, out, typed)
		}
	case []any:
		for _, e := range x {
			patientRefs(e, out, typed)
		}
	}
}

// TestPropWritableIsOnlyThePatients: a resource the write rule accepts is
// in the compartment (the read rule accepts it), a primary element holds
// a plain reference to Patient/p1, and every reference in its compartment
// elements that mentions a Patient is p1's on this server.
func TestPropWritableIsOnlyThePatients(t *testing.T) {
	types := compartmentTypes
	mine := func(r string) bool {
		r = strings.TrimPrefix(r, propBase+"/")
		r, _, _ = strings.Cut(r, "/_history/")
		return r == "Patient/p1"
	}
	rapid.Check(t, func(t *rapid.T) {
		typ := rapid.SampledFrom(types).Draw(t, "type")
		if typ == "Patient" {
			return
		}
		res := map[string]any{"resourceType": typ}
		for _, el := range compartmentElements(typ) {
			if rapid.Bool().Draw(t, "has "+el) {
				var v any
				_ = json.Unmarshal([]byte(refGen.Draw(t, el)), &v)
				res[el] = v
			}
		}
		w := resourceWritable(typ, res, "p1", propBase)
		if !w {
			return
		}
		if !resourceBelongs(typ, res, "p1", propBase) {
			t.Fatalf("writable but not in the compartment: %v", res)
		}
		primary := false
		for _, el := range primaryElements(typ) {
			var refs []string
			var typed bool
			patientRefs(res[el], &refs, &typed)
			primary = primary || slices.ContainsFunc(refs, mine)
		}
		if !primary {
			t.Fatalf("writable without p1 in %v: %v", primaryElements(typ), res)
		}
		for _, el := range compartmentElements(typ) {
			var refs []string
			var typed bool
			patientRefs(res[el], &refs, &typed)
			for _, r := range refs {
				if strings.Contains(r, "Patient") && !mine(r) {
					t.Fatalf("writable with %s in %s: %v", r, el, res)
				}
			}
		}
	})
}

// TestPropSearchConfined: whatever parameters a search under patient/
// scopes carries, either it is refused or the search sent upstream holds
// the type's compartment parameter with exactly the typed reference to
// the patient (so that, parameters being ANDed, nothing of another
// patient's can match by the parameter itself), no compartment parameter
// value (unchained) names anyone else, and nothing widens it.
func TestPropSearchConfined(t *testing.T) {
	names := []string{"subject", "patient", "performer", "code", "_id", "Subject", "PATIENT", "_include", "_Revinclude", "_query", "beneficiary", "identifier"}
	mods := []string{"", "", ":Patient", ":Group", ":missing", ":identifier", ":not", ".name", ":Patient.name", "._id"}
	values := []string{"p1", "Patient/p1", "p2", "Patient/p2", "Group/p1", propBase + "/Patient/p1", "p1,p2", "Patient/p1,Patient/p1", "true", "x"}
	rapid.Check(t, func(t *rapid.T) {
		typ := rapid.SampledFrom([]string{"Observation", "Encounter", "Coverage", "Patient", "Appointment"}).Draw(t, "type")
		q := url.Values{}
		for range rapid.IntRange(0, 5).Draw(t, "params") {
			k := rapid.SampledFrom(names).Draw(t, "name") + rapid.SampledFrom(mods).Draw(t, "modifier")
			q.Add(k, rapid.SampledFrom(values).Draw(t, "value"))
		}
		sent := url.Values{}
		for k, vs := range q {
			sent[k] = slices.Clone(vs)
		}
		a, f := restrictSearch(typ, "p1", q, propBase)
		if f != nil {
			return
		}
		if a.addKey != "" {
			sent.Add(a.addKey, a.addValue)
		}
		key, want := "_id", "p1"
		if typ != "Patient" {
			key, want = patientCompartmentR4[typ][0], "Patient/p1"
		}
		if !slices.Contains(sent[key], want) {
			t.Fatalf("%v: the search lacks %s=%s", sent, key, want)
		}
		for k, vs := range sent {
			lower := strings.ToLower(k)
			if strings.HasPrefix(lower, "_include") || strings.HasPrefix(lower, "_revinclude") || strings.HasPrefix(lower, "_query") {
				t.Fatalf("%v: %s let through", sent, k)
			}
			name, mod, chained := splitParam(k)
			cp := name == key || name == "patient" || name == "subject"
			if !cp && (strings.EqualFold(name, key) || strings.EqualFold(name, "patient") || strings.EqualFold(name, "subject")) {
				t.Fatalf("%v: case variant %s let through", sent, k)
			}
			if !cp || chained {
				continue
			}
			if mod != "" && mod != "Patient" {
				t.Fatalf("%v: modifier %s let through", sent, k)
			}
			for _, v := range vs {
				for one := range strings.SplitSeq(v, ",") {
					one = strings.TrimPrefix(one, propBase+"/")
					if one != "p1" && one != "Patient/p1" {
						t.Fatalf("%v: %s=%s let through", sent, k, v)
					}
				}
			}
		}
	})
}

// TestPropOverrideHeaderSpellings: every spelling of the override headers
// a server could fold to the same name is refused.
func TestPropOverrideHeaderSpellings(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		name := rapid.SampledFrom([]string{"x-http-method-override", "x-http-method", "x-method-override", "x-original-url", "x-rewrite-url"}).Draw(t, "header")
		b := []byte(name)
		for i, c := range b {
			switch {
			case c == '-':
				b[i] = rapid.SampledFrom([]byte("-_.")).Draw(t, "separator")
			case rapid.Bool().Draw(t, "upper"):
				b[i] = c &^ 0x20
			}
		}
		if overrideHeader(map[string][]string{string(b): {""}}) == "" {
			t.Fatalf("%s passed", b)
		}
	})
}
