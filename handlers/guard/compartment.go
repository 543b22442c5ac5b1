package guard

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/smartcaddy/smartauth/handlers/oauth"
)

// compAction is what the patient compartment requires of an interaction
// allowed only by patient/ scopes.
type compAction struct {
	// addKey=addValue is added to the search (query string, and
	// If-None-Exist of a conditional create) when not already there.
	addKey, addValue string
	// bodyWritable: the request's resource must be one the patient may
	// write (resourceWritable).
	bodyWritable bool
	// checkResponse: the upstream's 2xx body must be in the compartment
	// before it is passed on.
	checkResponse bool
	// precheck: the stored resource must be one the patient may write
	// (read through the upstream first) before a write goes on.
	precheck bool
	// patchChecked: the request's patch must not touch the compartment
	// elements (checkPatchBody).
	patchChecked bool
}

// compartmentAction decides how an interaction allowed by patient/ scopes
// stays inside the compartment of patient pid, or refuses it.
func (g *Guard) compartmentAction(in *interaction, pid string) (*compAction, *oauth.Error) {
	out := func(why string) (*compAction, *oauth.Error) {
		return nil, forbidden("", describeInteraction(in)+" is outside the patient compartment: "+why)
	}
	t := in.resourceType
	_, inCompartment := patientCompartmentR4[t]
	switch {
	case in.compartment != "":
		switch {
		case in.compartment != pid:
			return out("another patient's compartment")
		case !inCompartment:
			return out(t + " is not in the Patient compartment")
		case t == "Patient":
			// Patient/{id}/Patient would return the patients linked to
			// this one (Patient.link), which patient/ scopes never reach.
			return out("linked patients are not reachable")
		}
		if f := refuseWidening(in.params); f != nil {
			return nil, f
		}
		return &compAction{}, nil
	case t == "":
		return out("system-level interactions reach every patient")
	case !inCompartment:
		if g.gs.outside[t] {
			return &compAction{}, nil
		}
		return out(t + " is not in the Patient compartment (allow_outside_compartment)")
	case t == "Patient":
		return patientAction(in, pid, out)
	}
	switch in.name {
	case ixSearchType, ixCondDelete:
		return restrictSearch(t, pid, in.params, g.base)
	case ixCondUpdate, ixCondPatch:
		// An update may create the resource sent: that must be the
		// patient's; a patch may not move what it patches elsewhere.
		a, f := restrictSearch(t, pid, in.params, g.base)
		if f != nil {
			return nil, f
		}
		a.bodyWritable, a.patchChecked = in.name == ixCondUpdate, in.name == ixCondPatch
		return a, nil
	case ixOperation:
		if in.level == "type" && in.method == http.MethodGet {
			return restrictSearch(t, pid, in.params, g.base)
		}
		if in.level == "type" {
			return out("type-level operations are only allowed with GET, whose parameters the guard restricts")
		}
		return out("instance operations are only allowed on the patient")
	case ixCreate:
		return &compAction{bodyWritable: true}, nil
	case ixCondCreate:
		a, f := restrictSearch(t, pid, in.ifNoneExist, g.base)
		if f != nil {
			return nil, f
		}
		a.bodyWritable = true
		return a, nil
	case ixRead, ixVRead, ixHistoryInst:
		return &compAction{checkResponse: true}, nil
	case ixUpdate:
		return &compAction{bodyWritable: true, precheck: true}, nil
	case ixPatch:
		return &compAction{precheck: true, patchChecked: true}, nil
	case ixDelete:
		return &compAction{precheck: true}, nil
	}
	return out("not available to patient/ scopes")
}

// patientAction handles the Patient resource itself: only the context
// patient, by id.
func patientAction(in *interaction, pid string, out func(string) (*compAction, *oauth.Error)) (*compAction, *oauth.Error) {
	switch in.name {
	case ixRead, ixVRead, ixHistoryInst, ixPatch, ixDelete:
		if in.id != pid {
			return out("another patient")
		}
		return &compAction{patchChecked: in.name == ixPatch}, nil
	case ixUpdate:
		if in.id != pid {
			return out("another patient")
		}
		return &compAction{bodyWritable: true}, nil
	case ixOperation:
		if in.level == "instance" && in.id == pid {
			return &compAction{}, nil
		}
		return out("operations on Patient are only allowed on the context patient")
	case ixSearchType, ixCondDelete:
		return restrictSearch("Patient", pid, in.params, "")
	case ixCondUpdate, ixCondPatch:
		// Without a match an update could create a Patient: the body must
		// be the patient (with its id, which then conflicts instead).
		a, f := restrictSearch("Patient", pid, in.params, "")
		if f != nil {
			return nil, f
		}
		a.bodyWritable, a.patchChecked = in.name == ixCondUpdate, in.name == ixCondPatch
		return a, nil
	}
	return out("not available to patient/ scopes")
}

