package guard

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// The checks below say what may reach the upstream behind the guard for
// fzToken (patient/*.cruds, patient fzPatient): only interactions inside
// the patient's compartment, in the one spelling the guard read.

// checkForwardedPath fails unless a path that reached the upstream is the
// FHIR base or under it, spelled canonically: no percent-encoding, no
// empty segment, no dot segment, only FHIR characters.
func checkForwardedPath(t *testing.T, c upstreamCall) string {
	t.Helper()
	if c.rawPath != "" {
		t.Fatalf("%s %s reached the upstream percent-encoded (%s)", c.method, c.path, c.rawPath)
	}
	rel, ok := strings.CutPrefix(c.path, "/fhir")
	if !ok || (rel != "" && rel[0] != '/') {
		t.Fatalf("%s %s reached the upstream outside the FHIR base", c.method, c.path)
	}
	rel = strings.TrimPrefix(rel, "/")
	if rel != "" {
		for _, sg := range strings.Split(rel, "/") {
			if !segmentOK(sg) {
				t.Fatalf("%s %s reached the upstream with segment %q", c.method, c.path, sg)
			}
		}
	}
	return rel
}

// checkForwarded fails unless one request that reached the upstream is
// inside the patient compartment. calls are all the upstream saw for the
// client's request, i the one checked (a write must follow the read of
// the resource it changes).
func checkForwarded(t *testing.T, calls []upstreamCall, i int) {
	t.Helper()
	c := calls[i]
	rel := checkForwardedPath(t, c)
	params, err := url.ParseQuery(c.rawQuery)
	if err != nil {
		t.Fatalf("%s %s?%s: the forwarded query does not parse: %v", c.method, c.path, c.rawQuery, err)
	}
	var ine url.Values
	if h := c.header.Get("If-None-Exist"); h != "" {
		// Only a POST reads it (conditional create); other requests
		// pass it on unread.
		if ine, err = url.ParseQuery(strings.TrimPrefix(h, "?")); err != nil && c.method == http.MethodPost {
			t.Fatalf("%s %s: the forwarded If-None-Exist %q does not parse", c.method, c.path, h)
		} else if c.method != http.MethodPost {
			ine = nil
		}
	}
	in, f := parseInteraction(c.method, rel, params, ine)
	if f != nil {
		t.Fatalf("%s %s?%s reached the upstream, but reads as refused: %s", c.method, c.path, c.rawQuery, f.Description)
	}
	if c.method == http.MethodPost && (in.name == ixSearchType || in.name == ixSearchSystem) {
		// The upstream reads the form body's parameters with the query's.
		form, err := url.ParseQuery(string(c.body))
		if err != nil {
			t.Fatalf("POST %s: the forwarded search form does not parse: %v", c.path, err)
		}
		for k, vs := range form {
			in.params[k] = append(in.params[k], vs...)
		}
	}
	if in.name == ixBatch {
		checkForwardedBundle(t, c.body, nil)
		return
	}
	if msg := outsideCompartment(in, c.body); msg != "" {
		t.Fatalf("%s %s?%s reached the upstream: %s", c.method, c.path, c.rawQuery, msg)
	}
	switch in.name {
	case ixUpdate, ixPatch, ixDelete:
		if in.resourceType == "Patient" {
			break
		}
		if i == 0 || calls[i-1].method != http.MethodGet || calls[i-1].path != c.path {
			t.Fatalf("%s %s reached the upstream without the stored resource read first", c.method, c.path)
		}
	}
}

// outsideCompartment says why an interaction with its body is not inside
// fzPatient's compartment, or "" when it is. Reads of instances other
// than the patient are inside only once their answer is checked, which
// the caller checks.
func outsideCompartment(in *interaction, body []byte) string {
	t := in.resourceType
	base := fzFHIRBase
	if t == "Patient" {
		base = ""
	}
	_, inComp := patientCompartmentR4[t]
	switch {
	case in.name == ixCapabilities:
		return ""
	case t == "" || !inComp:
		return "outside the compartment (" + describeInteraction(in) + ")"
	case in.name == ixSearchCompart:
		switch {
		case in.compartment != fzPatient:
			return "another patient's compartment"
		case t == "Patient":
			return "the patients linked to the patient"
		}
		if ok, why := searchConfined(t, addKey(in.params, t), fzPatient, fzFHIRBase); !ok {
			return why
		}
		return ""
	case t == "Patient" && in.id != "" && in.id != fzPatient:
		return "another Patient"
	}
	switch in.name {
	case ixSearchType, ixCondUpdate, ixCondPatch, ixCondDelete:
		if ok, why := searchConfined(t, in.params, fzPatient, base); !ok {
			return "search not confined: " + why
		}
	case ixCondCreate:
		if ok, why := searchConfined(t, in.ifNoneExist, fzPatient, base); !ok {
			return "If-None-Exist not confined: " + why
		}
	case ixOperation:
		switch {
		case in.level == "instance" && t == "Patient":
		case in.level == "type" && in.method == http.MethodGet:
			if ok, why := searchConfined(t, in.params, fzPatient, base); !ok {
				return "operation not confined: " + why
			}
		default:
			return "operation " + in.op + " at the " + in.level + " level"
		}
	case ixCreate:
		if t == "Patient" {
			return "a new Patient"
		}
	}
	switch in.name {
	case ixCreate, ixCondCreate, ixUpdate, ixCondUpdate:
		res := decodeJSONObject(body)
		switch {
		case res == nil:
			return "the resource sent is not a JSON object"
		case duplicateKeys(body):
			return "the resource sent repeats a key"
		case !belongsOracle(t, res, fzPatient, fzFHIRBase):
			return "the resource sent is not in the compartment: " + string(body)
		}
	}
	return ""
}

