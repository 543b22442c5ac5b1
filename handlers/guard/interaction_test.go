package guard

import (
	"net/url"
	"testing"

	"github.com/smartcaddy/smartauth/scopes"
)

func TestParseInteraction(t *testing.T) {
	for _, c := range []struct {
		method, rel, query string
		ifNoneExist        bool
		name, rtype        string
		need               scopes.Perms
		status             int // a refusal's status
	}{
		{"GET", "Observation/1", "", false, ixRead, "Observation", scopes.Read, 0},
		{"HEAD", "Observation/1", "", false, ixRead, "Observation", scopes.Read, 0},
		{"GET", "Observation/1/_history/2", "", false, ixVRead, "Observation", scopes.Read, 0},
		{"GET", "Observation/1/_history", "", false, ixHistoryInst, "Observation", scopes.Read, 0},
		{"GET", "Observation/_history", "", false, ixHistoryType, "Observation", scopes.Search, 0},
		{"GET", "_history", "", false, ixHistorySystem, "", scopes.Search, 0},
		{"GET", "", "_type=Observation", false, ixSearchSystem, "", scopes.Search, 0},
		{"POST", "_search", "", false, ixSearchSystem, "", scopes.Search, 0},
		{"GET", "Observation", "code=1", false, ixSearchType, "Observation", scopes.Search, 0},
		{"POST", "Observation/_search", "", false, ixSearchType, "Observation", scopes.Search, 0},
		{"POST", "Observation", "", false, ixCreate, "Observation", scopes.Create, 0},
		{"POST", "Observation", "", true, ixCondCreate, "Observation", scopes.Create | scopes.Search, 0},
		{"PUT", "Observation/1", "", false, ixUpdate, "Observation", scopes.Update, 0},
		{"PUT", "Observation", "identifier=1", false, ixCondUpdate, "Observation", scopes.Create | scopes.Update | scopes.Search, 0},
		{"PATCH", "Observation/1", "", false, ixPatch, "Observation", scopes.Update, 0},
		{"PATCH", "Observation", "identifier=1", false, ixCondPatch, "Observation", scopes.Update | scopes.Search, 0},
		{"DELETE", "Observation/1", "", false, ixDelete, "Observation", scopes.Delete, 0},
		{"DELETE", "Observation", "identifier=1", false, ixCondDelete, "Observation", scopes.Delete | scopes.Search, 0},
		{"GET", "Patient/p1/Observation", "", false, ixSearchCompart, "Observation", scopes.Search, 0},
		{"POST", "", "", false, ixBatch, "", 0, 0},
		{"GET", "metadata", "", false, ixCapabilities, "", 0, 0},
		{"GET", "Patient/p1/$everything", "", false, ixOperation, "Patient", 0, 0},
		{"GET", "$export", "", false, ixOperation, "", 0, 0},
		{"DELETE", "Observation", "", false, "", "", 0, 400},
		{"POST", "Observation/1", "", false, "", "", 0, 405},
		{"GET", "observation", "", false, "", "", 0, 400},
		{"GET", "Observation/..", "", false, "", "", 0, 400},
		{"GET", "Observation//1", "", false, "", "", 0, 400},
		{"GET", "Observation/1/extra/more/parts", "", false, "", "", 0, 400},
		{"GET", "Observation/$bad op", "", false, "", "", 0, 400},
		{"PUT", "", "", false, "", "", 0, 405},
	} {
		q, _ := url.ParseQuery(c.query)
		var ine url.Values
		if c.ifNoneExist {
			ine = url.Values{"identifier": {"1"}}
		}
		in, f := parseInteraction(c.method, c.rel, q, ine)
		switch {
		case c.status != 0 && (f == nil || f.Status != c.status):
			t.Errorf("%s %s?%s: %+v %+v, want status %d", c.method, c.rel, c.query, in, f, c.status)
		case c.status == 0 && (f != nil || in.name != c.name || in.resourceType != c.rtype || in.need != c.need):
			t.Errorf("%s %s?%s: %+v %+v, want %s %s %s", c.method, c.rel, c.query, in, f, c.name, c.rtype, c.need)
		}
	}
}

