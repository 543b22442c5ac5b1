package guard

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
)

// maxCheckedDepth bounds the nesting of a JSON body the guard checks
// (FHIR resources nest a few dozen levels at most).
const maxCheckedDepth = 256

// errJSONKeys is a checked JSON body whose keys another parser could read
// differently from the guard.
var errJSONKeys = errors.New("ambiguous keys")

// parseCheckedJSON parses a JSON object the guard decides on (a resource
// or Bundle sent, an upstream answer it checks) so that no parser can read
// it differently: every object's keys are FHIR element names — ASCII
// letters, digits, '_' or '-', so no Unicode case folding, NUL or space
// games — and no two keys of one object are equal ignoring case (which
// refuses exact duplicates: Go keeps the last, others the first), and no
// key differs only in case from a name the guard reads (resourceType, id,
// reference, Bundle members, compartment elements: "Subject" instead of
// "subject"). Numbers are kept as they are. The error is errJSONKeys for
// a key problem (the description in msg), another error for bad JSON.
func parseCheckedJSON(b []byte) (res map[string]any, msg string, err error) {
	v, msg, err := parseCheckedValue(b)
	if err != nil {
		return nil, msg, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, "", errors.New("not a JSON object")
	}
	return m, "", nil
}

// parseCheckedValue is parseCheckedJSON for an object or an array (a JSON
// Patch). The text is validated, its keys checked in one scan
// (checkKeys), then decoded.
func parseCheckedValue(b []byte) (v any, msg string, err error) {
	b = bytes.Trim(b, " \t\r\n") // JSON's whitespace only
	if len(b) == 0 || b[0] != '{' && b[0] != '[' {
		return nil, "", errors.New("not a JSON object or array")
	}
	if !json.Valid(b) {
		return nil, "", errors.New("not JSON")
	}
	if msg, err := checkKeys(b); err != nil {
		return nil, msg, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, "", err
	}
	return v, "", nil
}

// keyFrame is an open object or array while checkKeys scans.
type keyFrame struct {
	object    bool
	expectKey bool              // the next string is a key
	folded    map[string]string // the object's keys by lower case
}

// checkKeys scans valid JSON text (json.Valid) and checks every object's
// keys (keyProblem), unescaped as the decoder reads them, and the nesting
// depth (maxCheckedDepth).
func checkKeys(b []byte) (string, error) {
	stack := make([]keyFrame, 0, 16)
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '{', '[':
			if len(stack) >= maxCheckedDepth {
				return "", errors.New("nested too deeply")
			}
			stack = append(stack, keyFrame{object: b[i] == '{', expectKey: b[i] == '{'})
		case '}', ']':
			stack = stack[:len(stack)-1]
		case ',':
			if top := &stack[len(stack)-1]; top.object {
				top.expectKey = true
			}
		case '"':
			j, escaped := i+1, false
			for ; b[j] != '"'; j++ {
				if b[j] == '\\' {
					escaped = true
					j++
				}
			}
			if top := &stack[len(stack)-1]; top.object && top.expectKey {
				top.expectKey = false
				k := string(b[i+1 : j])
				if escaped {
					if err := json.Unmarshal(b[i:j+1], &k); err != nil {
						return "", err
					}
				}
				if top.folded == nil {
					top.folded = map[string]string{}
				}
				if msg := keyProblem(k, top.folded); msg != "" {
					return msg, errJSONKeys
				}
			}
			i = j
		}
	}
	return "", nil
}

// keyProblem checks one key of an object against the keys seen before
// (folded: lower case → key) and returns what is wrong with it, or "".
func keyProblem(k string, folded map[string]string) string {
	if k == "" {
		return "an empty key"
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return "the key " + quoteKey(k) + " is not a FHIR element name"
		}
	}
	f := strings.ToLower(k)
	if prev, ok := folded[f]; ok {
		if prev == k {
			return "the key " + quoteKey(k) + " appears twice in one object"
		}
		return "the keys " + quoteKey(prev) + " and " + quoteKey(k) + " differ only in case"
	}
	folded[f] = k
	if name, ok := checkedNames[f]; ok && name != k {
		return "the key " + quoteKey(k) + " differs only in case from " + quoteKey(name)
	}
	return ""
}

// quoteKey quotes a key for a message, shortened.
func quoteKey(k string) string {
	if len(k) > 40 {
		return strconv.QuoteToASCII(k[:40]) + "…"
	}
	// ASCII only, invalid UTF-8 escaped: the message may end up in an
	// OperationOutcome, which must be exactly what the guard wrote.
	return strconv.QuoteToASCII(k)
}

// checkedNames are the JSON names the guard reads, by lower case: a key
// that differs from one of them only in case is refused wherever it
// stands, since a server that matches names case-insensitively would read
// it as the name the guard did not check.
var checkedNames = func() map[string]string {
	m := map[string]string{}
	add := func(names ...string) {
		for _, n := range names {
			m[strings.ToLower(n)] = n
		}
	}
	add("resourceType", "id", "reference", "type", "identifier", "contained",
		"entry", "request", "resource", "response", "fullUrl", "method", "url",
		"ifNoneExist", "ifMatch", "ifNoneMatch", "ifModifiedSince",
		"link", "other", "target")
	for t := range patientCompartmentR4 {
		add(compartmentElements(t)...)
	}
	return m
}()
