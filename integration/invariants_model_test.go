package integration

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"

	"github.com/smartcaddy/smartauth/scopes"
)

// The reference model of the invariant tests (invariants_test.go): what a
// user may reach and what a grant may hold, computed from the generated
// configuration by the rules of the design for issue 10 §1–§2, written
// independently of the handlers. The coverage of one scope by a list is
// scopes.Covers, whose own properties scopes/grant_prop_test.go checks.

// everyone is the touch of a request that is not confined to named
// patients: a search without a patient restriction, a system-level
// interaction, a resource with no patient reference.
const everyone = "*"

// invPool are the patient ids of the generated world; the patient-search
// server confirms exactly these.
var invPool = []string{"p1", "p2", "p3", "p4", "p5"}

// invCompartment are the compartment types the generated requests use,
// with their compartment search parameters (FHIR R4, first one first).
var invCompartment = map[string][]string{
	"Observation":        {"subject", "performer"},
	"Encounter":          {"patient"},
	"Condition":          {"patient", "asserter"},
	"AllergyIntolerance": {"patient", "recorder", "asserter"},
}

// invOutside are the types outside the Patient compartment the requests
// use; the universe lets patient/ scopes reach a random subset of them.
var invOutside = []string{"Medication", "Organization", "Practitioner"}

// invUser is a configured user.
type invUser struct {
	name, fhirUser   string
	patients, scopes []string
}

// ownPatient is the patient a Patient user is.
func (u *invUser) ownPatient() (string, bool) {
	return strings.CutPrefix(u.fhirUser, "Patient/")
}

// explicitUser tells whether the operator granted the user user/ scopes
// (a user/ scope in the user's scopes).
func (u *invUser) explicitUser() bool {
	for _, s := range u.scopes {
		if strings.HasPrefix(s, "user/") {
			return true
		}
	}
	return false
}

// invModel is the oracle for one universe.
type invModel struct {
	patientSearch bool
}

// mayContext tells whether a user may have patient p in context: a
// Patient user only their own record; a user with a patients list only
// those; a user with an explicit user/ grant anyone; a user with nothing
// only, when patient search is on, a patient the FHIR server confirms. In
// a flow the server asks the search server (which knows the pool); the
// guard cannot ask per token, so there (atGuard) such a user's token may
// name any patient: one the FHIR server does not have has no data there.
func (m invModel) mayContext(u *invUser, p string, atGuard bool) bool {
	if own, ok := u.ownPatient(); ok {
		return p == own
	}
	if len(u.patients) > 0 {
		return slices.Contains(u.patients, p)
	}
	if u.explicitUser() {
		return true
	}
	return m.patientSearch && (atGuard || slices.Contains(invPool, p))
}

// mayReachAll tells whether a user may reach data not confined to named
// patients (a user/ search across patients): only with an explicit user/
// grant, and never a Patient user.
func (m invModel) mayReachAll(u *invUser) bool {
	_, isPatient := u.ownPatient()
	return !isPatient && u.explicitUser()
}

// mayReach tells whether a user may reach a touch: one patient's data or
// everyone's.
func (m invModel) mayReach(u *invUser, touch string) bool {
	if m.mayReachAll(u) {
		return true
	}
	return touch != everyone && m.mayContext(u, touch, true)
}

// clientMay tells whether a client may be granted a scope through
// /authorize: never a system/ scope; with no scopes list, any known
// non-resource, patient/ or user/ scope; else what its list covers.
func clientMay(c *invClient, s string) bool {
	sc, err := scopes.Parse(s)
	if err != nil || sc.Context == "system" {
		return false
	}
	return len(c.scopes) == 0 || scopes.Covers(c.scopes, []string{s})
}

// userMay tells whether a user may hold a scope: non-resource scopes
// always; never system/; user/ only for a Patient user or with an
// explicit user/ grant; resource scopes within the user's scopes, if any.
func userMay(u *invUser, s string) bool {
	sc, err := scopes.Parse(s)
	if err != nil {
		return false
	}
	switch sc.Context {
	case "":
		return true
	case "system":
		return false
	case "user":
		if _, isPatient := u.ownPatient(); !isPatient && !u.explicitUser() {
			return false
		}
	}
	return len(u.scopes) == 0 || scopes.Covers(u.scopes, []string{s})
}

// patientRef returns the patient a reference names: Patient/X, or an
// absolute URL ending in /Patient/X.
func patientRef(ref string) (string, bool) {
	i := strings.LastIndex(ref, "Patient/")
	if i < 0 || (i > 0 && ref[i-1] != '/') {
		return "", false
	}
	id := ref[i+len("Patient/"):]
	return id, id != "" && !strings.ContainsAny(id, "/?#")
}

