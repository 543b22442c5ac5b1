package guard

import (
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/smartcaddy/smartauth/scopes"
)

// interactionRule is what an interaction may be: the methods that reach
// it (after HEAD became GET) and the permissions it needs.
type interactionRule struct {
	methods []string
	need    scopes.Perms
}

// interactionRules is the table of SMART scopes §5.2 the guard applies,
// written out independently of parseInteraction.
var interactionRules = map[string]interactionRule{
	ixCapabilities:  {[]string{"GET"}, 0},
	ixRead:          {[]string{"GET"}, scopes.Read},
	ixVRead:         {[]string{"GET"}, scopes.Read},
	ixHistoryInst:   {[]string{"GET"}, scopes.Read},
	ixHistoryType:   {[]string{"GET"}, scopes.Search},
	ixHistorySystem: {[]string{"GET"}, scopes.Search},
	ixSearchType:    {[]string{"GET", "POST"}, scopes.Search},
	ixSearchSystem:  {[]string{"GET", "POST"}, scopes.Search},
	ixSearchCompart: {[]string{"GET"}, scopes.Search},
	ixCreate:        {[]string{"POST"}, scopes.Create},
	ixCondCreate:    {[]string{"POST"}, scopes.Create | scopes.Search},
	ixUpdate:        {[]string{"PUT"}, scopes.Update},
	ixCondUpdate:    {[]string{"PUT"}, scopes.Create | scopes.Update | scopes.Search},
	ixPatch:         {[]string{"PATCH"}, scopes.Update},
	ixCondPatch:     {[]string{"PATCH"}, scopes.Update | scopes.Search},
	ixDelete:        {[]string{"DELETE"}, scopes.Delete},
	ixCondDelete:    {[]string{"DELETE"}, scopes.Delete | scopes.Search},
	ixBatch:         {[]string{"POST"}, 0},
	ixOperation:     {nil, 0}, // any method; the needs come from the operation rules
}

// canonicalRel writes the path (relative to the FHIR base) that names an
// interaction: the only spelling the guard should accept for it.
func canonicalRel(in *interaction) string {
	join := func(s ...string) string { return strings.Join(s, "/") }
	switch in.name {
	case ixCapabilities:
		return "metadata"
	case ixHistorySystem:
		return "_history"
	case ixBatch:
		return ""
	case ixSearchSystem:
		if in.method == http.MethodPost {
			return "_search"
		}
		return ""
	case ixSearchType:
		if in.method == http.MethodPost {
			return join(in.resourceType, "_search")
		}
		return in.resourceType
	case ixHistoryType:
		return join(in.resourceType, "_history")
	case ixCreate, ixCondCreate, ixCondUpdate, ixCondPatch, ixCondDelete:
		return in.resourceType
	case ixRead, ixUpdate, ixPatch, ixDelete:
		return join(in.resourceType, in.id)
	case ixHistoryInst:
		return join(in.resourceType, in.id, "_history")
	case ixVRead:
		return join(in.resourceType, in.id, "_history", in.version)
	case ixSearchCompart:
		return join("Patient", in.compartment, in.resourceType)
	case ixOperation:
		switch in.level {
		case "system":
			return in.op
		case "type":
			return join(in.resourceType, in.op)
		case "instance":
			return join(in.resourceType, in.id, in.op)
		}
	}
	return "\x00unknown interaction " + in.name
}

// segmentOK tells whether a path segment is made only of the characters
// FHIR types, ids, operation names and the _search/_history keywords
// use, and is not a dot segment.
func segmentOK(s string) bool {
	if s == "" || s == "." || s == ".." {
		return false
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '$'
		if !ok {
			return false
		}
	}
	return true
}

