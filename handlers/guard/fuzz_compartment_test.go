package guard

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// FuzzRestrictSearch checks the search-parameter checks of the patient
// compartment (restrictSearch) against searchConfined:
//   - an accepted search, with the parameter the guard adds, is confined
//     to the patient, and restricting it again adds nothing (idempotence);
//   - the added parameter is the type's confining one, naming the patient
//     by a typed reference (by id for Patient);
//   - a refused search is one that no added restriction can confine (a
//     value naming someone else, or _include, _revinclude or _query), or
//     an ambiguous one (ambiguousSearch).
func FuzzRestrictSearch(f *testing.F) {
	obs := uint8(slices.Index(compartmentTypes, "Observation"))
	pat := uint8(slices.Index(compartmentTypes, "Patient"))
	enc := uint8(slices.Index(compartmentTypes, "Encounter"))
	for _, s := range []struct {
		t        uint8
		pid, raw string
	}{
		{obs, "p1", "code=1234"},
		{obs, "p1", "subject=Patient/p1"},
		{obs, "p1", "subject=p1"},
		{obs, "p1", "subject=Patient/p2"},
		{obs, "p1", "subject:Patient=p1,p2"},
		{obs, "p1", "patient=https://fhir.example.org/fhir/Patient/p1/_history/3"},
		{obs, "p1", "subject=https://fhir.example.org/fhir/p1"},
		{obs, "p1", "subject=p1/_history/Patient"},
		{obs, "p1", "_include=Observation:subject"},
		{obs, "p1", "_revinclude:iterate=Provenance:target"},
		{obs, "p1", "subject.name=Smith"},
		{obs, "p1", "subject="},
		{pat, "p1", "_id=p1"},
		{pat, "p1", "_id=p1,p2"},
		{pat, "p1", "name=Smith"},
		{pat, "p1", "_id:not=p2"},
		{enc, "p1", "patient=Patient/p1&subject=Patient/p1"},
	} {
		f.Add(s.t, s.pid, s.raw)
	}
	f.Fuzz(func(t *testing.T, ti uint8, pid, raw string) {
		if !fhirIDOracle.MatchString(pid) {
			return // a token's patient is always a FHIR id
		}
		params, err := url.ParseQuery(raw)
		if err != nil {
			return // the guard refuses a malformed query first
		}
		typ := pickType(ti)
		base := fzFHIRBase
		if typ == "Patient" {
			base = "" // patientAction compares ids only
		}
		key, typed := "_id", pid
		if typ != "Patient" {
			key, typed = patientCompartmentR4[typ][0], "Patient/"+pid
		}
		act, fault := restrictSearch(typ, pid, params, base)
		if fault != nil {
			// Ambiguous spellings (a name differing only in case from a
			// compartment parameter: 400) and modifiers other than
			// :Patient on one (403) are refused even where an added
			// restriction would confine them: refusing is the safe way
			// out, and the guard hardening tests pin those rules.
			restricted, _ := url.ParseQuery(appendParam(raw, key, typed))
			if ok, _ := searchConfined(typ, restricted, pid, base); ok && !ambiguousSearch(params, key) {
				t.Fatalf("%s?%s refused (%s), though adding %s=%s confines it", typ, raw, fault.Description, key, typed)
			}
			if fault.Status != 403 && fault.Status != 400 {
				t.Fatalf("%s?%s: refusal status %d", typ, raw, fault.Status)
			}
			return
		}
		if act.addKey != "" && (act.addKey != key || act.addValue != typed) {
			t.Fatalf("%s?%s: adds %s=%s, want %s=%s", typ, raw, act.addKey, act.addValue, key, typed)
		}
		if act.bodyWritable || act.checkResponse || act.precheck {
			t.Fatalf("%s?%s: a search asks for body checks: %+v", typ, raw, act)
		}
		out := raw
		if act.addKey != "" {
			out = appendParam(raw, act.addKey, act.addValue)
		}
		forwarded, err := url.ParseQuery(out)
		if err != nil {
			t.Fatalf("%s?%s: the restricted query %q does not parse: %v", typ, raw, out, err)
		}
		if ok, why := searchConfined(typ, forwarded, pid, base); !ok {
			t.Fatalf("%s?%s allowed as %q, which is not confined to %s: %s", typ, raw, out, pid, why)
		}
		again, fault := restrictSearch(typ, pid, forwarded, base)
		if fault != nil || again.addKey != "" {
			t.Fatalf("%s?%s: restricting %q again gives %+v %+v", typ, raw, out, again, fault)
		}
	})
}

