package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
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
// Patch).
func parseCheckedValue(b []byte) (v any, msg string, err error) {
	p := &strictJSON{dec: json.NewDecoder(bytes.NewReader(b))}
	p.dec.UseNumber()
	tok, err := p.dec.Token()
	if err != nil {
		return nil, "", err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' && d != '[' {
		return nil, "", errors.New("not a JSON object or array")
	}
	if v, err = p.value(tok, 0); err != nil {
		return nil, p.msg, err
	}
	if _, err := p.dec.Token(); err != io.EOF {
		return nil, "", errors.New("data after the JSON value")
	}
	return v, "", nil
}

// strictJSON builds a JSON value token by token, checking every key.
type strictJSON struct {
	dec *json.Decoder
	msg string // what was wrong with a key
}

// value reads the value that starts with tok.
func (p *strictJSON) value(tok json.Token, depth int) (any, error) {
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil // string, json.Number, bool or nil
	}
	if depth >= maxCheckedDepth {
		return nil, errors.New("nested too deeply")
	}
	switch d {
	case '{':
		return p.object(depth + 1)
	case '[':
		return p.array(depth + 1)
	}
	return nil, errors.New("unexpected " + d.String())
}

// object reads an object's members after its '{'.
func (p *strictJSON) object(depth int) (map[string]any, error) {
	m := map[string]any{}
	folded := map[string]string{}
	for {
		tok, err := p.dec.Token()
		if err != nil {
			return nil, err
		}
		if d, ok := tok.(json.Delim); ok && d == '}' {
			return m, nil
		}
		k, ok := tok.(string)
		if !ok {
			return nil, errors.New("object key is not a string")
		}
		if msg := keyProblem(k, folded); msg != "" {
			p.msg = msg
			return nil, errJSONKeys
		}
		tok, err = p.dec.Token()
		if err != nil {
			return nil, err
		}
		v, err := p.value(tok, depth)
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
}

// array reads an array's elements after its '['.
func (p *strictJSON) array(depth int) ([]any, error) {
	a := []any{}
	for {
		tok, err := p.dec.Token()
		if err != nil {
			return nil, err
		}
		if d, ok := tok.(json.Delim); ok && d == ']' {
			return a, nil
		}
		v, err := p.value(tok, depth)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
	}
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
		k = k[:40] + "…"
	}
	return `"` + k + `"`
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
