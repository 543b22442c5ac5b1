package guard

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/scopes"
)

// authorizeBundle checks a batch or transaction: every entry on its own
// terms, as if it were sent alone. One refused entry refuses the whole
// Bundle (the upstream never sees it). Under patient/ scopes the entries'
// searches get the compartment restriction in their URL and the resources
// they send must be in the compartment; entries that would need the
// upstream's answer checked (reads of compartment resources other than the
// patient) or a stored resource read first (update, patch and delete of
// them) are refused: send them on their own. The Bundle goes upstream
// re-encoded from what was checked.
func (g *Guard) authorizeBundle(r *http.Request, p *principal) (*plan, *oauth.Error) {
	bundle, f := readJSONBody(r)
	if f != nil {
		return nil, f
	}
	typ, _ := bundle["type"].(string)
	if rt, _ := bundle["resourceType"].(string); rt != "Bundle" || (typ != "batch" && typ != "transaction") {
		return nil, badRequest("POST to the FHIR base needs a batch or transaction Bundle")
	}
	entries, _ := bundle["entry"].([]any)
	if _, has := bundle["entry"]; has && entries == nil {
		return nil, badRequest("the Bundle's entry is not a list")
	}
	for i, e := range entries {
		if f := g.authorizeEntry(p, e); f != nil {
			f.Description = fmt.Sprintf("Bundle entry %d: %s", i, f.Description)
			return nil, f
		}
	}
	if f := setJSONBody(r, bundle); f != nil {
		return nil, f
	}
	return &plan{reason: fmt.Sprintf("every entry of a %s of %d allowed", typ, len(entries))}, nil
}

// authorizeEntry checks one Bundle entry and rewrites it as the
// compartment requires.
func (g *Guard) authorizeEntry(p *principal, e any) *oauth.Error {
	entry, _ := e.(map[string]any)
	req, _ := entry["request"].(map[string]any)
	method, _ := req["method"].(string)
	raw, _ := req["url"].(string)
	if method == "" || raw == "" {
		return badRequest("the entry has no request method and url")
	}
	base := g.base
	if strings.Contains(raw, "://") {
		if !strings.HasPrefix(raw, base+"/") {
			return badRequest("the entry's url is not on this FHIR server")
		}
		raw = strings.TrimPrefix(raw, base+"/")
	}
	rel, rawQuery, _ := strings.Cut(strings.TrimPrefix(raw, "/"), "?")
	if strings.Contains(rel, "%") {
		return badRequest("the entry's url must not use percent-encoding in its path")
	}
	if f := refuseRawQuery(rawQuery, "the entry's url"); f != nil {
		return f
	}
	params, err := url.ParseQuery(rawQuery)
	if err != nil {
		return badRequest("the entry's url has a malformed query")
	}
	if f := refuseMethodParams(params, "the entry's url"); f != nil {
		return f
	}
	var ifNoneExist url.Values
	ine, _ := req["ifNoneExist"].(string)
	if ine != "" {
		if f := refuseRawQuery(ine, "the entry's ifNoneExist"); f != nil {
			return f
		}
		if ifNoneExist, err = url.ParseQuery(strings.TrimPrefix(ine, "?")); err != nil {
			return badRequest("the entry's ifNoneExist is malformed")
		}
		if f := refuseMethodParams(ifNoneExist, "the entry's ifNoneExist"); f != nil {
			return f
		}
	}
	in, f := parseInteraction(strings.ToUpper(method), rel, params, ifNoneExist)
	switch {
	case f != nil:
		return f
	case in.name == ixCapabilities:
		return nil
	case in.name == ixBatch:
		return forbidden("", "a Bundle inside a Bundle is not allowed")
	case method == http.MethodPost && (in.name == ixSearchType || in.name == ixSearchSystem):
		return badRequest("use GET for searches inside a Bundle")
	}
	ctx, f := g.decide(p, in)
	if f != nil || ctx != scopes.Patient {
		return f
	}
	act, f := g.compartmentAction(in, p.patient)
	switch {
	case f != nil:
		return f
	case act.checkResponse || act.precheck || act.patchChecked:
		return forbidden("", describeInteraction(in)+" under patient/ scopes cannot be checked inside a Bundle: send it on its own")
	}
	if act.addKey != "" {
		if in.name == ixCondCreate {
			req["ifNoneExist"] = appendParam(strings.TrimPrefix(ine, "?"), act.addKey, act.addValue)
		} else {
			req["url"] = rel + "?" + appendParam(rawQuery, act.addKey, act.addValue)
		}
	}
	if act.bodyWritable {
		res, _ := entry["resource"].(map[string]any)
		if res == nil || !resourceWritable(in.resourceType, res, p.patient, base) {
			return forbidden("", "the entry's resource is not the patient's: its "+primaryName(in.resourceType)+" must name the patient, and no compartment element another patient")
		}
	}
	return nil
}
