package guard

import (
	"bytes"
	"encoding/json"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// The oracles below say, independently of compartment.go, what the
// patient compartment means for the fuzz targets: which references name a
// patient, which resources belong to one, which searches stay inside.

// compartmentTypes are the resource types of the Patient compartment,
// sorted, for the fuzz targets to pick from by index.
var compartmentTypes = func() []string {
	var out []string
	for t := range patientCompartmentR4 {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}()

// pickType picks a compartment type by a fuzzed index.
func pickType(i uint8) string { return compartmentTypes[int(i)%len(compartmentTypes)] }

// fhirIDOracle is a FHIR id (R4 datatypes: [A-Za-z0-9\-\.]{1,64}).
var fhirIDOracle = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// refNames tells whether a Reference.reference names patient pid: the
// relative reference Patient/pid or the absolute one on base, optionally
// with a version (…/_history/{vid}, vid a FHIR id). Nothing else: not a
// bare id, not another type, not a reference that merely contains
// Patient/pid.
func refNames(ref, pid, base string) bool {
	if base != "" {
		ref = strings.TrimPrefix(ref, base+"/")
	}
	want := "Patient/" + pid
	if ref == want {
		return true
	}
	vid, ok := strings.CutPrefix(ref, want+"/_history/")
	return ok && fhirIDOracle.MatchString(vid) && vid != "." && vid != ".."
}

// searchValueNames tells whether a value of a patient-confining search
// parameter names pid. As the guard does today, a bare id counts (issue
// 10 §4 may tighten this to typed references only); an _id value must be
// exactly the id.
func searchValueNames(v, pid, base string, isID bool) bool {
	if isID {
		return v == pid
	}
	return v == pid || refNames(v, pid, base)
}

// references collects every Reference.reference string found in v, at
// any depth (backbone elements such as participant[].actor hold them
// deeper than the top level).
func references(v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		// A Reference counts by its own reference only; what its
		// extensions or identifier (identifier.assigner) refer to is
		// not the element's target.
		if r, ok := x["reference"]; ok {
			if s, ok := r.(string); ok {
				*out = append(*out, s)
			}
			return
		}
		for k, e := range x {
			if k != "extension" && k != "modifierExtension" && k != "identifier" {
				references(e, out)
			}
		}
	case []any:
		for _, e := range x {
			references(e, out)
		}
	}
}

// belongsOracle tells whether a resource of type t is in patient pid's
// compartment: a Patient by its id, another compartment type when one of
// its compartment elements holds a reference naming pid (refNames).
func belongsOracle(t string, res map[string]any, pid, base string) bool {
	if rt, _ := res["resourceType"].(string); rt != t {
		return false
	}
	if t == "Patient" {
		id, _ := res["id"].(string)
		return id == pid
	}
	if _, ok := patientCompartmentR4[t]; !ok {
		return false
	}
	for _, el := range compartmentElements(t) {
		var refs []string
		references(res[el], &refs)
		for _, r := range refs {
			if refNames(r, pid, base) {
				return true
			}
		}
	}
	return false
}

// searchConfined tells whether search parameters confine a search on t
// to patient pid: the type's confining parameter (_id for Patient, the
// first compartment parameter otherwise) is present without a modifier,
// and every value of it, of patient and of subject (with any modifier)
// names pid; nothing widens the result (_include, _revinclude, _query).
func searchConfined(t string, params url.Values, pid, base string) (bool, string) {
	key := "_id"
	if t != "Patient" {
		key = patientCompartmentR4[t][0]
	}
	present := false
	for k, vs := range params {
		name, _, _ := strings.Cut(k, ":")
		if l := strings.ToLower(k); strings.HasPrefix(l, "_include") || strings.HasPrefix(l, "_revinclude") || strings.HasPrefix(l, "_query") {
			// Any spelling that a lenient server might read as one.
			return false, "widening parameter " + k
		}
		if strings.Contains(k, ".") {
			// A chain (subject.name, subject:Patient.name) only narrows:
			// parameters are ANDed with the confining one.
			continue
		}
		switch name {
		case "_include", "_revinclude", "_query":
			return false, "widening parameter " + k
		case key, "patient", "subject":
		default:
			continue
		}
		for _, v := range vs {
			for _, one := range strings.Split(v, ",") {
				if !searchValueNames(one, pid, base, name == "_id") {
					return false, k + "=" + one + " does not name the patient"
				}
			}
		}
		if k == key && len(vs) > 0 {
			present = true
		}
	}
	if !present {
		return false, "no " + key + " restriction"
	}
	return true, ""
}

// duplicateKeys tells whether JSON text has an object with a key twice:
// what the guard forwards is re-encoded from what it checked, so it must
// hold exactly one value per key.
func duplicateKeys(b []byte) bool {
	dup, _ := scanJSONValue(json.NewDecoder(bytes.NewReader(b)))
	return dup
}

// scanJSONValue reads one JSON value from dec and tells whether an object
// inside it repeats a key.
func scanJSONValue(dec *json.Decoder) (bool, error) {
	tok, err := dec.Token()
	if err != nil {
		return false, err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return false, nil
	}
	seen := map[string]bool{}
	for dec.More() {
		if d == '{' {
			kt, err := dec.Token()
			if err != nil {
				return false, err
			}
			k, _ := kt.(string)
			if seen[k] {
				return true, nil
			}
			seen[k] = true
		}
		if dup, err := scanJSONValue(dec); dup || err != nil {
			return dup, err
		}
	}
	_, err = dec.Token() // the closing delimiter
	return false, err
}
