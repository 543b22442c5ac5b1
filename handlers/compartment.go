package handlers

import (
	"net/http"
	"net/url"
	"strings"
)

// compAction is what the patient compartment requires of an interaction
// allowed only by patient/ scopes.
type compAction struct {
	// addKey=addValue is added to the search (query string, and
	// If-None-Exist of a conditional create) when not already there.
	addKey, addValue string
	// bodyMustBelong: the request's resource must be in the compartment.
	bodyMustBelong bool
	// checkResponse: the upstream's 2xx body must be in the compartment
	// before it is passed on.
	checkResponse bool
	// precheck: the stored resource must be in the compartment (read
	// through the upstream first) before a write goes on.
	precheck bool
}

// compartmentAction decides how an interaction allowed by patient/ scopes
// stays inside the compartment of patient pid, or refuses it.
func (s *Server) compartmentAction(in *interaction, pid string) (*compAction, *guardFault) {
	out := func(why string) (*compAction, *guardFault) {
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
		if s.gs.outside[t] {
			return &compAction{}, nil
		}
		return out(t + " is not in the Patient compartment (allow_outside_compartment)")
	case t == "Patient":
		return patientAction(in, pid, out)
	}
	switch in.name {
	case ixSearchType, ixCondPatch, ixCondDelete:
		return restrictSearch(t, pid, in.params, s.cfg.FHIRBase.String())
	case ixCondUpdate:
		// It updates the match, or creates the body when there is none.
		return bodyMustBelong(restrictSearch(t, pid, in.params, s.cfg.FHIRBase.String()))
	case ixOperation:
		if in.level == "type" && in.method == http.MethodGet {
			return restrictSearch(t, pid, in.params, s.cfg.FHIRBase.String())
		}
		if in.level == "type" {
			return out("type-level operations are only allowed with GET, whose parameters the guard restricts")
		}
		return out("instance operations are only allowed on the patient")
	case ixCreate:
		return &compAction{bodyMustBelong: true}, nil
	case ixCondCreate:
		return bodyMustBelong(restrictSearch(t, pid, in.ifNoneExist, s.cfg.FHIRBase.String()))
	case ixRead, ixVRead, ixHistoryInst:
		return &compAction{checkResponse: true}, nil
	case ixUpdate:
		return &compAction{bodyMustBelong: true, precheck: true}, nil
	case ixPatch, ixDelete:
		return &compAction{precheck: true}, nil
	}
	return out("not available to patient/ scopes")
}

// patientAction handles the Patient resource itself: only the context
// patient, by id.
func patientAction(in *interaction, pid string, out func(string) (*compAction, *guardFault)) (*compAction, *guardFault) {
	switch in.name {
	case ixRead, ixVRead, ixHistoryInst, ixPatch, ixDelete:
		if in.id != pid {
			return out("another patient")
		}
		return &compAction{}, nil
	case ixUpdate:
		if in.id != pid {
			return out("another patient")
		}
		return &compAction{bodyMustBelong: true}, nil
	case ixOperation:
		if in.level == "instance" && in.id == pid {
			return &compAction{}, nil
		}
		return out("operations on Patient are only allowed on the context patient")
	case ixSearchType, ixCondPatch, ixCondDelete:
		return restrictSearch("Patient", pid, in.params, "")
	case ixCondUpdate:
		return bodyMustBelong(restrictSearch("Patient", pid, in.params, ""))
	}
	return out("not available to patient/ scopes")
}

// bodyMustBelong adds to a search's restriction that the request's
// resource must be in the compartment too (conditional create and update).
func bodyMustBelong(a *compAction, f *guardFault) (*compAction, *guardFault) {
	if f != nil {
		return nil, f
	}
	a.bodyMustBelong = true
	return a, nil
}

// restrictSearch checks a search under patient/ scopes and returns the
// parameter that confines it to patient pid: "_id" for Patient, else the
// first compartment parameter of the type (patientCompartmentR4). Any
// value of that parameter, of "patient" or of "subject" (with or without
// a modifier) must name pid, or the search is refused; _include,
// _revinclude and _query are refused, since they return resources the
// restriction does not cover.
func restrictSearch(t, pid string, params url.Values, base string) (*compAction, *guardFault) {
	key, want := "_id", pid
	if t != "Patient" {
		key, want = patientCompartmentR4[t][0], "Patient/"+pid
	}
	if f := refuseWidening(params); f != nil {
		return nil, f
	}
	present := false
	for k, vs := range params {
		name, _, _ := strings.Cut(k, ":")
		if name != key && name != "patient" && name != "subject" {
			continue
		}
		for _, v := range vs {
			for one := range strings.SplitSeq(v, ",") {
				if !namesPatient(one, pid, base, name == "_id") {
					return nil, forbidden("", "the search parameter "+k+" names another patient")
				}
			}
		}
		if k == key {
			present = true
		}
	}
	if present {
		return &compAction{}, nil
	}
	return &compAction{addKey: key, addValue: want}, nil
}

// refuseWidening refuses the search parameters that return resources a
// compartment restriction does not cover: _include, _revinclude, _query.
func refuseWidening(params url.Values) *guardFault {
	for k := range params {
		name, _, _ := strings.Cut(k, ":")
		if name == "_include" || name == "_revinclude" || name == "_query" {
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
// compartment of patient pid: a Patient by its id; another type when one
// of its compartment elements (compartmentElements) holds a reference to
// the patient. Anything else, including a resource of another type, does
// not belong.
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

// holdsReference walks an element for a Reference naming patient pid.
func holdsReference(v any, pid, base string) bool {
	switch x := v.(type) {
	case map[string]any:
		if ref, ok := x["reference"].(string); ok && strings.Contains(ref, "Patient/") && namesPatient(ref, pid, base, false) {
			return true
		}
		for k, e := range x {
			if k != "reference" && holdsReference(e, pid, base) {
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