// FuzzResourceBelongs checks the compartment membership of resources
// (resourceBelongs, bundleBelongs) against belongsOracle:
//   - a resource belongs exactly when the oracle says so (its type, and a
//     compartment element referencing the patient as Patient/{id}, with
//     or without the FHIR base and a version);
//   - the answer survives re-encoding (the guard forwards its own
//     encoding of what it checked);
//   - a history Bundle belongs when its one resource does, and a Bundle
//     entry that is not an object never belongs.
func FuzzResourceBelongs(f *testing.F) {
	obs := uint8(slices.Index(compartmentTypes, "Observation"))
	pat := uint8(slices.Index(compartmentTypes, "Patient"))
	ct := uint8(slices.Index(compartmentTypes, "CareTeam"))
	for _, s := range []struct {
		t         uint8
		pid, body string
	}{
		{obs, "p1", `{"resourceType":"Observation","subject":{"reference":"Patient/p1"}}`},
		{obs, "p1", `{"resourceType":"Observation","subject":{"reference":"Patient/p2"}}`},
		{obs, "p1", `{"resourceType":"Observation","subject":{"reference":"Patient/p2"},"performer":[{"reference":"Patient/p1"}]}`},
		{obs, "p1", `{"resourceType":"Observation","subject":{"reference":"https://fhir.example.org/fhir/Patient/p1/_history/2"}}`},
		{obs, "p1", `{"resourceType":"Observation","subject":{"reference":"p1/_history/Patient/x"}}`},
		{obs, "p1", `{"resourceType":"Observation","subject":{"reference":"Group/p1"}}`},
		{obs, "p1", `{"resourceType":"Observation","subject":{"reference":"Patient/p1"},"subject":{"reference":"Patient/p2"}}`},
		{obs, "p1", `{"resourceType":"Observation","Subject":{"reference":"Patient/p1"}}`},
		{obs, "p1", `{"resourceType":"Observation","focus":[{"reference":"Patient/p1"}]}`},
		{obs, "p1", `{"subject":{"identifier":{"assigner":{"reference":"Patient/p1"}}}}`},
		{pat, "p1", `{"resourceType":"Patient","id":"p1"}`},
		{pat, "p1", `{"resourceType":"Patient","id":"p2","link":[{"other":{"reference":"Patient/p1"}}]}`},
		{ct, "p1", `{"resourceType":"CareTeam","participant":[{"member":{"reference":"Patient/p1"}}]}`},
	} {
		f.Add(s.t, s.pid, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, ti uint8, pid string, body []byte) {
		if !fhirIDOracle.MatchString(pid) {
			return
		}
		res, ok := parseJSONObject(body)
		if !ok {
			return // the guard refuses what is not a JSON object
		}
		typ := pickType(ti)
		if _, has := res["resourceType"]; !has {
			res["resourceType"] = typ
		}
		got := resourceBelongs(typ, res, pid, fzFHIRBase)
		if want := belongsOracle(typ, res, pid, fzFHIRBase); got != want {
			t.Fatalf("resourceBelongs(%s, %s, %s) = %v, want %v", typ, body, pid, got, want)
		}
		b, err := json.Marshal(res)
		if err != nil {
			t.Fatalf("re-encoding %s: %v", body, err)
		}
		again, ok := parseJSONObject(b)
		if !ok || resourceBelongs(typ, again, pid, fzFHIRBase) != got {
			t.Fatalf("%s: re-encoded as %s, membership changes (was %v)", body, b, got)
		}
		bundle := map[string]any{"resourceType": "Bundle", "entry": []any{
			map[string]any{"resource": res}, map[string]any{"request": map[string]any{"method": "DELETE"}},
		}}
		if bundleBelongs(typ, bundle, pid, fzFHIRBase) != got {
			t.Fatalf("a history Bundle of %s: membership differs from the resource's (%v)", body, got)
		}
		bundle["entry"] = append(bundle["entry"].([]any), "not an entry")
		if bundleBelongs(typ, bundle, pid, fzFHIRBase) {
			t.Fatalf("a history Bundle with a non-object entry belongs")
		}
	})
}

// ambiguousSearch tells whether a search names a compartment parameter
// (key, patient, subject, _id) in another case, or with a modifier other
// than :Patient: the guard refuses those outright.
func ambiguousSearch(params url.Values, key string) bool {
	for k := range params {
		name, mod, hasMod := strings.Cut(k, ":")
		base, _, _ := strings.Cut(name, ".")
		for _, c := range []string{key, "patient", "subject", "_id"} {
			switch {
			case strings.EqualFold(base, c) && base != c:
				return true
			case name == c && hasMod && (mod != "Patient" || c == "_id"):
				return true
			}
		}
	}
	return false
}
