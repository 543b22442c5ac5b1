package guard

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"testing"
)

// capabilityVia asks the guard for {fhir_base}/metadata, without a token,
// in front of an upstream answering status, Content-Type, an ETag and
// body; it returns the client's response.
func capabilityVia(e *fuzzEnv, status int, ctype, etag string, body []byte) *httptest.ResponseRecorder {
	up := &upstream{answer: func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", ctype)
		if etag != "" {
			w.Header().Set("ETag", etag)
		}
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}}
	req, _ := newFuzzRequest(http.MethodGet, "/fhir/metadata", nil)
	return e.serve(req, up)
}

// smartMarkers reads rest[0].security of a CapabilityStatement: whether
// it has the oauth-uris extension (and its URLs by name) and the
// SMART-on-FHIR service coding.
func smartMarkers(cs map[string]any) (ext bool, uris map[string]any, service bool) {
	uris = map[string]any{}
	rest := asList(cs["rest"])
	if len(rest) == 0 {
		return false, uris, false
	}
	r0, _ := rest[0].(map[string]any)
	sec, _ := r0["security"].(map[string]any)
	for _, e := range asList(sec["extension"]) {
		if m, _ := e.(map[string]any); m["url"] == oauthURIsExtension {
			ext = true
			for _, x := range asList(m["extension"]) {
				if xm, ok := x.(map[string]any); ok {
					if name, ok := xm["url"].(string); ok {
						uris[name] = xm["valueUri"]
					}
				}
			}
		}
	}
	for _, sv := range asList(sec["service"]) {
		m, _ := sv.(map[string]any)
		for _, c := range asList(m["coding"]) {
			if cm, _ := c.(map[string]any); cm["code"] == smartServiceCode {
				service = true
			}
		}
	}
	return ext, uris, service
}

// asList returns v as a JSON array, or nil.
func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// keptAll fails unless every key of before is in after with the same
// value, except those in changed, which must only be present.
func keptAll(t *testing.T, where string, before, after map[string]any, changed ...string) {
	t.Helper()
	for k, v := range before {
		w, ok := after[k]
		switch {
		case !ok:
			t.Fatalf("%s: key %q was dropped", where, k)
		case slices.Contains(changed, k):
		case !reflect.DeepEqual(v, w):
			t.Fatalf("%s: %q changed from %v to %v", where, k, v, w)
		}
	}
}