func TestResourceBelongs(t *testing.T) {
	const base = "https://fhir.example.org/r4"
	for _, c := range []struct {
		rtype string
		res   map[string]any
		want  bool
	}{
		{"Patient", map[string]any{"resourceType": "Patient", "id": "p1"}, true},
		{"Patient", map[string]any{"resourceType": "Patient", "id": "p2"}, false},
		{"Observation", map[string]any{"resourceType": "Observation", "subject": map[string]any{"reference": "Patient/p1"}}, true},
		{"Observation", map[string]any{"resourceType": "Observation", "subject": map[string]any{"reference": base + "/Patient/p1/_history/3"}}, true},
		{"Observation", map[string]any{"resourceType": "Observation", "subject": map[string]any{"reference": "https://elsewhere.example/Patient/p1"}}, false},
		{"Observation", map[string]any{"resourceType": "Observation", "performer": []any{map[string]any{"reference": "Patient/p1"}}}, true},
		{"Observation", map[string]any{"resourceType": "Observation", "focus": []any{map[string]any{"reference": "Patient/p1"}}}, false},
		{"Observation", map[string]any{"resourceType": "Observation", "subject": map[string]any{"reference": "Group/p1"}}, false},
		{"Observation", map[string]any{"resourceType": "Condition", "subject": map[string]any{"reference": "Patient/p1"}}, false},
		{"Encounter", map[string]any{"resourceType": "Encounter", "subject": map[string]any{"reference": "Patient/p1"}}, true},
		{"Appointment", map[string]any{"resourceType": "Appointment", "participant": []any{map[string]any{"actor": map[string]any{"reference": "Patient/p1"}}}}, true},
		{"Coverage", map[string]any{"resourceType": "Coverage", "policyHolder": map[string]any{"reference": "Patient/p1"}}, true},
		{"Medication", map[string]any{"resourceType": "Medication", "subject": map[string]any{"reference": "Patient/p1"}}, false},
		// Spellings that only contain Patient/ and the id (found by FuzzResourceBelongs).
		{"Observation", map[string]any{"resourceType": "Observation", "subject": map[string]any{"reference": "p1/_history/Patient/x"}}, false},
		{"Observation", map[string]any{"resourceType": "Observation", "subject": map[string]any{"reference": "Patient/p1/_history/"}}, false},
		{"Observation", map[string]any{"resourceType": "Observation", "subject": map[string]any{"reference": "Patient/p1/_history/2/x"}}, false},
	} {
		if got := resourceBelongs(c.rtype, c.res, "p1", base); got != c.want {
			t.Errorf("%s %v: %t, want %t", c.rtype, c.res, got, c.want)
		}
	}
}

func TestRestrictSearch(t *testing.T) {
	for _, c := range []struct {
		rtype, query string
		add          string // key=value added; "" for none
		refused      bool
	}{
		{"Observation", "code=1", "subject=Patient/p1", false},
		{"Observation", "subject=Patient/p1", "", false},
		{"Observation", "subject=p1&patient=Patient/p1", "subject=Patient/p1", false}, // a bare id matches Group/p1 too
		{"Observation", "subject=p1", "subject=Patient/p1", false},
		{"Observation", "subject=" + "https://fhir.example.org/r4/Patient/p1", "subject=Patient/p1", false},
		{"Observation", "subject:Patient=p1", "subject=Patient/p1", false},
		{"Observation", "subject:Group=p1", "", true},
		{"Observation", "subject:identifier=mrn|1", "", true},
		{"Observation", "subject:not=Patient/p1", "", true},
		{"Observation", "subject:missing=false", "", true},
		{"Observation", "patient:missing=true", "", true},
		{"Observation", "Subject=Patient/p2", "", true},
		{"Observation", "SUBJECT=Patient/p1", "", true},
		{"Observation", "Patient=p1", "", true},
		{"Observation", "subject:Patient.name=smith", "subject=Patient/p1", false},
		{"Observation", "patient._id=p2", "subject=Patient/p1", false},
		{"Observation", "_INCLUDE=Observation:subject", "", true},
		{"Observation", "_revInclude=Provenance:target", "", true},
		{"Patient", "_id:not=p1", "", true},
		{"Patient", "_ID=p1", "", true},
		{"Patient", "_id=p1", "", false},
		{"Encounter", "patient=p1", "patient=Patient/p1", false},
		{"Encounter", "patient=Patient/p1", "", false},
		{"Observation", "patient=p1", "subject=Patient/p1", false},
		{"Observation", "subject=p1,p2", "", true},
		{"Observation", "subject:missing=true", "", true},
		{"Observation", "_include=Observation:subject", "", true},
		{"Observation", "_include:iterate=Observation:subject", "", true},
		{"Observation", "_query=everything", "", true},
		{"Observation", "performer=Practitioner/1", "subject=Patient/p1", false},
		{"Observation", "subject.name=smith", "subject=Patient/p1", false},
		{"Encounter", "", "patient=Patient/p1", false},
		{"Patient", "name=x", "_id=p1", false},
		{"Patient", "_id=p2", "", true},
		// Untyped spellings are not the patient (found by FuzzRestrictSearch).
		{"Observation", "subject=https://fhir.example.org/r4/p1", "", true},
		{"Observation", "subject=p1/_history/Patient", "", true},
		// A typed absolute reference names p1, but only the exact typed
		// pair counts as the restriction: it is added.
		{"Observation", "subject=https://fhir.example.org/r4/Patient/p1/_history/2", "subject=Patient/p1", false},
	} {
		q, _ := url.ParseQuery(c.query)
		a, f := restrictSearch(c.rtype, "p1", q, "https://fhir.example.org/r4")
		switch {
		case c.refused && f == nil, !c.refused && f != nil:
			t.Errorf("%s?%s: %+v %+v", c.rtype, c.query, a, f)
		case !c.refused && c.add == "" && a.addKey != "":
			t.Errorf("%s?%s: adds %s=%s", c.rtype, c.query, a.addKey, a.addValue)
		case !c.refused && c.add != "" && a.addKey+"="+a.addValue != c.add:
			t.Errorf("%s?%s: adds %s=%s, want %s", c.rtype, c.query, a.addKey, a.addValue, c.add)
		}
	}
}