// reachItem is one piece of data a request reached, as the ways it can
// be within a reach: it is when every patient of one of its sets is
// allowed. {{"p1"}} is p1's data, {{"p1"}, {"p2"}} data in both p1's and
// p2's compartments, {{everyone}} data not confined to named patients.
type reachItem [][]string

// resourceItems are the pieces of data a resource is. A Patient is its
// id's. Another resource of a compartment type is in the compartment of
// each patient its compartment elements (and subject, patient, in any
// case: a lenient server might read a key that differs only in case)
// refer to; one it writes must, when it has a primary reference (subject
// or patient), be within reach by that reference. A resource that refers
// to no patient is not confined; one of another type is no patient's data.
// A Bundle's resources count one by one.
func resourceItems(res map[string]any, written bool) []reachItem {
	typ, _ := res["resourceType"].(string)
	switch typ {
	case "Patient":
		id, _ := res["id"].(string)
		if id == "" {
			return []reachItem{{{everyone}}}
		}
		return []reachItem{{{id}}}
	case "Bundle":
		var out []reachItem
		entries, _ := res["entry"].([]any)
		for _, e := range entries {
			em, _ := e.(map[string]any)
			if r, ok := em["resource"].(map[string]any); ok {
				out = append(out, resourceItems(r, written)...)
			}
		}
		return out
	}
	params, ok := invCompartment[typ]
	if !ok {
		return nil
	}
	var all, primary []string
	elements := append([]string{"subject", "patient"}, params...)
	for key, val := range res {
		el := strings.ToLower(key)
		if !slices.Contains(elements, el) {
			continue
		}
		var refs []any
		switch v := val.(type) {
		case map[string]any:
			refs = []any{v}
		case []any:
			refs = v
		}
		for _, r := range refs {
			rm, _ := r.(map[string]any)
			ref, _ := rm["reference"].(string)
			if p, ok := patientRef(ref); ok {
				all = append(all, p)
				if el == "subject" || el == "patient" {
					primary = append(primary, p)
				}
			}
		}
	}
	switch {
	case written && len(primary) > 0:
		return []reachItem{{primary}}
	case len(all) == 0:
		return []reachItem{{{everyone}}}
	}
	var item reachItem
	for _, p := range all {
		item = append(item, []string{p})
	}
	return []reachItem{item}
}

// bodyItems are the pieces of data a JSON body is (none if it is not a
// resource).
func bodyItems(body string, written bool) []reachItem {
	var res map[string]any
	if json.Unmarshal([]byte(body), &res) != nil || res == nil {
		return nil
	}
	return resourceItems(res, written)
}

// searchSets tells which patients' compartments a search on typ is
// confined to by its parameters. Repeated parameters are ANDed, a comma
// list is an OR: each occurrence of a compartment parameter (or subject,
// patient; _id on Patient) whose values are all typed patient references
// (Patient/X, an absolute URL, or a bare id under the :Patient modifier)
// confines every result to the compartment of one of its patients; the
// search stays within a set of patients' data when one occurrence's set
// does. nil: no occurrence confines it (a bare id matches any resource
// type with that id in FHIR).
func searchSets(typ string, params url.Values) [][]string {
	names := append([]string{"subject", "patient"}, invCompartment[typ]...)
	var sets [][]string
	for key, vs := range params {
		name, mod, _ := strings.Cut(key, ":")
		switch {
		case typ == "Patient" && key != "_id",
			typ != "Patient" && (!slices.Contains(names, name) || strings.Contains(key, ".") || (mod != "" && mod != "Patient")):
			continue
		}
		for _, v := range vs {
			var set []string
			for one := range strings.SplitSeq(v, ",") {
				p, ok := patientRef(one)
				if typ == "Patient" || (mod == "Patient" && !strings.Contains(one, "/")) {
					p, ok = one, one != ""
				}
				if !ok {
					set = nil
					break
				}
				set = append(set, p)
			}
			if set != nil {
				sets = append(sets, set)
			}
		}
	}
	return sets
}

// ownerOf is the patient whose stored resource typ/id is in the
// recording upstream (fakeResource): Patient/X is X's; a "focus-" resource
// is in nobody's compartment (everyone); a "missing-" one does not exist.
func ownerOf(typ, id string) []string {
	switch {
	case strings.HasPrefix(id, "missing"):
		return nil
	case typ == "Patient":
		return []string{id}
	case invCompartment[typ] == nil:
		return nil
	case strings.HasPrefix(id, "focus-"):
		return []string{everyone}
	}
	return []string{id[strings.LastIndex(id, "-")+1:]}
}

// seenSearch is a search the upstream received: its type and parameters.
type seenSearch struct {
	typ    string
	params url.Values
}