// restrictSearch checks a search under patient/ scopes and returns the
// parameter that confines it to patient pid: "_id" for Patient, else the
// first compartment parameter of the type (patientCompartmentR4), with
// the typed reference "Patient/{pid}". It is added unless that exact
// pair is already there: a bare id ("subject=123") or a modified or
// absolute form does not count, since a bare id on a reference parameter
// matches any type with that id (Group/123, Device/123). Parameters are
// ANDed, so the added one confines whatever else the search says.
//
// The parameter, "patient" and "subject" are also checked (compartment
// parameters below): every value (each of a comma list) must name pid;
// the only modifier allowed is ":Patient" (not on _id); ":missing",
// ":identifier", ":not", other types and any other modifier are refused;
// chains ("subject.name", "subject:Patient.name", "patient._id") are let
// through, since the added parameter still confines the result; a name
// that differs from one of them only in case ("Subject") is refused.
// _include, _revinclude and _query are refused (refuseWidening).
func restrictSearch(t, pid string, params url.Values, base string) (*compAction, *oauth.Error) {
	key, want := "_id", pid
	if t != "Patient" {
		key, want = patientCompartmentR4[t][0], "Patient/"+pid
	}
	if f := refuseWidening(params); f != nil {
		return nil, f
	}
	present := false
	for k, vs := range params {
		name, mod, chained := splitParam(k)
		var cp string
		for _, c := range [...]string{key, "patient", "subject"} {
			if strings.EqualFold(name, c) {
				cp = c
				break
			}
		}
		switch {
		case cp == "":
			continue
		case name != cp:
			return nil, badRequest("the search parameter " + k + " differs only in case from " + cp)
		case chained:
			continue
		case mod != "" && (mod != "Patient" || cp == "_id"):
			return nil, forbidden("", "the search parameter "+k+" is not allowed with patient/ scopes: only "+cp+"=Patient/{patient} or "+cp+":Patient={patient}")
		}
		for _, v := range vs {
			for one := range strings.SplitSeq(v, ",") {
				if !namesPatient(one, pid, base, cp == "_id") {
					return nil, forbidden("", "the search parameter "+k+" names another patient")
				}
			}
			if k == key && v == want {
				present = true
			}
		}
	}
	if present {
		return &compAction{}, nil
	}
	return &compAction{addKey: key, addValue: want}, nil
}

// splitParam splits a search parameter's name into its base name, its
// modifier (after ':') and whether it is chained ('.' after the name or
// the modifier): "subject:Patient.name" → "subject", "Patient", true.
func splitParam(k string) (name, mod string, chained bool) {
	i := strings.IndexAny(k, ":.")
	if i < 0 {
		return k, "", false
	}
	name, rest := k[:i], k[i:]
	if rest[0] == '.' {
		return name, "", true
	}
	mod, _, chained = strings.Cut(rest[1:], ".")
	return name, mod, chained
}

// refuseWidening refuses the search parameters that return resources a
// compartment restriction does not cover: _include, _revinclude, _query,
// and any name that starts with one of them in any case (a modifier, a
// chain, a suffix a lenient server might cut off).
func refuseWidening(params url.Values) *oauth.Error {
	for k := range params {
		lower := strings.ToLower(k)
		if strings.HasPrefix(lower, "_include") || strings.HasPrefix(lower, "_revinclude") || strings.HasPrefix(lower, "_query") {
			return forbidden("", k+" is not allowed with patient/ scopes")
		}
	}
	return nil
}

// namesPatient tells whether a reference (or, for _id, an id) names
// patient pid: "pid", "Patient/pid" or "{base}/Patient/pid", the typed
// forms optionally with a version ("…/_history/{vid}"). Nothing else
// does: not an untyped URL ("{base}/pid"), not "pid/_history/…".
func namesPatient(ref, pid, base string, idOnly bool) bool {
	switch {
	case ref == pid:
		return true
	case idOnly:
		return false
	}
	if base != "" {
		ref = strings.TrimPrefix(ref, base+"/")
	}
	typed := "Patient/" + pid
	if vid, ok := strings.CutPrefix(ref, typed+"/_history/"); ok {
		return validID(vid)
	}
	return ref == typed
}