// addKey returns params with a value for the confining parameter of t
// that names fzPatient, for checks that only care about other values.
func addKey(params url.Values, t string) url.Values {
	out := url.Values{}
	for k, v := range params {
		out[k] = v
	}
	if t == "Patient" {
		out.Add("_id", fzPatient)
	} else {
		out.Add(patientCompartmentR4[t][0], "Patient/"+fzPatient)
	}
	return out
}

// checkForwardedBundle fails unless a batch or transaction that reached
// the upstream is the one the client sent (sent, when not nil), entry by
// entry, with only the compartment restrictions added, and every entry is
// inside the compartment.
func checkForwardedBundle(t *testing.T, body []byte, sent map[string]any) {
	t.Helper()
	b := decodeJSONObject(body)
	if b == nil || duplicateKeys(body) {
		t.Fatalf("the forwarded Bundle is not one JSON object with one value per key: %s", body)
	}
	if typ := b["type"]; b["resourceType"] != "Bundle" || (typ != "batch" && typ != "transaction") {
		t.Fatalf("a forwarded batch is not a batch or transaction Bundle: %s", body)
	}
	entries, _ := b["entry"].([]any)
	if sent != nil {
		orig, _ := sent["entry"].([]any)
		if len(orig) != len(entries) {
			t.Fatalf("%d entries sent, %d forwarded", len(orig), len(entries))
		}
		for i := range orig {
			before, _ := orig[i].(map[string]any)
			after, _ := entries[i].(map[string]any)
			if !reflect.DeepEqual(before["resource"], after["resource"]) {
				t.Fatalf("entry %d: the resource changed on the way", i)
			}
		}
	}
	for i, e := range entries {
		entry, _ := e.(map[string]any)
		req, _ := entry["request"].(map[string]any)
		method, _ := req["method"].(string)
		raw, _ := req["url"].(string)
		if strings.Contains(raw, "://") {
			var ok bool
			if raw, ok = strings.CutPrefix(raw, fzFHIRBase+"/"); !ok {
				t.Fatalf("entry %d: url %q is on another server", i, raw)
			}
		}
		rel, rawQuery, _ := strings.Cut(strings.TrimPrefix(raw, "/"), "?")
		params, err := url.ParseQuery(rawQuery)
		if strings.Contains(rel, "%") || err != nil {
			t.Fatalf("entry %d: url %q", i, raw)
		}
		var ine url.Values
		if s, _ := req["ifNoneExist"].(string); s != "" {
			ine, _ = url.ParseQuery(strings.TrimPrefix(s, "?"))
		}
		in, f := parseInteraction(strings.ToUpper(method), rel, params, ine)
		if f != nil {
			t.Fatalf("entry %d: %s %s was forwarded, but reads as refused: %s", i, method, raw, f.Description)
		}
		switch in.name {
		case ixBatch:
			t.Fatalf("entry %d: a Bundle inside a Bundle was forwarded", i)
		case ixSearchType, ixSearchSystem:
			if in.method == http.MethodPost {
				t.Fatalf("entry %d: a POST search was forwarded inside a Bundle", i)
			}
		case ixRead, ixVRead, ixHistoryInst, ixUpdate, ixPatch, ixDelete:
			if in.resourceType != "Patient" {
				t.Fatalf("entry %d: %s %s was forwarded inside a Bundle, where it cannot be checked", i, method, raw)
			}
		}
		var resBody []byte
		if res, ok := entry["resource"].(map[string]any); ok {
			if resBody, err = json.Marshal(res); err != nil {
				t.Fatalf("entry %d: %v", i, err)
			}
		}
		if msg := outsideCompartment(in, resBody); msg != "" {
			t.Fatalf("entry %d: %s %s was forwarded: %s", i, method, raw, msg)
		}
	}
}