// upstreamView is what a request that reached the upstream touched.
type upstreamView struct {
	items    []reachItem  // the data it reads or writes
	outside  []string     // types outside the compartment it works on
	searches []seenSearch // searches on Patient and compartment types
}

// outsideReach returns the patients (or everyone) of what a request
// reached outside what may allows: for each piece of data not within
// reach, the patients of its first way.
func (v upstreamView) outsideReach(may func(string) bool) []string {
	var out []string
	for _, item := range v.items {
		if !slices.ContainsFunc(item, func(set []string) bool { return !slices.ContainsFunc(set, func(p string) bool { return !may(p) }) }) {
			out = append(out, slices.DeleteFunc(slices.Clone(item[0]), may)...)
		}
	}
	return out
}

// analyzeForwarded reads a request as the upstream received it. Reads by
// id at the top level are left to the answer (the guard checks it before
// passing it on); inside a Bundle they count by the resource's owner.
func analyzeForwarded(up upstreamRequest) upstreamView {
	var v upstreamView
	rel := strings.TrimPrefix(strings.TrimPrefix(up.Path, "/fhir"), "/")
	q, _ := url.ParseQuery(up.RawQuery)
	v.add(up.Method, rel, q, up.Body, false)
	return v
}

// add records one interaction: method on rel (a path relative to the
// FHIR base, without query) with its query parameters and body.
func (v *upstreamView) add(method, rel string, q url.Values, body string, inBundle bool) {
	touch := func(ps ...string) {
		for _, p := range ps {
			v.items = append(v.items, reachItem{{p}})
		}
	}
	written := func() { v.items = append(v.items, bodyItems(body, true)...) }
	search := func(typ string, params url.Values) {
		v.searches = append(v.searches, seenSearch{typ, params})
		sets := searchSets(typ, params)
		if sets == nil {
			sets = reachItem{{everyone}}
		}
		v.items = append(v.items, sets)
	}
	segs := strings.Split(rel, "/")
	typ, n := segs[0], len(segs)
	switch {
	case typ == "" && method == "POST":
		v.addBundle(body)
		return
	case typ == "" || typ == "_history" || typ == "_search" || strings.HasPrefix(typ, "$"):
		touch(everyone)
		return
	case typ != "Patient" && invCompartment[typ] == nil:
		v.outside = append(v.outside, typ)
		return
	}
	readLike := method == "GET" || method == "HEAD"
	switch {
	case n == 1 && method == "POST":
		written()
		if typ == "Patient" || len(bodyItems(body, true)) == 0 {
			touch(everyone) // a new patient, or not a resource
		}
	case n == 1:
		search(typ, q)
		if method == "PUT" || method == "PATCH" {
			written()
		}
	case segs[1] == "_search":
		form, _ := url.ParseQuery(body)
		for k, vs := range q {
			form[k] = append(form[k], vs...)
		}
		search(typ, form)
	case segs[1] == "_history":
		touch(everyone)
	case strings.HasPrefix(segs[1], "$") && readLike:
		search(typ, q)
	case strings.HasPrefix(segs[1], "$"):
		touch(everyone)
	case typ == "Patient" && n > 2 && segs[2] != "_history":
		touch(segs[1]) // compartment search or instance operation
	case readLike && !inBundle:
		// answered through the guard's check: counted by the answer
	case method == "PUT":
		touch(ownerOf(typ, segs[1])...)
		written()
	default:
		touch(ownerOf(typ, segs[1])...)
	}
}

// addBundle records every entry of a batch or transaction Bundle.
func (v *upstreamView) addBundle(body string) {
	var b struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
			Request  struct {
				Method, URL string
			} `json:"request"`
		} `json:"entry"`
	}
	if json.Unmarshal([]byte(body), &b) != nil {
		v.items = append(v.items, reachItem{{everyone}})
		return
	}
	for _, e := range b.Entry {
		u, err := url.Parse(e.Request.URL)
		if err != nil {
			v.items = append(v.items, reachItem{{everyone}})
			continue
		}
		v.add(e.Request.Method, strings.TrimPrefix(u.Path, "/"), u.Query(), string(e.Resource), true)
	}
}

// restricted tells whether a search the upstream received is confined to
// patient c's compartment the way the guard's compartment rule makes it:
// _id=c on Patient, a typed reference to c in a compartment parameter on
// the others (the guard adds the type's first one), possibly as a comma
// list naming only c.
func (s seenSearch) restricted(c string) bool {
	return slices.ContainsFunc(searchSets(s.typ, s.params), func(set []string) bool {
		return !slices.ContainsFunc(set, func(p string) bool { return p != c })
	})
}