// resourceBelongs tells whether a parsed resource of type t is in the
// compartment of patient pid, the rule to READ it: a Patient by its id;
// another type when one of its compartment elements (compartmentElements)
// holds a reference to the patient. Anything else, including a resource
// of another type, does not belong.
func resourceBelongs(t string, res map[string]any, pid, base string) bool {
	if rt, _ := res["resourceType"].(string); rt != t {
		return false
	}
	if t == "Patient" {
		id, _ := res["id"].(string)
		return id == pid
	}
	for _, el := range compartmentElements(t) {
		if v, ok := res[el]; ok && holdsReference(v, pid, base) {
			return true
		}
	}
	return false
}

// resourceWritable tells whether a parsed resource of type t may be
// WRITTEN (created, updated, deleted, patched: the resource sent and the
// one stored) under patient/ scopes for patient pid. A Patient: its id is
// pid. Another type: one of its primary elements (primaryElements: the
// elements the type's first compartment parameter reads) holds a
// reference to Patient/pid, and none of its compartment elements
// (compartmentElements: every compartment parameter's, plus subject and
// patient) refers to another patient (refersElsewhere).
// Membership through a secondary element (Observation.performer) is
// enough to read, never to write: the resource would be, or stays,
// another patient's.
func resourceWritable(t string, res map[string]any, pid, base string) bool {
	if rt, _ := res["resourceType"].(string); rt != t {
		return false
	}
	if t == "Patient" {
		id, _ := res["id"].(string)
		return id == pid
	}
	primary := false
	for _, el := range primaryElements(t) {
		if v, ok := res[el]; ok && holdsReference(v, pid, base) {
			primary = true
			break
		}
	}
	if !primary {
		return false
	}
	for _, el := range compartmentElements(t) {
		if v, ok := res[el]; ok && refersElsewhere(v, pid, base) {
			return false
		}
	}
	return true
}

// holdsReference walks an element for a Reference naming patient pid, as
// a search parameter reads it: a Reference (an object with a "reference")
// counts by its own reference only; other objects (participant, link,
// member…) are walked, but not their extensions nor identifiers, which no
// compartment parameter reads.
func holdsReference(v any, pid, base string) bool {
	switch x := v.(type) {
	case map[string]any:
		if ref, ok := x["reference"]; ok {
			s, _ := ref.(string)
			return strings.Contains(s, "Patient/") && namesPatient(s, pid, base, false)
		}
		for k, e := range x {
			if k != "extension" && k != "modifierExtension" && k != "identifier" && holdsReference(e, pid, base) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if holdsReference(e, pid, base) {
				return true
			}
		}
	}
	return false
}

// refersElsewhere walks an element for a Reference to a patient other
// than pid: a reference that names a Patient ("Patient/…", "Patient?…"
// conditional references, absolute URLs of any server) and is not pid,
// or a Reference of type "Patient" whose reference is not pid.
func refersElsewhere(v any, pid, base string) bool {
	switch x := v.(type) {
	case map[string]any:
		ref, _ := x["reference"].(string)
		mine := ref != "" && namesPatient(ref, pid, base, false) && strings.Contains(ref, "Patient/")
		if !mine && (strings.Contains(ref, "Patient/") || strings.Contains(ref, "Patient?")) {
			return true
		}
		if typ, _ := x["type"].(string); typ == "Patient" && !mine {
			return true
		}
		for _, e := range x {
			if refersElsewhere(e, pid, base) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if refersElsewhere(e, pid, base) {
				return true
			}
		}
	}
	return false
}

// bundleBelongs tells whether every resource of a history Bundle (the
// answer to an instance history) is in the compartment.
func bundleBelongs(t string, b map[string]any, pid, base string) bool {
	entries, _ := b["entry"].([]any)
	for _, e := range entries {
		m, _ := e.(map[string]any)
		if m == nil {
			return false
		}
		res, ok := m["resource"].(map[string]any)
		if !ok {
			if _, has := m["resource"]; has {
				return false
			}
			continue // a deleted version
		}
		if !resourceBelongs(t, res, pid, base) {
			return false
		}
	}
	return true
}
