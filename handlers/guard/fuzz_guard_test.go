package guard

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// friendlyAnswer is an upstream that answers reads of an instance with a
// resource of the patient fzPatient (every compartment element names
// her), instance history with a Bundle of it, searches with an empty
// searchset and writes with "{}": whatever the guard lets through then
// reaches the client, so the checks see the guard's decisions alone.
func friendlyAnswer(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/fhir+json")
	var answer any = map[string]any{"resourceType": "Bundle", "type": "searchset"}
	segs := strings.Split(strings.TrimPrefix(r.URL.Path, "/fhir/"), "/")
	switch {
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		answer = map[string]any{}
	case len(segs) >= 2 && resourceTypeRE.MatchString(segs[0]) && validID(segs[1]):
		res := map[string]any{"resourceType": segs[0], "id": segs[1]}
		for _, el := range compartmentElements(segs[0]) {
			res[el] = map[string]any{"reference": "Patient/" + fzPatient}
		}
		answer = res
		if len(segs) == 3 && segs[2] == "_history" {
			answer = map[string]any{"resourceType": "Bundle", "type": "history", "entry": []any{map[string]any{"resource": res}}}
		}
	}
	b, _ := json.Marshal(answer)
	_, _ = w.Write(b)
}

// fuzzContentTypes are the Content-Type headers a fuzzed request picks
// from ("" for none).
var fuzzContentTypes = []string{"", "application/x-www-form-urlencoded", "application/fhir+json", "application/json; charset=utf-8", "text/plain"}

// hasDotSegment tells whether a raw path has a "." or ".." segment.
func hasDotSegment(p string) bool {
	for _, sg := range strings.Split(p, "/") {
		if sg == "." || sg == ".." {
			return true
		}
	}
	return false
}

// FuzzGuardRequest sends any method, request-target, If-None-Exist and
// body with a valid patient/*.cruds token for fzPatient through the guard,
// in front of friendlyAnswer, and checks what reaches the upstream:
//   - a path under the FHIR base (in any spelling Caddy's matchers would
//     route there) with %, //, . or .. segments is always refused (400)
//     and never forwarded;
//   - a refused request never reaches the upstream, and is answered with
//     an OperationOutcome;
//   - everything forwarded is inside the patient compartment
//     (checkForwarded): canonical path, searches confined to the patient,
//     resources sent in the compartment, writes of other instances only
//     after their stored version was read, nothing system-level.
func FuzzGuardRequest(f *testing.F) {
	e := newFuzzEnv(f)
	for _, s := range []struct {
		method, target, ine string
		ct                  uint8
		body                string
	}{
		{"GET", "/fhir/Observation?code=1234", "", 0, ""},
		{"GET", "/fhir/Observation?subject=Patient/p2", "", 0, ""},
		{"GET", "/fhir/Observation?subject=p1", "", 0, ""},
		{"GET", "/fhir/Observation/o1", "", 0, ""},
		{"HEAD", "/fhir/Observation/o1/_history/2", "", 0, ""},
		{"GET", "/fhir/Patient/p1", "", 0, ""},
		{"GET", "/fhir/Patient/p2", "", 0, ""},
		{"GET", "/fhir/Patient/p1/Observation?_include=Observation:subject", "", 0, ""},
		{"GET", "/fhir/Patient/p1/$everything", "", 0, ""},
		{"GET", "/fhir/$export", "", 0, ""},
		{"GET", "/fhir/metadata", "", 0, ""},
		{"GET", "/fhir/metad%61ta", "", 0, ""},
		{"GET", "/fhir/Patient/p%31", "", 0, ""},
		{"GET", "/fhir//Patient/p1", "", 0, ""},
		{"GET", "/fhir/./Patient/p1", "", 0, ""},
		{"GET", "/fhir/Observation/../Patient/p2", "", 0, ""},
		{"GET", "/FHIR/Patient/p2", "", 0, ""},
		{"GET", "//fhir/Patient/p2", "", 0, ""},
		{"GET", "/fhir", "", 0, ""},
		{"POST", "/fhir/Observation/_search", "", 1, "subject=Patient/p2"},
		{"POST", "/fhir/Observation/_search", "", 1, "code=1"},
		{"POST", "/fhir/Observation", "", 2, `{"resourceType":"Observation","subject":{"reference":"Patient/p1"}}`},
		{"POST", "/fhir/Observation", "", 2, `{"resourceType":"Observation","subject":{"reference":"Patient/p2"}}`},
		{"POST", "/fhir/Observation", "identifier=x", 2, `{"resourceType":"Observation","subject":{"reference":"Patient/p1"}}`},
		{"PUT", "/fhir/Observation/o1", "", 3, `{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"}}`},
		{"PUT", "/fhir/Observation?identifier=x", "", 2, `{"resourceType":"Observation","subject":{"reference":"Patient/p1"}}`},
		{"PATCH", "/fhir/Observation/o1", "", 2, `[]`},
		{"DELETE", "/fhir/Observation?code=1", "", 0, ""},
		{"DELETE", "/fhir/Patient/p1", "", 0, ""},
		{"PUT", "/fhir/Patient/p1", "", 2, `{"resourceType":"Patient","id":"p1"}`},
		{"POST", "/fhir", "", 2, `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation?code=1"}}]}`},
	} {
		f.Add(s.method, s.target, s.ine, s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, method, target, ine string, ct uint8, body []byte) {
		req, ok := newFuzzRequest(method, target, body)
		if !ok || !validHeader(ine) {
			return
		}
		if ine != "" {
			req.Header.Set("If-None-Exist", ine)
		}
		if c := fuzzContentTypes[int(ct)%len(fuzzContentTypes)]; c != "" {
			req.Header.Set("Content-Type", c)
		}
		req.Header.Set("Authorization", "Bearer "+e.token)
		path := req.URL.Path
		if !e.g.Guards(path) {
			return // not the guard's
		}
		up := &upstream{answer: friendlyAnswer}
		w := e.serve(req, up)
		rawPath, _, _ := strings.Cut(target, "?")
		if strings.Contains(rawPath, "%") || strings.Contains(rawPath, "//") || hasDotSegment(rawPath) {
			// A method no FHIR interaction has may be refused for that
			// first (405); never forwarded either way.
			odd := !slices.Contains([]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}, method)
			if len(up.calls) > 0 || w.Code != http.StatusBadRequest && !(odd && w.Code == http.StatusMethodNotAllowed) {
				t.Fatalf("%s %s: answered %d, %d upstream requests; want 400 and none", method, target, w.Code, len(up.calls))
			}
		}
		if len(up.calls) == 0 {
			checkOutcome(t, w)
			return
		}
		for i := range up.calls {
			checkForwarded(t, up.calls, i)
		}
	})
}

