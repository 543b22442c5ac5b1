package guard

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/smartcaddy/smartauth/handlers/oauth"
)

// Under patient/ scopes a PATCH (by id or conditional) must not change
// what puts a resource in a patient's compartment: the stored resource is
// checked (precheck), and the patch itself may not touch resourceType, id
// or, but for Patient, any compartment element of the type
// (compartmentElements: subject, patient, performer, …), in any case.
// Otherwise a patch could move the patient's resource into another
// patient's record. Accepted patches, read strictly (parseCheckedValue):
//
//   - JSON Patch (RFC 6902; application/json-patch+json, or a JSON array
//     sent as application/json or application/fhir+json): no operation's
//     path or from may start with such an element, nor be the whole
//     document;
//   - FHIRPath Patch (a Parameters resource): no operation's path or name
//     may name such an element, nor use descendants(), children() or
//     repeat(), which reach elements without naming them.
//
// Anything else (XML Patch, another content type) cannot be checked and
// is refused with 415.

// patchGuardedNames are the names a patch of type t may not touch, lower
// case.
func patchGuardedNames(t string) map[string]bool {
	m := map[string]bool{"resourcetype": true, "id": true}
	if t != "Patient" {
		for _, el := range compartmentElements(t) {
			m[strings.ToLower(el)] = true
		}
	}
	return m
}

// checkPatchBody reads a PATCH body under patient/ scopes, refuses one
// that touches what patchGuardedNames lists, and puts the checked body
// back (re-encoded) for the upstream.
func checkPatchBody(r *http.Request, t string) *oauth.Error {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json-patch+json" && mt != "application/fhir+json" && mt != "application/json" {
		return &oauth.Error{Status: http.StatusUnsupportedMediaType, Description: "with patient/ scopes a patch must be a JSON Patch or a FHIRPath Patch in JSON, so that it can be checked"}
	}
	if r.Body == nil {
		return badRequest("the request has no patch")
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxCheckedBody+1))
	if err != nil {
		return badRequest("reading the request body failed")
	}
	if len(b) > maxCheckedBody {
		return &oauth.Error{Status: http.StatusRequestEntityTooLarge, Description: "the request body is too large to be checked"}
	}
	v, msg, err := parseCheckedValue(b)
	switch {
	case errors.Is(err, errJSONKeys):
		return badRequest("the patch cannot be checked: " + msg)
	case err != nil:
		return badRequest("the patch is not JSON")
	}
	guarded := patchGuardedNames(t)
	switch x := v.(type) {
	case []any:
		if why := jsonPatchTouches(x, guarded); why != "" {
			return forbidden("", "the patch "+why+", which patient/ scopes may not change")
		}
	case map[string]any:
		if why := fhirPathPatchTouches(x, guarded); why != "" {
			return forbidden("", "the patch "+why+", which patient/ scopes may not change")
		}
	}
	return setJSONBody(r, v)
}

// jsonPatchTouches tells which guarded element a JSON Patch's operations
// reach ("" when none): by the first segment of each path and from.
func jsonPatchTouches(ops []any, guarded map[string]bool) string {
	for _, o := range ops {
		op, ok := o.(map[string]any)
		if !ok {
			return "has an operation that is not an object"
		}
		for _, k := range [...]string{"path", "from"} {
			p, has := op[k]
			if !has {
				continue
			}
			s, ok := p.(string)
			if !ok {
				return "has a " + k + " that is not a string"
			}
			first, _, _ := strings.Cut(strings.TrimPrefix(s, "/"), "/")
			first = strings.ReplaceAll(strings.ReplaceAll(first, "~1", "/"), "~0", "~")
			if s == "" || first == "" {
				return "replaces the whole resource"
			}
			if guarded[strings.ToLower(first)] {
				return "reaches " + first
			}
		}
	}
	return ""
}

// fhirPathPatchTouches tells which guarded element a FHIRPath Patch (a
// Parameters resource of "operation" parameters) reaches ("" when none):
// by every name in each operation's path, and by its name.
func fhirPathPatchTouches(p map[string]any, guarded map[string]bool) string {
	if rt, _ := p["resourceType"].(string); rt != "Parameters" {
		return "is neither a JSON Patch nor a FHIRPath Patch (Parameters)"
	}
	params, _ := p["parameter"].([]any)
	for _, pv := range params {
		param, _ := pv.(map[string]any)
		parts, _ := param["part"].([]any)
		for _, qv := range parts {
			part, _ := qv.(map[string]any)
			name, _ := part["name"].(string)
			if !strings.EqualFold(name, "path") && !strings.EqualFold(name, "name") {
				continue
			}
			var expr string
			for k, v := range part {
				if s, ok := v.(string); ok && strings.HasPrefix(k, "value") {
					expr += " " + s // whatever value[x] a server reads the path from
				}
			}
			for _, tok := range strings.FieldsFunc(expr, func(r rune) bool {
				return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_')
			}) {
				lower := strings.ToLower(tok)
				if guarded[lower] {
					return "reaches " + tok
				}
				if lower == "descendants" || lower == "children" || lower == "repeat" {
					return "uses " + tok + "()"
				}
			}
		}
	}
	return ""
}
