package guard

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// answerCase is a request whose upstream answer the guard may have to
// check, with a patient/*.cruds token for fzPatient.
type answerCase struct {
	method, path, body string
	// rtype is the type a checked answer must have; "" when the answer
	// is passed on unchecked.
	rtype string
	// precheck: the stored resource is read (and checked) first.
	precheck bool
}

// answerCases are the requests FuzzGuardAnswer picks from.
var answerCases = []answerCase{
	{"GET", "Observation/o1", "", "Observation", false},
	{"GET", "Observation/o1/_history/2", "", "Observation", false},
	{"GET", "Observation/o1/_history", "", "Observation", false},
	{"GET", "Encounter/e1", "", "Encounter", false},
	{"GET", "CareTeam/c1", "", "CareTeam", false},
	{"GET", "Patient/p1", "", "", false},
	{"PUT", "Observation/o1", `{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"}}`, "Observation", true},
	{"DELETE", "Observation/o1", "", "Observation", true},
	{"PATCH", "Observation/o1", `[{"op":"replace","path":"/status","value":"final"}]`, "Observation", true},
}

// answerBelongs tells whether an upstream answer is in fzPatient's
// compartment: a resource of type t that belongs, or a Bundle whose every
// resource does (entries without a resource are deleted versions of a
// history). A Bundle is accepted for any checked read, not only for
// instance history: what matters is that it holds nothing of anyone else.
func answerBelongs(body []byte, t string) bool {
	res := decodeCheckedJSON(body)
	if res == nil {
		return false
	}
	if res["resourceType"] != "Bundle" {
		return belongsOracle(t, res, fzPatient, fzFHIRBase)
	}
	entries, _ := res["entry"].([]any)
	for _, e := range entries {
		m, ok := e.(map[string]any)
		if !ok {
			return false
		}
		r, has := m["resource"]
		if !has {
			continue
		}
		rm, ok := r.(map[string]any)
		if !ok || !belongsOracle(t, rm, fzPatient, fzFHIRBase) {
			return false
		}
	}
	return true
}