// FuzzGuardBundle posts any body as a batch or transaction with a valid
// patient/*.cruds token for fzPatient and checks the Bundle reader: a
// refused Bundle never reaches the upstream; a forwarded one is exactly
// what was sent, entry by entry (the same resources), with only the
// compartment restrictions added, and every entry is inside the
// compartment (checkForwardedBundle): no entry resource outside it, no
// search beyond it, no read or write the guard cannot check, no nested
// Bundle.
func FuzzGuardBundle(f *testing.F) {
	e := newFuzzEnv(f)
	entry := func(method, url, resource string) string {
		s := `{"request":{"method":"` + method + `","url":"` + url + `"}`
		if resource != "" {
			s += `,"resource":` + resource
		}
		return s + "}"
	}
	bundle := func(typ string, entries ...string) []byte {
		return []byte(`{"resourceType":"Bundle","type":"` + typ + `","entry":[` + strings.Join(entries, ",") + `]}`)
	}
	obs := func(subject string) string {
		return `{"resourceType":"Observation","subject":{"reference":"` + subject + `"}}`
	}
	for _, b := range [][]byte{
		bundle("batch", entry("GET", "Observation?code=1", "")),
		bundle("batch", entry("GET", "Observation?subject=Patient/p2", "")),
		bundle("transaction", entry("POST", "Observation", obs("Patient/p1"))),
		bundle("transaction", entry("POST", "Observation", obs("Patient/p2"))),
		bundle("transaction", entry("POST", "Observation", `{"resourceType":"Observation","subject":{"reference":"Patient/p2"},"performer":[{"reference":"Patient/p1"}]}`)),
		bundle("transaction", entry("PUT", "Observation?identifier=x", obs("Patient/p1"))),
		bundle("batch", entry("GET", "Observation/o1", "")),
		bundle("batch", entry("DELETE", "Observation/o1", "")),
		bundle("batch", entry("GET", "Patient/p1", ""), entry("GET", "Patient/p2", "")),
		bundle("batch", entry("get", "https://fhir.example.org/fhir/Observation?code=1", "")),
		bundle("batch", entry("GET", "https://evil.example/fhir/Observation", "")),
		bundle("batch", entry("POST", "", `{"resourceType":"Bundle","type":"batch"}`)),
		bundle("batch", entry("GET", "Observation/%2e%2e/Patient/p2", "")),
		bundle("batch", entry("GET", "metadata", "")),
		bundle("batch", entry("GET", "Patient/p1/Observation?_revinclude=Provenance:target", "")),
		[]byte(`{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"POST","url":"Observation","ifNoneExist":"identifier=1"},"resource":` + obs("Patient/p1") + `}]}`),
		[]byte(`{"resourceType":"Bundle","type":"batch","entry":{}}`),
		[]byte(`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation?code=1","Url":"Observation?subject=Patient/p2"}}]}`),
		[]byte(`{"resourceType":"Bundle","type":"batch","type":"collection"}`),
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, _ := newFuzzRequest(http.MethodPost, "/fhir", body)
		req.Header.Set("Content-Type", "application/fhir+json")
		req.Header.Set("Authorization", "Bearer "+e.token)
		up := &upstream{answer: friendlyAnswer}
		w := e.serve(req, up)
		switch len(up.calls) {
		case 0:
			checkOutcome(t, w)
		case 1:
			checkForwardedBundle(t, up.calls[0].body, decodeJSONObject(body))
		default:
			t.Fatalf("one Bundle made %d upstream requests", len(up.calls))
		}
	})
}
