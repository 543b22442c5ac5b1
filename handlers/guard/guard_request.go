package guard

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/scopes"
)

// Limits on what the guard reads to check it.
const (
	// maxCheckedBody bounds a request or response body the guard parses
	// (resources, bundles, CapabilityStatements).
	maxCheckedBody = 8 << 20
	// maxSearchForm bounds the form body of a POST _search.
	maxSearchForm = 1 << 20
)

// allowedReasons are the audit reasons of allowed requests, by scope
// context.
var allowedReasons = map[scopes.Context]string{
	scopes.System:  "allowed by system/ scopes",
	scopes.User:    "allowed by user/ scopes",
	scopes.Patient: "allowed by patient/ scopes in the patient compartment",
}

// plan is how an allowed request goes on.
type plan struct {
	reason string
	// patient, when set, is the context patient whose compartment the
	// response (checkResponse) or the stored resource (precheck) must be
	// in; resourceType is the type they must have.
	patient       string
	resourceType  string
	checkResponse bool
	precheck      bool
}

// authorizeRequest decides an authenticated request: batches entry by
// entry, everything else by its interaction, then confines patient/ access
// to the compartment, rewriting the search or checking bodies.
func (g *Guard) authorizeRequest(r *http.Request, p *principal, in *interaction) (*plan, *oauth.Error) {
	if in.name == ixBatch {
		return g.authorizeBundle(r, p)
	}
	if r.Method == http.MethodPost && (in.name == ixSearchType || in.name == ixSearchSystem) {
		if f := mergeSearchForm(r, in.params); f != nil {
			return nil, f
		}
	}
	if f := refuseMethodParams(in.params, "the search"); f != nil {
		return nil, f
	}
	ctx, f := g.decide(p, in)
	if f != nil {
		return nil, f
	}
	pl := &plan{reason: allowedReasons[ctx]}
	if ctx != scopes.Patient {
		return pl, nil
	}
	act, f := g.compartmentAction(in, p.patient)
	if f != nil {
		return nil, f
	}
	if act.addKey != "" {
		if in.name == ixCondCreate {
			h := strings.TrimPrefix(r.Header.Get("If-None-Exist"), "?")
			r.Header.Set("If-None-Exist", appendParam(h, act.addKey, act.addValue))
		} else {
			r.URL.RawQuery = appendParam(r.URL.RawQuery, act.addKey, act.addValue)
			r.RequestURI = r.URL.RequestURI()
		}
	}
	if act.bodyWritable {
		res, f := readJSONBody(r)
		if f != nil {
			return nil, f
		}
		if !resourceWritable(in.resourceType, res, p.patient, g.base) {
			return nil, forbidden("", "the resource sent is not the patient's: its "+primaryName(in.resourceType)+" must name the patient, and no compartment element another patient")
		}
		if f := setJSONBody(r, res); f != nil {
			return nil, f
		}
	}
	if act.patchChecked {
		if f := checkPatchBody(r, in.resourceType); f != nil {
			return nil, f
		}
	}
	if act.checkResponse || act.precheck {
		pl.patient, pl.resourceType = p.patient, in.resourceType
		pl.checkResponse, pl.precheck = act.checkResponse, act.precheck
	}
	return pl, nil
}

// appendParam adds key=value to a raw query string.
func appendParam(raw, key, value string) string {
	kv := url.QueryEscape(key) + "=" + url.QueryEscape(value)
	if raw == "" {
		return kv
	}
	return raw + "&" + kv
}

// mergeSearchForm adds the form body of a POST _search to params and puts
// the body back for the upstream.
func mergeSearchForm(r *http.Request, params url.Values) *oauth.Error {
	if r.Body == nil {
		return nil
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	b, err := io.ReadAll(io.LimitReader(r.Body, maxSearchForm+1))
	if err != nil {
		return badRequest("reading the search form failed")
	}
	if len(b) > maxSearchForm {
		return &oauth.Error{Status: http.StatusRequestEntityTooLarge, Description: "the search form is too large"}
	}
	if len(b) > 0 && mt != "application/x-www-form-urlencoded" {
		return badRequest("a POST _search needs an application/x-www-form-urlencoded body")
	}
	form, err := url.ParseQuery(string(b))
	if err != nil {
		return badRequest("the search form is malformed")
	}
	for k, vs := range form {
		params[k] = append(params[k], vs...)
	}
	setBody(r, b)
	return nil
}

// readJSONBody reads and parses a request's JSON resource.
func readJSONBody(r *http.Request) (map[string]any, *oauth.Error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/fhir+json" && mt != "application/json" {
		return nil, &oauth.Error{Status: http.StatusUnsupportedMediaType, Description: "with patient/ scopes the resource must be sent as application/fhir+json, so that it can be checked"}
	}
	if r.Body == nil {
		return nil, badRequest("the request has no resource")
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxCheckedBody+1))
	if err != nil {
		return nil, badRequest("reading the request body failed")
	}
	if len(b) > maxCheckedBody {
		return nil, &oauth.Error{Status: http.StatusRequestEntityTooLarge, Description: "the request body is too large to be checked"}
	}
	res, msg, err := parseCheckedJSON(b)
	switch {
	case errors.Is(err, errJSONKeys):
		return nil, badRequest("the request body cannot be checked: " + msg)
	case err != nil:
		return nil, badRequest("the request body is not a JSON resource")
	}
	return res, nil
}

// parseJSONObject parses a JSON object, keeping numbers as they are.
func parseJSONObject(b []byte) (map[string]any, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil || dec.More() {
		return nil, false
	}
	return m, true
}

// primaryName names a type's primary patient element(s) for messages.
func primaryName(t string) string {
	if t == "Patient" {
		return "id"
	}
	return strings.Join(primaryElements(t), " or ")
}

// setJSONBody replaces the request body with v as JSON: the upstream gets
// exactly what the guard checked (one value per key).
func setJSONBody(r *http.Request, v any) *oauth.Error {
	b, err := json.Marshal(v)
	if err != nil {
		return badRequest("the request body cannot be re-encoded")
	}
	setBody(r, b)
	return nil
}

// setBody replaces a request's body.
func setBody(r *http.Request, b []byte) {
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.ContentLength = int64(len(b))
	r.TransferEncoding = nil
	r.Header.Set("Content-Length", strconv.Itoa(len(b)))
	r.Header.Del("Transfer-Encoding")
}
