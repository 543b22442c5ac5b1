package guard

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// TestOverrideHeader: the header spellings an upstream could read as an override.
func TestOverrideHeader(t *testing.T) {
	for _, c := range []struct {
		name    string
		refused bool
	}{
		{"X-HTTP-Method-Override", true},
		{"X-Http-Method", true},
		{"X-Method-Override", true},
		{"X_HTTP_METHOD_OVERRIDE", true}, // CGI reads it as X-HTTP-Method-Override
		{"X_http_method_override", true},
		{"X.HTTP.Method", true},
		{"X-Original-Url", true},
		{"X_Original_URL", true},
		{"X-Rewrite-Url", true},
		{"X-Original-Uri", true},
		{"X-Http-Method-Override-Extra", true},
		{"Access-Control-Request-Method", false},
		{"Authorization", false},
		{"If-None-Exist", false},
		{"X-Original-Host", false},
	} {
		h := http.Header{c.name: {""}}
		if got := overrideHeader(h) != ""; got != c.refused {
			t.Errorf("%s: refused %t, want %t", c.name, got, c.refused)
		}
	}
}

// TestIsMethodParam: the parameter names some framework reads as _method.
func TestIsMethodParam(t *testing.T) {
	for k, want := range map[string]bool{
		"_method": true, "_METHOD": true, "_Method": true, " method": true, ".method": true, "[method": true,
		"_method[]": true, "_method[x]": true, "_method:exact": true, "_method.x": true,
		"method": false, "_methodology": false, "__method": false, "x_method": false, "_metho": false, "": false,
	} {
		if got := isMethodParam(k); got != want {
			t.Errorf("%q: %t, want %t", k, got, want)
		}
	}
}