// FuzzParseInteraction checks the guard's reading of a method, a path
// under the FHIR base and its search parameters:
//   - a refusal never comes with an interaction, and is a 4xx;
//   - an accepted path has only non-empty segments of FHIR characters (no
//     %, no empty segment from //, no . or ..);
//   - the interaction's method and needed permissions follow SMART
//     scopes §5.2 (a write never reads as a read; conditional
//     interactions also need search);
//   - the path is the only spelling of its interaction (it round-trips
//     through canonicalRel), and parsing it again gives the same
//     interaction.
func FuzzParseInteraction(f *testing.F) {
	for _, s := range [][4]string{
		{"GET", "Observation/1", "", ""},
		{"HEAD", "Observation/1/_history/2", "", ""},
		{"GET", "Observation/1/_history", "", ""},
		{"GET", "Observation/_history", "", ""},
		{"GET", "_history", "", ""},
		{"GET", "", "_type=Observation", ""},
		{"POST", "_search", "", ""},
		{"GET", "Observation", "code=1&subject=Patient/p1", ""},
		{"POST", "Observation/_search", "", ""},
		{"POST", "Observation", "", ""},
		{"POST", "Observation", "", "identifier=1"},
		{"PUT", "Observation/1", "", ""},
		{"PUT", "Observation", "identifier=1", ""},
		{"PATCH", "Observation", "identifier=1", ""},
		{"DELETE", "Observation", "identifier=1", ""},
		{"DELETE", "Observation", "", ""},
		{"GET", "Patient/p1/Observation", "", ""},
		{"POST", "", "", ""},
		{"GET", "metadata", "", ""},
		{"GET", "Patient/p1/$everything", "", ""},
		{"DELETE", "Patient/p1/$everything", "", ""},
		{"GET", "$export", "", ""},
		{"GET", "Group/g1/$export", "", ""},
		{"GET", "Observation/..", "", ""},
		{"GET", "Observation/.", "", ""},
		{"GET", "./Observation", "", ""},
		{"GET", "Observation//1", "", ""},
		{"GET", "Observation/1/", "", ""},
		{"GET", "Observation/a%2Fb", "", ""},
		{"GET", "Observation/1/_history/..", "", ""},
		{"GET", "Patient/p1/_history/x/y", "", ""},
		{"GET", "Observation;x=1/1", "", ""},
		{"PUT", "Patient/p1/_history", "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, method, rel, rawQuery, ifNoneExist string) {
		params, err := url.ParseQuery(rawQuery)
		if err != nil {
			return // the guard refuses a malformed query before parsing the path
		}
		var ine url.Values
		if ifNoneExist != "" {
			if ine, err = url.ParseQuery(strings.TrimPrefix(ifNoneExist, "?")); err != nil {
				return
			}
		}
		in, fault := parseInteraction(method, rel, params, ine)
		if fault != nil {
			if in != nil {
				t.Fatalf("%s %q: refused (%s) but gave an interaction %+v", method, rel, fault.Description, in)
			}
			if fault.Status < 400 || fault.Status > 499 {
				t.Fatalf("%s %q: refusal with status %d", method, rel, fault.Status)
			}
			return
		}
		if rel != "" {
			for _, sg := range strings.Split(rel, "/") {
				if !segmentOK(sg) {
					t.Fatalf("%s %q accepted as %s with segment %q", method, rel, in.name, sg)
				}
			}
		}
		want := method
		if want == http.MethodHead {
			want = http.MethodGet
		}
		rule, known := interactionRules[in.name]
		switch {
		case !known:
			t.Fatalf("%s %q: unknown interaction %q", method, rel, in.name)
		case in.method != want:
			t.Fatalf("%s %q: interaction method %s", method, rel, in.method)
		case rule.methods != nil && !slices.Contains(rule.methods, in.method):
			t.Fatalf("%s %q gave %s, which takes %v", method, rel, in.name, rule.methods)
		case in.need != rule.need:
			t.Fatalf("%s %q gave %s needing %s, want %s", method, rel, in.name, in.need, rule.need)
		case (in.name == ixCondUpdate || in.name == ixCondPatch || in.name == ixCondDelete) && len(params) == 0:
			t.Fatalf("%s %q: %s without search parameters", method, rel, in.name)
		case in.name == ixCondCreate && ine == nil, in.name != ixCondCreate && in.ifNoneExist != nil:
			t.Fatalf("%s %q: %s with If-None-Exist %v", method, rel, in.name, in.ifNoneExist)
		case in.name == ixOperation && (in.op == "" || in.op[0] != '$'):
			t.Fatalf("%s %q: operation named %q", method, rel, in.op)
		}
		if c := canonicalRel(in); c != rel {
			t.Fatalf("%s %q read as %s (%+v), whose spelling is %q", method, rel, in.name, in, c)
		}
		again, fault := parseInteraction(method, rel, params, ine)
		if fault != nil || !reflect.DeepEqual(again, in) {
			t.Fatalf("%s %q: not deterministic: %+v then %+v %v", method, rel, in, again, fault)
		}
	})
}
