package integration

import (
	"fmt"
	"strings"

	"pgregory.net/rapid"
)

// invRequest is a generated FHIR request: a method and a path relative to
// the FHIR base (with its query), with an optional body.
type invRequest struct {
	Method, Path, Body, CType string
	Header                    map[string]string
}

// String shows a request in failure messages.
func (r invRequest) String() string {
	s := r.Method + " /fhir/" + r.Path
	for k, v := range r.Header {
		s += " [" + k + ": " + v + "]"
	}
	if r.Body != "" {
		s += " " + r.Body
	}
	return s
}

var (
	invReqTypes  = []string{"Patient", "Observation", "Encounter", "Condition", "AllergyIntolerance", "Observation", "Medication", "Organization"}
	invCompTypes = []string{"Observation", "Encounter", "Condition", "AllergyIntolerance"}
)

// genRequest draws a FHIR request about one of the patients: reads,
// searches (with bare, typed, absolute and modified reference parameters),
// writes, operations, system-level interactions and Bundles, on Patient,
// compartment types and types outside the compartment. fhirBase is the
// absolute FHIR base (for absolute references).
func genRequest(fhirBase string, patients []string) *rapid.Generator[invRequest] {
	return rapid.Custom(func(t *rapid.T) invRequest {
		pt := rapid.SampledFrom(patients)
		typ := rapid.SampledFrom(invReqTypes).Draw(t, "type")
		target := pt.Draw(t, "patient")
		id := genID(t, typ, target)
		fhirJSON := "application/fhir+json"
		switch rapid.IntRange(0, 15).Draw(t, "interaction") {
		case 0:
			return invRequest{Method: "GET", Path: typ + "/" + id}
		case 1:
			return invRequest{Method: "GET", Path: typ + "/" + id + "/_history/1"}
		case 2:
			return invRequest{Method: "GET", Path: typ + "/" + id + "/_history"}
		case 3, 4:
			return invRequest{Method: "GET", Path: typ + genQuery(t, typ, fhirBase, pt)}
		case 5:
			return invRequest{Method: "POST", Path: typ + "/_search", Body: strings.TrimPrefix(genQuery(t, typ, fhirBase, pt), "?"), CType: "application/x-www-form-urlencoded"}
		case 6:
			ct := rapid.SampledFrom(invCompTypes).Draw(t, "compType")
			return invRequest{Method: "GET", Path: "Patient/" + target + "/" + ct + genQuery(t, ct, fhirBase, pt)}
		case 7:
			return invRequest{Method: "POST", Path: typ, Body: genResource(t, typ, "", pt), CType: fhirJSON}
		case 8:
			return invRequest{Method: "PUT", Path: typ + "/" + id, Body: genResource(t, typ, id, pt), CType: fhirJSON}
		case 9:
			return invRequest{Method: "DELETE", Path: typ + "/" + id}
		case 10:
			return invRequest{Method: "DELETE", Path: typ + genQuery(t, typ, fhirBase, pt)}
		case 11:
			return invRequest{Method: "PATCH", Path: typ + "/" + id, Body: `[{"op":"replace","path":"/status","value":"final"}]`, CType: "application/json-patch+json"}
		case 12:
			return rapid.SampledFrom([]invRequest{
				{Method: "GET", Path: "Patient/" + target + "/$everything"},
				{Method: "GET", Path: "Observation/$lastn" + genQuery(t, "Observation", fhirBase, pt)},
				{Method: "GET", Path: "$export"},
				{Method: "GET", Path: "Patient/$export"},
				{Method: "GET", Path: "Patient/$everything"},
				{Method: "GET", Path: "Observation/" + genID(t, "Observation", target) + "/$validate"},
				{Method: "POST", Path: "Observation/$validate", Body: genResource(t, "Observation", "", pt), CType: fhirJSON},
				{Method: "GET", Path: "Patient/" + target + "/$validate"},
			}).Draw(t, "operation")
		case 13:
			return rapid.SampledFrom([]invRequest{
				{Method: "GET", Path: "?_type=Observation"},
				{Method: "GET", Path: "_history"},
				{Method: "GET", Path: typ + "/_history"},
				{Method: "POST", Path: "_search", Body: "_type=Observation", CType: "application/x-www-form-urlencoded"},
			}).Draw(t, "system")
		case 14:
			n := rapid.IntRange(1, 3).Draw(t, "entries")
			entries := make([]string, n)
			for i := range entries {
				entries[i] = genEntry(t, fhirBase, pt)
			}
			kind := rapid.SampledFrom([]string{"batch", "transaction"}).Draw(t, "bundleType")
			return invRequest{Method: "POST", Path: "", Body: bundleOf(kind, entries...), CType: fhirJSON}
		default:
			return invRequest{Method: "POST", Path: typ, Body: genResource(t, typ, "", pt), CType: fhirJSON,
				Header: map[string]string{"If-None-Exist": strings.TrimPrefix(genQuery(t, typ, fhirBase, pt), "?")}}
		}
	})
}