// FuzzCapability checks the CapabilityStatement rewrite of
// {fhir_base}/metadata for any upstream answer:
//   - a non-2xx answer, or one that is not a JSON CapabilityStatement,
//     passes byte for byte;
//   - a rewritten CapabilityStatement is valid JSON with the SMART
//     markers, keeps every original key and value (rest[0].security
//     only gains entries: its original extensions and services come
//     first), has a correct Content-Length and no stale ETag;
//   - the rewrite is idempotent: the rewritten statement, served again,
//     passes unchanged.
func FuzzCapability(f *testing.F) {
	e := newFuzzEnv(f)
	for _, s := range []struct {
		status uint16
		body   string
	}{
		{200, `{"resourceType":"CapabilityStatement","fhirVersion":"4.0.1","rest":[{"mode":"server"}]}`},
		{200, "{\n  \"resourceType\": \"CapabilityStatement\",\n  \"rest\": [\n    {\n      \"mode\": \"server\"\n    }\n  ]\n}"},
		{200, `{"resourceType":"CapabilityStatement"}`},
		{200, `{"resourceType":"CapabilityStatement","rest":[]}`},
		{200, `{"resourceType":"CapabilityStatement","rest":[5,{"mode":"client"}]}`},
		{200, `{"resourceType":"CapabilityStatement","rest":[{"security":{"extension":[{"url":"x"}],"service":[{"coding":[{"code":"OAuth"}]}],"cors":true}},{"mode":"client"}]}`},
		{200, `{"resourceType":"CapabilityStatement","rest":[{"security":"none"}],"n":1.50,"big":1e400}`},
		{200, `{"resourceType":"CapabilityStatement","resourceType":"Patient"}`},
		{200, `{"resourceType":"CapabilityStatement"} trailing`},
		{200, `<CapabilityStatement xmlns="http://hl7.org/fhir"/>`},
		{500, `{"resourceType":"OperationOutcome"}`},
		{206, `{"resourceType":"CapabilityStatement","text":"<b>&amp;</b>","u":"\u2028\ud800"}`},
	} {
		f.Add(s.status, "application/fhir+json", []byte(s.body), true)
	}
	f.Fuzz(func(t *testing.T, status uint16, ctype string, body []byte, etag bool) {
		if !validHeader(ctype) {
			return
		}
		code := 200 + int(status)%400
		tag := ""
		if etag {
			tag = `W/"1"`
		}
		w := capabilityVia(e, code, ctype, tag, body)
		if w.Code != code || w.Header().Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("upstream %d: client got %d, CORS %q", code, w.Code, w.Header().Get("Access-Control-Allow-Origin"))
		}
		before := decodeJSONObject(body)
		if code >= 300 || before == nil || before["resourceType"] != "CapabilityStatement" {
			if !bytes.Equal(w.Body.Bytes(), body) || w.Header().Get("ETag") != tag {
				t.Fatalf("upstream %d %q: passed as %q (ETag %q)", code, body, w.Body, w.Header().Get("ETag"))
			}
			return
		}
		out := w.Body.Bytes()
		after := decodeJSONObject(out)
		hadExt, _, hadService := smartMarkers(before)
		if bytes.Equal(out, body) {
			if !(hadExt && hadService) && restZeroIsObject(before) {
				t.Fatalf("%q passed without the SMART markers", body)
			}
			if w.Header().Get("ETag") != tag {
				t.Fatalf("an unchanged statement lost its ETag")
			}
			return
		}
		switch {
		case after == nil || duplicateKeys(out):
			t.Fatalf("the rewritten statement is not one JSON object: %q", out)
		case !hasExtAndService(after):
			t.Fatalf("the rewritten statement lacks the SMART markers: %s", out)
		case w.Header().Get("Content-Length") != strconv.Itoa(len(out)):
			t.Fatalf("Content-Length %s for %d bytes", w.Header().Get("Content-Length"), len(out))
		case w.Header().Get("ETag") != "":
			t.Fatalf("the rewritten statement kept the upstream's ETag")
		}
		if _, uris, _ := smartMarkers(after); !hadExt {
			for _, name := range []string{"authorize", "token", "register", "manage", "introspect", "revoke"} {
				if uris[name] != fzIssuer+"/"+name {
					t.Fatalf("oauth-uris %s = %v", name, uris[name])
				}
			}
		}
		keptAll(t, "CapabilityStatement", before, after, "rest")
		if rest := asList(before["rest"]); len(rest) > 0 {
			newRest := asList(after["rest"])
			if len(newRest) != len(rest) || !reflect.DeepEqual(rest[1:], newRest[1:]) {
				t.Fatalf("rest beyond rest[0] changed: %v → %v", rest, newRest)
			}
			r0, _ := rest[0].(map[string]any)
			n0, _ := newRest[0].(map[string]any)
			keptAll(t, "rest[0]", r0, n0, "security")
			if sec, ok := r0["security"].(map[string]any); ok {
				nsec, _ := n0["security"].(map[string]any)
				keptAll(t, "rest[0].security", sec, nsec, "extension", "service")
				for _, k := range []string{"extension", "service"} {
					if old, ok := sec[k].([]any); ok && !reflect.DeepEqual(old, asList(nsec[k])[:min(len(old), len(asList(nsec[k])))]) {
						t.Fatalf("rest[0].security.%s lost or changed its entries", k)
					}
				}
			}
		}
		again := capabilityVia(e, code, ctype, "", out)
		if !bytes.Equal(again.Body.Bytes(), out) {
			t.Fatalf("the rewrite is not idempotent:\n%s\n%s", out, again.Body)
		}
	})
}

// hasExtAndService tells whether a CapabilityStatement has both SMART
// markers.
func hasExtAndService(cs map[string]any) bool {
	ext, _, service := smartMarkers(cs)
	return ext && service
}

// restZeroIsObject tells whether a CapabilityStatement's rest is absent,
// empty, or starts with an object: the cases the SMART markers can be
// added to.
func restZeroIsObject(cs map[string]any) bool {
	rest := asList(cs["rest"])
	if len(rest) == 0 {
		return true
	}
	_, ok := rest[0].(map[string]any)
	return ok
}