// FuzzGuardAnswer checks the upstream-answer checker: the upstream
// answers a read (or the read before a write) with any status, content
// type and body, and a header the client must not see when the answer is
// refused.
//   - a checked read's 2xx answer reaches the client only when it belongs
//     to the patient (answerBelongs), and then byte for byte; otherwise
//     the client gets an OperationOutcome without the upstream's body or
//     headers;
//   - a non-2xx answer passes unchanged, as does an unchecked read;
//   - a write goes on only when the stored resource belongs to the
//     patient, or does not exist (404, 410).
func FuzzGuardAnswer(f *testing.F) {
	e := newFuzzEnv(f)
	for _, s := range []struct {
		c      uint8
		status uint16
		body   string
	}{
		{0, 200, `{"resourceType":"Observation","subject":{"reference":"Patient/p1"}}`},
		{0, 200, `{"resourceType":"Observation","subject":{"reference":"Patient/p2"}}`},
		{0, 200, `{"resourceType":"Condition","subject":{"reference":"Patient/p1"}}`},
		{0, 200, `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Observation","subject":{"reference":"Patient/p2"}}}]}`},
		{0, 200, `{"resourceType":"Observation","subject":{"reference":"Patient/p1"}} {}`},
		{0, 404, `{"resourceType":"OperationOutcome"}`},
		{0, 200, `<Observation/>`},
		{2, 200, `{"resourceType":"Bundle","type":"history","entry":[{"request":{"method":"DELETE"}},{"resource":{"resourceType":"Observation","subject":{"reference":"Patient/p1"}}}]}`},
		{2, 200, `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Observation","subject":{"reference":"Patient/p1"}}},{"resource":{"resourceType":"Observation","subject":{"reference":"Patient/p2"}}}]}`},
		{4, 200, `{"resourceType":"CareTeam","participant":[{"member":{"reference":"Patient/p1"}}]}`},
		{5, 200, `{"resourceType":"Patient","id":"p2"}`},
		{6, 200, `{"resourceType":"Observation","subject":{"reference":"Patient/p2"}}`},
		{6, 404, ``},
		{7, 410, ``},
		{7, 200, `{"resourceType":"Observation","subject":{"reference":"Patient/p1"}}`},
		{8, 500, `oops`},
		{8, 302, ``},
	} {
		f.Add(s.c, s.status, "application/fhir+json", []byte(s.body), false)
	}
	f.Fuzz(func(t *testing.T, ci uint8, status uint16, ctype string, body []byte, head bool) {
		c := answerCases[int(ci)%len(answerCases)]
		code := 200 + int(status)%400
		if !validHeader(ctype) {
			return
		}
		method := c.method
		if head && method == http.MethodGet {
			method = http.MethodHead
		}
		up := &upstream{answer: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Upstream-Secret", "leak")
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				_, _ = w.Write([]byte("WRITE-OK"))
				return
			}
			w.Header().Set("Content-Type", ctype)
			w.WriteHeader(code)
			_, _ = w.Write(body)
		}}
		req, _ := newFuzzRequest(method, "/fhir/"+c.path, []byte(c.body))
		req.Header.Set("Authorization", "Bearer "+e.token)
		req.Header.Set("Content-Type", "application/fhir+json")
		w := e.serve(req, up)
		ok2xx := code >= 200 && code < 300
		switch {
		case c.precheck:
			stored := decodeCheckedJSON(body)
			allowed := code == http.StatusNotFound || code == http.StatusGone ||
				ok2xx && stored != nil && belongsOracle(c.rtype, stored, fzPatient, fzFHIRBase)
			wrote := len(up.calls) == 2 && up.calls[1].method == c.method
			if len(up.calls) == 0 || up.calls[0].method != http.MethodGet || up.calls[0].path != "/fhir/"+c.path {
				t.Fatalf("%s %s: no read of the stored resource first", c.method, c.path)
			}
			if wrote != allowed {
				t.Fatalf("%s %s with the stored resource answered %d %q: write forwarded %v, want %v", c.method, c.path, code, body, wrote, allowed)
			}
			if !allowed {
				checkRefusedAnswer(t, w, body)
			}
		case c.rtype == "" || !ok2xx:
			if w.Code != code || (method != http.MethodHead && !bytes.Equal(w.Body.Bytes(), body)) {
				t.Fatalf("%s %s: upstream %d %q reached the client as %d %q", method, c.path, code, body, w.Code, w.Body)
			}
		case answerBelongs(body, c.rtype):
			want := body
			if method == http.MethodHead {
				want = nil
			}
			if w.Code != code || !bytes.Equal(w.Body.Bytes(), want) || w.Header().Get("Content-Length") != strconv.Itoa(len(want)) {
				t.Fatalf("%s %s: an answer in the compartment, %d %q, reached the client as %d %q (Content-Length %s)",
					method, c.path, code, body, w.Code, w.Body, w.Header().Get("Content-Length"))
			}
		default:
			checkRefusedAnswer(t, w, body)
		}
	})
}

// checkRefusedAnswer fails unless a refused upstream answer was replaced
// by the guard's OperationOutcome (403, or 502 when it cannot be read),
// with none of the upstream's headers or body: the body is exactly the
// guard's encoding of one outcome.
func checkRefusedAnswer(t *testing.T, w *httptest.ResponseRecorder, body []byte) {
	t.Helper()
	checkOutcome(t, w)
	switch {
	case w.Code != http.StatusForbidden && w.Code != http.StatusBadGateway:
		t.Fatalf("a refused answer: status %d", w.Code)
	case w.Header().Get("X-Upstream-Secret") != "":
		t.Fatalf("a refused answer kept the upstream's headers")
	}
	var oo operationOutcome
	if err := json.Unmarshal(w.Body.Bytes(), &oo); err != nil || len(oo.Issue) != 1 {
		t.Fatalf("a refused answer is not the guard's OperationOutcome: %s", w.Body)
	}
	if again, _ := json.Marshal(oo); !bytes.Equal(again, w.Body.Bytes()) {
		t.Fatalf("a refused answer carries more than the guard's OperationOutcome: %q (upstream %q)", w.Body, body)
	}
}