// genID draws the id of a stored resource of patient p (see fakeResource):
// p itself for Patient; "o-p" (subject p), "focus-p" (in no compartment)
// or "missing-p" (404) for compartment types; any id for other types.
func genID(t *rapid.T, typ, p string) string {
	switch {
	case typ == "Patient":
		return p
	case invCompartment[typ] == nil:
		return "m1"
	}
	return rapid.SampledFrom([]string{"o-", "o-", "o-", "focus-", "missing-"}).Draw(t, "idKind") + p
}

// genQuery draws a query string ("" or "?a=b&…") for a search on typ.
func genQuery(t *rapid.T, typ, fhirBase string, pt *rapid.Generator[string]) string {
	n := rapid.IntRange(0, 3).Draw(t, "params")
	var ps []string
	for range n {
		p := pt.Draw(t, "paramPatient")
		var choices []string
		switch {
		case typ == "Patient":
			choices = []string{"_id=" + p, "_id=" + p + "," + pt.Draw(t, "p2"), "name=x", "link=Patient/" + p, "_count=5"}
		case invCompartment[typ] != nil:
			choices = []string{"code=1234", "category=laboratory", "subject=Patient/" + p, "subject=" + p, "patient=" + p,
				"patient=Patient/" + p, "subject:Patient=" + p, "subject=" + fhirBase + "/Patient/" + p,
				"performer=Patient/" + p, "_include=Observation:subject", "subject.name=x", "patient=Patient/" + p + ",Patient/" + pt.Draw(t, "p2"),
				invCompartment[typ][0] + "=Patient/" + p, invCompartment[typ][0] + "=" + p}
		default:
			choices = []string{"code=1234", "name=x"}
		}
		ps = append(ps, rapid.SampledFrom(choices).Draw(t, "param"))
	}
	if len(ps) == 0 {
		return ""
	}
	return "?" + strings.Join(ps, "&")
}

// genResource draws a JSON resource of typ for patient p: the primary
// reference (subject, or patient for AllergyIntolerance), sometimes a
// secondary compartment element naming another patient, sometimes a key
// that differs from an element only in case.
func genResource(t *rapid.T, typ, id string, pt *rapid.Generator[string]) string {
	idPart := ""
	if id != "" {
		idPart = fmt.Sprintf(`"id":%q,`, id)
	}
	switch {
	case typ == "Patient":
		if id == "" && rapid.Bool().Draw(t, "withID") {
			idPart = fmt.Sprintf(`"id":%q,`, pt.Draw(t, "patientID"))
		}
		return `{"resourceType":"Patient",` + idPart + `"active":true}`
	case invCompartment[typ] == nil:
		return `{"resourceType":"` + typ + `",` + idPart + `"text":{"status":"generated","div":"<div>x</div>"}}`
	}
	primary := "subject"
	if typ == "AllergyIntolerance" {
		primary = "patient"
	}
	var els []string
	if rapid.IntRange(0, 5).Draw(t, "noPrimary") > 0 {
		els = append(els, fmt.Sprintf(`%q:{"reference":"Patient/%s"}`, primary, pt.Draw(t, "primary")))
	}
	if rapid.IntRange(0, 3).Draw(t, "secondary") == 0 {
		sec := map[string]string{"Observation": "performer", "Encounter": "subject", "Condition": "asserter", "AllergyIntolerance": "recorder"}[typ]
		ref := fmt.Sprintf(`{"reference":"Patient/%s"}`, pt.Draw(t, "secondaryPatient"))
		if sec == "performer" {
			ref = "[" + ref + "]"
		}
		if sec != primary {
			els = append(els, fmt.Sprintf(`%q:%s`, sec, ref))
		}
	}
	if rapid.IntRange(0, 7).Draw(t, "caseKey") == 0 {
		els = append(els, fmt.Sprintf(`"Subject":{"reference":"Patient/%s"}`, pt.Draw(t, "casePatient")))
	}
	els = append(els, `"status":"final"`)
	return `{"resourceType":"` + typ + `",` + idPart + strings.Join(els, ",") + `}`
}

// genEntry draws a Bundle entry.
func genEntry(t *rapid.T, fhirBase string, pt *rapid.Generator[string]) string {
	p := pt.Draw(t, "entryPatient")
	typ := rapid.SampledFrom(invCompTypes).Draw(t, "entryType")
	switch rapid.IntRange(0, 5).Draw(t, "entryKind") {
	case 0:
		return entry("GET", typ+genQuery(t, typ, fhirBase, pt), "")
	case 1:
		return entry("GET", "Patient/"+p, "")
	case 2:
		return entry("GET", typ+"/"+genID(t, typ, p), "")
	case 3:
		return entry("POST", typ, genResource(t, typ, "", pt))
	case 4:
		return entry("DELETE", typ+"/"+genID(t, typ, p), "")
	default:
		return entry("GET", "Patient"+genQuery(t, "Patient", fhirBase, pt), "")
	}
}