// TestRefuseOverride: what is refused before the token is read.
func TestRefuseOverride(t *testing.T) {
	for _, c := range []struct {
		method, target string
		header         http.Header
		refused        bool
	}{
		{"GET", "/fhir/Observation?code=1", nil, false},
		{"GET", "/fhir/Observation?_method=DELETE", nil, true},
		{"GET", "/fhir/Observation?code=1%23x", nil, false},
		{"POST", "/fhir/Observation/_search", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, false},
		{"POST", "/fhir/_search", http.Header{"Content-Type": {"application/x-www-form-urlencoded; charset=utf-8"}}, false},
		{"POST", "/fhir/Observation", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, true},
		{"PUT", "/fhir/Observation/_search", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, true},
		{"POST", "/fhir/Observation/_search", http.Header{"Content-Type": {"multipart/form-data; boundary=x"}}, true},
		{"POST", "/fhir/Observation", http.Header{"Content-Type": {"application/fhir+json", "application/x-www-form-urlencoded"}}, true},
		{"POST", "/fhir/Observation", http.Header{"Content-Type": {"application/fhir+json"}}, false},
		{"POST", "/fhir/Observation", http.Header{"If-None-Exist": {"identifier=1&_method=DELETE"}}, true},
		{"POST", "/fhir/Observation", http.Header{"If-None-Exist": {"identifier=1#"}}, true},
		{"POST", "/fhir/Observation", http.Header{"Trailer": {"X-Anything"}}, true},
		{"POST", "/fhir/Observation", http.Header{"If-None-Exist": {"subject=Patient/p1", "identifier=x"}}, true},
	} {
		r := httptest.NewRequest(c.method, c.target, nil)
		for k, v := range c.header {
			r.Header[k] = v
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/fhir"), "/")
		_, f := refuseOverride(r, rel)
		if (f != nil) != c.refused || f != nil && (f.Status != 400 || f.Code != "invalid_request") {
			t.Errorf("%s %s %v: %+v, want refused %t", c.method, c.target, c.header, f, c.refused)
		}
	}
	r := httptest.NewRequest("GET", "/fhir/Observation?code=1", nil)
	r.URL.RawQuery = "code=1#x" // as net/http leaves a '#' in the request line
	if _, f := refuseOverride(r, "Observation"); f == nil {
		t.Error("a '#' in the query passed")
	}
}

// TestParseCheckedJSON: keys another parser could read differently are refused.
func TestParseCheckedJSON(t *testing.T) {
	for _, c := range []struct {
		body string
		ok   bool
		keys bool // refused for its keys (else for bad JSON)
	}{
		{`{"resourceType":"Observation","subject":{"reference":"Patient/p1"},"_status":{"id":"a"},"valueQuantity":{"value":1.50}}`, true, false},
		{`{"a":[{"b":1},{"b":2}],"c":[[]]}`, true, false},
		{`{"subject":1,"subject":2}`, false, true},
		{`{"subject":1,"su\u0062ject":2}`, false, true},
		{`{"subject":1,"Subject":2}`, false, true},
		{`{"Subject":2}`, false, true},
		{`{"resourcetype":"Patient"}`, false, true},
		{`{"REFERENCE":"Patient/p2"}`, false, true},
		{`{"entry":[{"Request":{}}]}`, false, true},
		{`{"entry":[{"request":{"URL":"x"}}]}`, false, true},
		{`{"policyholder":{}}`, false, true},
		{`{"ſubject":1}`, false, true},
		{`{"subject\u0000":1}`, false, true},
		{`{" subject":1}`, false, true},
		{`{"":1}`, false, true},
		{`{"a":{"x":1,"x":2}}`, false, true},
		{`{"a":[{"x":1,"X":2}]}`, false, true},
		{`{"a":1} {"b":2}`, false, false},
		{`{"a":1`, false, false},
		{`[{"a":1}]`, false, false},
		{`null`, false, false},
		{strings.Repeat(`{"a":`, maxCheckedDepth+1) + `1` + strings.Repeat(`}`, maxCheckedDepth+1), false, false},
		{strings.Repeat(`[`, 100000) + strings.Repeat(`]`, 100000), false, false},
	} {
		res, msg, err := parseCheckedJSON([]byte(c.body))
		short := c.body
		if len(short) > 60 {
			short = short[:60]
		}
		switch {
		case c.ok && (err != nil || res == nil):
			t.Errorf("%s: %v %s", short, err, msg)
		case !c.ok && err == nil:
			t.Errorf("%s: accepted", short)
		case !c.ok && errors.Is(err, errJSONKeys) != c.keys:
			t.Errorf("%s: %v (%s), key problem want %t", short, err, msg, c.keys)
		}
	}
}

// TestResourceWritable: the write rule against the read rule.
func TestResourceWritable(t *testing.T) {
	const base = "https://fhir.example.org/r4"
	ref := func(r string) map[string]any { return map[string]any{"reference": r} }
	obs := func(kv ...any) map[string]any {
		m := map[string]any{"resourceType": "Observation"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	for _, c := range []struct {
		name          string
		rtype         string
		res           map[string]any
		write, belong bool
	}{
		{"subject p1", "Observation", obs("subject", ref("Patient/p1")), true, true},
		{"absolute subject p1", "Observation", obs("subject", ref(base+"/Patient/p1")), true, true},
		{"subject p2, performer p1", "Observation", obs("subject", ref("Patient/p2"), "performer", []any{ref("Patient/p1")}), false, true},
		{"subject p1, performer p2", "Observation", obs("subject", ref("Patient/p1"), "performer", []any{ref("Patient/p2")}), false, true},
		{"no subject, performer p1", "Observation", obs("performer", []any{ref("Patient/p1")}), false, true},
		{"subject p1, practitioner performer", "Observation", obs("subject", ref("Patient/p1"), "performer", []any{ref("Practitioner/x")}), true, true},
		{"conditional subject", "Observation", obs("subject", ref("Patient?identifier=1"), "performer", []any{ref("Patient/p1")}), false, true},
		{"logical Patient subject", "Observation", obs("subject", map[string]any{"type": "Patient", "identifier": map[string]any{"value": "1"}}, "performer", []any{ref("Patient/p1")}), false, true},
		{"typed bare reference", "Observation", obs("subject", ref("Patient/p1"), "performer", []any{map[string]any{"reference": "p2", "type": "Patient"}}), false, true},
		{"another server's p1 too", "Observation", obs("subject", ref("Patient/p1"), "performer", []any{ref("https://other.example/Patient/p1")}), false, true},
		{"p1 only in an extension", "Observation", obs("subject", map[string]any{"reference": "Group/g1", "extension": []any{map[string]any{"url": "x", "valueReference": ref("Patient/p1")}}}), false, false},
		{"p2 in an extension of subject", "Observation", obs("subject", map[string]any{"reference": "Patient/p1", "extension": []any{map[string]any{"url": "x", "valueReference": ref("Patient/p2")}}}), false, true},
		{"Group subject", "Observation", obs("subject", ref("Group/p1")), false, false},
		{"Encounter subject p1", "Encounter", map[string]any{"resourceType": "Encounter", "subject": ref("Patient/p1")}, true, true},
		{"Appointment participant p1 and practitioner", "Appointment", map[string]any{"resourceType": "Appointment", "participant": []any{
			map[string]any{"actor": ref("Patient/p1")}, map[string]any{"actor": ref("Practitioner/x")}}}, true, true},
		{"Appointment participants p1 and p2", "Appointment", map[string]any{"resourceType": "Appointment", "participant": []any{
			map[string]any{"actor": ref("Patient/p1")}, map[string]any{"actor": ref("Patient/p2")}}}, false, true},
		{"Coverage beneficiary p1", "Coverage", map[string]any{"resourceType": "Coverage", "beneficiary": ref("Patient/p1")}, true, true},
		{"Coverage policyHolder p1 only", "Coverage", map[string]any{"resourceType": "Coverage", "policyHolder": ref("Patient/p1"), "beneficiary": ref("Patient/p2")}, false, true},
		{"Person link p1", "Person", map[string]any{"resourceType": "Person", "link": []any{map[string]any{"target": ref("Patient/p1")}}}, true, true},
		{"Patient p1", "Patient", map[string]any{"resourceType": "Patient", "id": "p1"}, true, true},
		{"Patient p2", "Patient", map[string]any{"resourceType": "Patient", "id": "p2"}, false, false},
		{"wrong type", "Observation", map[string]any{"resourceType": "Condition", "subject": ref("Patient/p1")}, false, false},
		{"outside the compartment", "Medication", map[string]any{"resourceType": "Medication", "subject": ref("Patient/p1")}, false, false},
	} {
		if got := resourceWritable(c.rtype, c.res, "p1", base); got != c.write {
			t.Errorf("%s: writable %t, want %t", c.name, got, c.write)
		}
		if got := resourceBelongs(c.rtype, c.res, "p1", base); got != c.belong {
			t.Errorf("%s: belongs %t, want %t", c.name, got, c.belong)
		}
	}
}

// TestPrimaryElements: every compartment type has a primary element.
func TestPrimaryElements(t *testing.T) {
	for typ, want := range map[string]string{
		"Observation": "subject", "Encounter": "patient subject", "Coverage": "beneficiary",
		"Appointment": "actor participant", "Person": "link", "Group": "member", "Medication": "",
	} {
		if got := strings.Join(primaryElements(typ), " "); got != want {
			t.Errorf("%s: %q, want %q", typ, got, want)
		}
	}
	for typ := range patientCompartmentR4 {
		if len(primaryElements(typ)) == 0 {
			t.Errorf("%s has no primary element", typ)
		}
	}
}

// TestSplitParam: name, modifier and chain of search parameter names.
func TestSplitParam(t *testing.T) {
	for k, want := range map[string][3]string{
		"subject":              {"subject", "", ""},
		"subject:Patient":      {"subject", "Patient", ""},
		"subject.name":         {"subject", "", "chained"},
		"subject:Patient.name": {"subject", "Patient", "chained"},
		"_id:not":              {"_id", "not", ""},
	} {
		name, mod, chained := splitParam(k)
		c := ""
		if chained {
			c = "chained"
		}
		if got := [3]string{name, mod, c}; got != want {
			t.Errorf("%s: %v, want %v", k, got, want)
		}
	}
}

// TestRestrictSearchKeepsOrder checks that the query is only appended to:
// what the client sent stays as it was, in its order.
func TestRestrictSearchKeepsOrder(t *testing.T) {
	q, _ := url.ParseQuery("subject=p1&code=1")
	a, f := restrictSearch("Observation", "p1", q, "")
	if f != nil || appendParam("subject=p1&code=1", a.addKey, a.addValue) != "subject=p1&code=1&subject=Patient%2Fp1" {
		t.Fatalf("%+v %+v", a, f)
	}
}

// TestPatchTouches: the patch operations that reach guarded elements.
func TestPatchTouches(t *testing.T) {
	guarded := patchGuardedNames("Observation")
	for body, touches := range map[string]bool{
		`[{"op":"replace","path":"/status","value":"x"}]`:               false,
		`[{"op":"test","path":"/code/text","value":"x"}]`:               false,
		`[{"op":"replace","path":"/subject","value":{}}]`:               true,
		`[{"op":"replace","path":"/SUBJECT/reference","value":"x"}]`:    true,
		`[{"op":"add","path":"/performer/-","value":{}}]`:               true,
		`[{"op":"copy","from":"/performer/0","path":"/note/0"}]`:        true,
		`[{"op":"replace","path":"","value":{}}]`:                       true,
		`[{"op":"replace","path":"/","value":{}}]`:                      true,
		`[{"op":"replace","path":"/resourceType","value":"Condition"}]`: true,
		`[{"op":"replace","path":"/id","value":"x"}]`:                   true,
		`[{"op":"replace","path":"/sub~0ject","value":"x"}]`:            false,
		`[{"op":"replace","path":1}]`:                                   true,
		`["replace"]`:                                                   true,
		`{"resourceType":"Bundle"}`:                                     true,
		`{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"path","valueString":"Observation.status"}]}]}`:     false,
		`{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"path","valueString":"Observation.subject"}]}]}`:    true,
		`{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"Path","valueCode":"Observation.Performer"}]}]}`:    true,
		`{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"name","valueString":"subject"}]}]}`:                true,
		`{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"path","valueString":"Observation.children()"}]}]}`: true,
	} {
		v, _, err := parseCheckedValue([]byte(body))
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		var why string
		switch x := v.(type) {
		case []any:
			why = jsonPatchTouches(x, guarded)
		case map[string]any:
			why = fhirPathPatchTouches(x, guarded)
		}
		if (why != "") != touches {
			t.Errorf("%s: %q, want touches %t", body, why, touches)
		}
	}
	if patchGuardedNames("Patient")["link"] || !patchGuardedNames("Patient")["id"] {
		t.Error("Patient patches guard id only")
	}
}

// BenchmarkParseJSON compares the strict parser of checked bodies with
// the plain decoder on a resource and on a searchset-sized Bundle.
func BenchmarkParseJSON(b *testing.B) {
	obs := `{"resourceType":"Observation","id":"o1","meta":{"versionId":"3","lastUpdated":"2024-01-01T00:00:00Z"},"status":"final",` +
		`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],` +
		`"code":{"coding":[{"system":"http://loinc.org","code":"85354-9","display":"Blood pressure"}]},"subject":{"reference":"Patient/p1"},` +
		`"effectiveDateTime":"2024-01-01","component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"unit":"mmHg"}},` +
		`{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80,"unit":"mmHg"}}]}`
	entries := make([]string, 500)
	for i := range entries {
		entries[i] = `{"fullUrl":"x","resource":` + obs + `}`
	}
	bundle := `{"resourceType":"Bundle","type":"searchset","entry":[` + strings.Join(entries, ",") + `]}`
	for _, c := range []struct{ name, body string }{{"resource", obs}, {"bundle500", bundle}} {
		b.Run(c.name+"/strict", func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			for b.Loop() {
				if _, _, err := parseCheckedJSON([]byte(c.body)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/plain", func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			for b.Loop() {
				if _, ok := parseJSONObject([]byte(c.body)); !ok {
					b.Fatal("not parsed")
				}
			}
		})
	}
}

// tokenKeysBad is the reference for checkKeys: it walks the JSON with
// encoding/json's tokenizer and applies keyProblem to every object's keys.
func tokenKeysBad(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	type frame struct {
		object, expectKey bool
		folded            map[string]string
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		d, delim := tok.(json.Delim)
		switch {
		case delim && (d == '}' || d == ']'):
			stack = stack[:len(stack)-1]
			continue
		case top != nil && top.object && top.expectKey:
			if keyProblem(tok.(string), top.folded) != "" {
				return true
			}
			top.expectKey = false
			continue
		case top != nil && top.object:
			top.expectKey = true // a value: a key comes next
		}
		if delim {
			stack = append(stack, &frame{object: d == '{', expectKey: d == '{', folded: map[string]string{}})
		}
	}
}

// FuzzParseCheckedJSON checks the key scanner against the tokenizer: what
// it accepts encoding/json decodes to the same value, and it refuses for
// its keys exactly what the reference refuses.
func FuzzParseCheckedJSON(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":1,"a":2}`, `{"a":{"b":"\"x\\"","B":1}}`, `[{"su\u0062ject":1,"subject":2}]`,
		`{"resourceType":"Bundle","entry":[{"request":{"method":"GET","url":"x"}}]}`, `{"Subject":1}`, `{"a":"{\"b\":1,\"b\":2}"}`, `{"\u00e9":1}`, "\v{}", "{} \v"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, _, err := parseCheckedValue(b)
		var plain any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		plainErr := dec.Decode(&plain)
		switch {
		case err == nil && (plainErr != nil || !reflect.DeepEqual(v, plain)):
			t.Fatalf("accepted %q: %v, encoding/json: %v %v", b, v, plain, plainErr)
		case err == nil && tokenKeysBad(b):
			t.Fatalf("accepted keys the reference refuses: %q", b)
		case errors.Is(err, errJSONKeys) && !tokenKeysBad(b):
			t.Fatalf("refused keys the reference accepts: %q", b)
		}
	})
}
