package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// guardCase is one request through Caddy → smart_auth → reverse_proxy →
// the recording upstream.
type guardCase struct {
	name         string
	method, path string // path relative to the FHIR base, with its query
	body, ctype  string
	header       map[string]string
	scope        string
	patient      string // context patient; default p1 for patient/ scopes, "-" for none
	sub, client  string
	token        string // a ready token instead of one minted from the fields above
	noToken      bool
	want         int
	// reach: 0 = the upstream is reached exactly when want is 2xx; +1 =
	// reached whatever the status (answers checked after the upstream);
	// -1 = never reached.
	reach int
	check func(t *testing.T, up upstreamRequest, resp *http.Response, body string)
}

func gc(name, method, path, scope string, want int) guardCase {
	return guardCase{name: name, method: method, path: path, scope: scope, want: want}
}

func (c guardCase) withBody(body string) guardCase {
	c.body, c.ctype = body, "application/fhir+json"
	return c
}

func (c guardCase) as(sub, client string) guardCase { c.sub, c.client = sub, client; return c }
func (c guardCase) withPatient(p string) guardCase  { c.patient = p; return c }
func (c guardCase) reaching(r int) guardCase        { c.reach = r; return c }
func (c guardCase) hdr(k, v string) guardCase       { c.header = map[string]string{k: v}; return c }
func (c guardCase) then(f func(*testing.T, upstreamRequest, *http.Response, string)) guardCase {
	c.check = f
	return c
}

// queryHas checks that the upstream got a query parameter.
func queryHas(key, value string) func(*testing.T, upstreamRequest, *http.Response, string) {
	return func(t *testing.T, up upstreamRequest, _ *http.Response, _ string) {
		q, _ := url.ParseQuery(up.RawQuery)
		for _, v := range q[key] {
			if v == value {
				return
			}
		}
		t.Errorf("upstream query %q lacks %s=%s", up.RawQuery, key, value)
	}
}

// queryLacks checks that the upstream did not get a parameter.
func queryLacks(key string) func(*testing.T, upstreamRequest, *http.Response, string) {
	return func(t *testing.T, up upstreamRequest, _ *http.Response, _ string) {
		if q, _ := url.ParseQuery(up.RawQuery); q.Has(key) {
			t.Errorf("upstream query %q has %s", up.RawQuery, key)
		}
	}
}

// upstreamMethod checks the last method the upstream saw for the case.
func upstreamMethod(m string) func(*testing.T, upstreamRequest, *http.Response, string) {
	return func(t *testing.T, up upstreamRequest, _ *http.Response, _ string) {
		if up.Method != m {
			t.Errorf("upstream last saw %s, want %s", up.Method, m)
		}
	}
}

// bodyLacks checks that the client did not get a string.
func bodyLacks(s string) func(*testing.T, upstreamRequest, *http.Response, string) {
	return func(t *testing.T, _ upstreamRequest, _ *http.Response, body string) {
		if strings.Contains(body, s) {
			t.Errorf("the response passed on %q: %s", s, body)
		}
	}
}

// upstreamBodyHas checks what the upstream received.
func upstreamBodyHas(s string) func(*testing.T, upstreamRequest, *http.Response, string) {
	return func(t *testing.T, up upstreamRequest, _ *http.Response, _ string) {
		if !strings.Contains(up.Body, s) {
			t.Errorf("upstream body lacks %q: %s", s, up.Body)
		}
	}
}

func obsFor(p string) string {
	return fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/%s"}}`, p)
}

func bundleOf(typ string, entries ...string) string {
	return fmt.Sprintf(`{"resourceType":"Bundle","type":%q,"entry":[%s]}`, typ, strings.Join(entries, ","))
}

func entry(method, u, resource string) string {
	if resource == "" {
		return fmt.Sprintf(`{"request":{"method":%q,"url":%q}}`, method, u)
	}
	return fmt.Sprintf(`{"resource":%s,"request":{"method":%q,"url":%q}}`, resource, method, u)
}

// permMatrix is every REST interaction on Observation against v1 and v2
// user/ scopes: allowed exactly when the scope gives every letter needed.
func permMatrix() []guardCase {
	type ix struct {
		name, method, path, body string
		header                   map[string]string
		need                     string
		ok                       int
	}
	ixs := []ix{
		{"read", "GET", "Observation/obs-p1", "", nil, "r", 200},
		{"vread", "GET", "Observation/obs-p1/_history/2", "", nil, "r", 200},
		{"instance history", "GET", "Observation/obs-p1/_history", "", nil, "r", 200},
		{"search", "GET", "Observation?code=1234", "", nil, "s", 200},
		{"POST _search", "POST", "Observation/_search", "", nil, "s", 200},
		{"type history", "GET", "Observation/_history", "", nil, "s", 200},
		{"create", "POST", "Observation", obsFor("p1"), nil, "c", 201},
		{"conditional create", "POST", "Observation", obsFor("p1"), map[string]string{"If-None-Exist": "identifier=x|1"}, "cs", 201},
		{"update", "PUT", "Observation/obs-p1", obsFor("p1"), nil, "u", 200},
		{"patch", "PATCH", "Observation/obs-p1", `[{"op":"replace","path":"/status","value":"amended"}]`, nil, "u", 200},
		{"delete", "DELETE", "Observation/obs-p1", "", nil, "d", 200},
		{"conditional update", "PUT", "Observation?identifier=x|1", obsFor("p1"), nil, "cus", 200},
		{"conditional patch", "PATCH", "Observation?identifier=x|1", `[]`, nil, "us", 200},
		{"conditional delete", "DELETE", "Observation?identifier=x|1", "", nil, "ds", 200},
	}
	scopeSets := []struct{ scope, letters string }{
		{"user/Observation.read", "rs"},
		{"user/Observation.write", "cud"},
		{"user/Observation.*", "cruds"},
		{"user/Observation.rs", "rs"},
		{"user/Observation.cud", "cud"},
		{"user/Observation.c", "c"},
		{"user/*.cruds", "cruds"},
		{"user/Patient.cruds", ""},
	}
	var out []guardCase
	for _, s := range scopeSets {
		for _, x := range ixs {
			want := x.ok
			for _, l := range x.need {
				if !strings.ContainsRune(s.letters, l) {
					want = http.StatusForbidden
				}
			}
			c := gc(x.name+" with "+s.scope, x.method, x.path, s.scope, want)
			if x.body != "" {
				c = c.withBody(x.body)
			}
			if x.name == "POST _search" {
				c.body, c.ctype = "code=1234", "application/x-www-form-urlencoded"
			}
			c.header = x.header
			out = append(out, c)
		}
	}
	return out
}

// guardCases are the explicit rules.
func guardCases() []guardCase {
	const lab = "patient/Observation.rs?category=laboratory"
	return []guardCase{
		// Token check.
		{name: "no token", method: "GET", path: "Observation", noToken: true, want: 401},
		{name: "token only in the query string", method: "GET", path: "Observation?access_token=abc", noToken: true, want: 401},
		{name: "Basic scheme", method: "GET", path: "Observation", noToken: true, want: 401, header: map[string]string{"Authorization": "Basic YTpi"}},
		{name: "malformed token", method: "GET", path: "Observation", token: "not.a.jwt", want: 401},
		gc("unknown client", "GET", "Observation", "user/*.rs", 401).as("alice", "nobody"),
		gc("unknown user", "GET", "Observation", "user/*.rs", 401).as("mallory", "app"),
		gc("lower-case bearer scheme", "GET", "Observation", "user/*.rs", 200),

		// System level.
		gc("system search needs a wildcard", "GET", "?_lastUpdated=gt2020", "user/Observation.rs", 403),
		gc("system search with user/*.s", "GET", "?_lastUpdated=gt2020", "user/*.s", 200),
		gc("system history", "GET", "_history", "user/*.rs", 200),
		gc("system history without s", "GET", "_history", "user/*.r", 403),
		gc("system POST _search", "POST", "_search", "user/*.rs", 200),
		gc("DELETE on the base", "DELETE", "", "user/*.cruds", 405),
		gc("PUT without id or query", "PUT", "Observation", "user/*.cruds", 400).withBody(obsFor("p1")),

		// Malformed paths never reach the upstream.
		gc("lower-case type", "GET", "observation/1", "user/*.rs", 400),
		gc("encoded slash", "GET", "Observation/a%2F..%2FPatient", "user/*.rs", 400),
		gc("matrix parameter", "GET", "Observation/a;b", "user/*.rs", 400),
		gc("empty segment", "GET", "Patient//p1", "user/*.rs", 400),
		gc("dot segment", "GET", "Observation/../Patient", "user/*.rs", 400),
		gc("upper-case base", "GET", "../FHIR/Patient/p2", "patient/Patient.r", 400),
		gc("dot segment before the base", "GET", "../x/../fhir/Patient/p2", "patient/Patient.r", 400),
		gc("double slash before the base", "GET", "../%2Ffhir/Patient/p2", "patient/Patient.r", 400),
		gc("bad query", "GET", "Observation?a=%zz", "user/*.rs", 400),

		// Query restrictions (v2 fine-grained scopes).
		gc("restricted search with the restriction", "GET", "Observation?category=laboratory", lab, 200).then(queryHas("subject", "Patient/p1")),
		gc("restricted search without it", "GET", "Observation?code=1", lab, 403),
		gc("restricted search with another value", "GET", "Observation?category=vital-signs", lab, 403),
		gc("restricted read by id", "GET", "Observation/obs-p1", lab, 403),
		gc("restricted create", "POST", "Observation?category=laboratory", lab, 403).withBody(obsFor("p1")),
		{name: "restricted POST _search with it in the form", method: "POST", path: "Observation/_search", scope: lab, body: "category=laboratory", ctype: "application/x-www-form-urlencoded", want: 200},
		gc("restricted search with v1 scope too", "GET", "Observation?code=1", lab+" patient/Observation.read", 200),

		// The patient compartment: Patient.
		gc("own Patient", "GET", "Patient/p1", "patient/Patient.read", 200),
		gc("other Patient", "GET", "Patient/p2", "patient/Patient.read", 403),
		gc("Patient search gets _id", "GET", "Patient?name=smith", "patient/Patient.rs", 200).then(queryHas("_id", "p1")),
		gc("Patient search for another _id", "GET", "Patient?_id=p2", "patient/Patient.rs", 403),
		gc("Patient search for own _id", "GET", "Patient?_id=p1", "patient/Patient.rs", 200),
		gc("own $everything", "GET", "Patient/p1/$everything", "patient/*.rs", 200),
		gc("other $everything", "GET", "Patient/p2/$everything", "patient/*.rs", 403),
		gc("$everything needs a wildcard", "GET", "Patient/p1/$everything", "patient/Patient.rs", 403),
		gc("type-level $everything", "GET", "Patient/$everything", "patient/*.rs", 403),
		gc("create Patient", "POST", "Patient", "patient/Patient.cruds", 403).withBody(`{"resourceType":"Patient"}`),
		gc("update own Patient", "PUT", "Patient/p1", "patient/Patient.u", 200).withBody(`{"resourceType":"Patient","id":"p1"}`),
		gc("update own Patient with another id", "PUT", "Patient/p1", "patient/Patient.u", 403).withBody(`{"resourceType":"Patient","id":"p2"}`),
		gc("Patient type history", "GET", "Patient/_history", "patient/Patient.rs", 403),
		gc("own compartment search", "GET", "Patient/p1/Observation?code=1", "patient/Observation.rs", 200),
		gc("own compartment search with _revinclude", "GET", "Patient/p1/Observation?_revinclude=Provenance:target", "patient/Observation.rs", 403),
		gc("type operation by POST under patient scopes", "POST", "Observation/$lastn", "patient/Observation.rs", 403).withBody(`{"resourceType":"Parameters"}`),
		gc("other compartment search", "GET", "Patient/p2/Observation", "patient/Observation.rs", 403),
		gc("compartment search of linked patients", "GET", "Patient/p1/Patient", "patient/Patient.rs", 403),
		gc("compartment search of a type outside it", "GET", "Patient/p1/Practitioner", "patient/*.rs", 403),
		gc("compartment search of an unknown type", "GET", "Patient/p1/Unknown", "patient/*.rs", 403),
		gc("patient scope without a patient", "GET", "Patient/p1", "patient/Patient.rs", 403).withPatient("-"),

		// The compartment: searches.
		gc("search gets subject", "GET", "Observation?code=1", "patient/Observation.rs", 200).then(queryHas("subject", "Patient/p1")),
		gc("search with own patient", "GET", "Observation?patient=p1", "patient/Observation.rs", 200),
		gc("search with another patient", "GET", "Observation?patient=Patient/p2", "patient/Observation.rs", 403),
		gc("search with another subject", "GET", "Observation?subject=p2", "patient/Observation.rs", 403),
		gc("search with an OR naming another", "GET", "Observation?subject=p1,p2", "patient/Observation.rs", 403),
		gc("search with subject:Patient", "GET", "Observation?subject:Patient=p1", "patient/Observation.rs", 200),
		gc("search with absolute own subject", "GET", "Observation?subject=Patient/p1", "patient/Observation.rs", 200).then(queryLacks("patient")),
		gc("search with _include", "GET", "Observation?_include=Observation:performer", "patient/Observation.rs", 403),
		gc("search with _revinclude", "GET", "Observation?_revinclude=Provenance:target", "patient/Observation.rs", 403),
		gc("Encounter search gets patient", "GET", "Encounter?date=gt2020", "patient/Encounter.rs", 200).then(queryHas("patient", "Patient/p1")),
		gc("Coverage search gets beneficiary", "GET", "Coverage", "patient/Coverage.rs", 200).then(queryHas("beneficiary", "Patient/p1")),
		gc("type history in the compartment", "GET", "Observation/_history", "patient/Observation.rs", 403),
		gc("system search with patient scopes", "GET", "?_type=Observation", "patient/*.rs", 403),
		gc("conditional delete gets subject", "DELETE", "Observation?code=1", "patient/Observation.ds", 200).then(queryHas("subject", "Patient/p1")),
		gc("v1 patient read search", "GET", "Condition?clinical-status=active", "patient/Condition.read", 200).then(queryHas("patient", "Patient/p1")),
		gc("v1 patient write cannot search", "GET", "Condition", "patient/Condition.write", 403),

		// The compartment: reads checked against the upstream's answer.
		gc("read own Observation", "GET", "Observation/obs-p1", "patient/Observation.rs", 200),
		gc("read another's Observation", "GET", "Observation/obs-p2", "patient/Observation.rs", 403).reaching(1).then(bodyLacks("Patient/p2")),
		gc("read Observation referring only via focus", "GET", "Observation/focus-p1", "patient/Observation.rs", 403).reaching(1),
		gc("read a missing Observation", "GET", "Observation/missing-1", "patient/Observation.rs", 404).reaching(1),
		gc("vread another's", "GET", "Observation/obs-p2/_history/1", "patient/Observation.rs", 403).reaching(1),
		gc("history of own", "GET", "Observation/obs-p1/_history", "patient/Observation.rs", 200),
		gc("history of another's", "GET", "Observation/obs-p2/_history", "patient/Observation.rs", 403).reaching(1),
		gc("HEAD of own Observation", "HEAD", "Observation/obs-p1", "patient/Observation.rs", 200).then(upstreamMethod("GET")),
		gc("HEAD of another's Observation", "HEAD", "Observation/obs-p2", "patient/Observation.rs", 403).reaching(1),
		gc("read own AllergyIntolerance (patient element)", "GET", "AllergyIntolerance/a-p1", "patient/AllergyIntolerance.r", 200),
		gc("read with _format=xml is checked as JSON", "GET", "Observation/obs-p1?_format=xml", "patient/Observation.rs", 200).then(queryLacks("_format")),

		// The compartment: writes.
		gc("create for own patient", "POST", "Observation", "patient/Observation.c", 201).withBody(obsFor("p1")),
		gc("create for another patient", "POST", "Observation", "patient/Observation.c", 403).withBody(obsFor("p2")),
		gc("create of another type than the path", "POST", "Observation", "patient/Observation.c", 403).withBody(`{"resourceType":"Condition","subject":{"reference":"Patient/p1"}}`),
		{name: "create in XML", method: "POST", path: "Observation", scope: "patient/Observation.c", body: "<Observation/>", ctype: "application/fhir+xml", want: 415},
		gc("conditional create gets subject in If-None-Exist", "POST", "Observation", "patient/Observation.cs", 201).withBody(obsFor("p1")).hdr("If-None-Exist", "identifier=x|1").then(func(t *testing.T, up upstreamRequest, _ *http.Response, _ string) {
			if got := up.Header.Get("If-None-Exist"); !strings.Contains(got, "subject=Patient%2Fp1") {
				t.Errorf("If-None-Exist %q", got)
			}
		}),
		gc("update own", "PUT", "Observation/obs-p1", "patient/Observation.u", 200).withBody(obsFor("p1")).then(upstreamMethod("PUT")),
		gc("update another's stored resource", "PUT", "Observation/obs-p2", "patient/Observation.u", 403).withBody(obsFor("p1")).reaching(1).then(upstreamMethod("GET")),
		gc("update moving to another patient", "PUT", "Observation/obs-p1", "patient/Observation.u", 403).withBody(obsFor("p2")),
		gc("update-as-create", "PUT", "Observation/missing-new", "patient/Observation.u", 200).withBody(obsFor("p1")).then(upstreamMethod("PUT")),
		gc("conditional update for own patient", "PUT", "Observation?identifier=x|1", "patient/Observation.cus", 200).withBody(obsFor("p1")).then(queryHas("subject", "Patient/p1")),
		gc("conditional update for another patient", "PUT", "Observation?identifier=x|1", "patient/Observation.cus", 403).withBody(obsFor("p2")),
		gc("conditional update of Patient as another", "PUT", "Patient?identifier=x|1", "patient/Patient.cus", 403).withBody(`{"resourceType":"Patient","id":"p2"}`),
		gc("patient batch conditional update for another", "POST", "", "patient/Observation.cus", 403).withBody(bundleOf("transaction", entry("PUT", "Observation?identifier=x", obsFor("p2")))),
		gc("delete own", "DELETE", "Observation/obs-p1", "patient/Observation.d", 200).then(upstreamMethod("DELETE")),
		gc("delete another's", "DELETE", "Observation/obs-p2", "patient/Observation.d", 403).reaching(1).then(upstreamMethod("GET")),
		gc("patch another's", "PATCH", "Observation/obs-p2", "patient/Observation.u", 403).withBody(`[]`).reaching(1).then(upstreamMethod("GET")),
		gc("patch own", "PATCH", "Observation/obs-p1", "patient/Observation.u", 200).withBody(`[]`).then(upstreamMethod("PATCH")),

		// Outside the compartment.
		gc("allowed outside type", "GET", "Medication/m1", "patient/Medication.rs", 200),
		gc("allowed outside search unrestricted", "GET", "Medication?code=1", "patient/Medication.rs", 200).then(queryLacks("patient")),
		gc("outside type not allowed", "GET", "Practitioner/dr1", "patient/*.rs", 403),
		gc("outside type needs its scope", "GET", "Organization/o1", "patient/Observation.rs", 403),
		gc("user scope reaches outside types", "GET", "Practitioner/dr1", "user/Practitioner.rs", 200),

		// user/ scopes bounded by the user's configured scopes (carol).
		gc("user bound allows", "GET", "Observation?code=1", "user/*.rs", 200).as("carol", "app"),
		gc("user bound refuses", "GET", "Patient?name=x", "user/*.rs", 403).as("carol", "app"),
		gc("user bound on patient/ scopes", "GET", "Condition", "patient/*.rs", 403).as("carol", "app"),
		gc("user bound on patient/ allows", "GET", "Observation", "patient/*.rs", 200).as("carol", "app"),
		gc("user scope without a user", "GET", "Observation", "user/*.rs", 403).as("backend", "backend"),

		// system/ scopes bounded by the client's configured scopes.
		gc("system search", "GET", "Observation?code=1", "system/Observation.rs", 200).as("backend", "backend").then(queryLacks("subject")),
		gc("system read Patient", "GET", "Patient/p9", "system/Patient.rs", 200).as("backend", "backend"),
		gc("system search Patient beyond the client", "GET", "Patient?name=x", "system/Patient.rs", 403).as("backend", "backend"),
		gc("system create", "POST", "Encounter", "system/Encounter.c", 201).as("backend", "backend").withBody(`{"resourceType":"Encounter"}`),
		gc("system scope beyond the client", "GET", "Condition", "system/*.rs", 403).as("backend", "backend"),
		gc("system $export beyond the client", "GET", "$export", "system/*.rs", 403).as("backend", "backend"),

		// Operations.
		gc("configured $validate", "POST", "Observation/$validate", "user/Observation.r", 200).withBody(`{"resourceType":"Parameters"}`),
		gc("configured $validate without r", "POST", "Observation/$validate", "user/Observation.s", 403).withBody(`{"resourceType":"Parameters"}`),
		gc("configured $lastn", "GET", "Observation/$lastn?code=1", "user/Observation.s", 200),
		gc("$lastn on another type", "GET", "Condition/$lastn", "user/*.rs", 403),
		gc("$lastn under patient scopes gets subject", "GET", "Observation/$lastn?code=1", "patient/Observation.rs", 200).then(queryHas("subject", "Patient/p1")),
		gc("unknown operation", "POST", "Patient/p1/$purge", "user/*.cruds", 403),
		gc("$export system", "GET", "$export", "user/*.rs", 200),
		gc("$export Group", "GET", "Group/g1/$export", "user/*.rs", 200),
		gc("$export Patient with patient scopes", "GET", "Patient/$export", "patient/*.rs", 403),
		gc("$everything with user scopes", "GET", "Patient/p7/$everything", "user/*.rs", 200),
		gc("instance operation in the compartment", "POST", "Observation/obs-p1/$validate", "patient/*.rs", 403),

		// Batches and transactions: every entry.
		gc("batch of allowed entries", "POST", "", "user/Observation.cruds", 200).withBody(bundleOf("batch", entry("GET", "Observation/obs-p1", ""), entry("POST", "Observation", obsFor("p1")))),
		gc("batch with one refused entry", "POST", "", "user/Observation.rs", 403).withBody(bundleOf("batch", entry("GET", "Observation/obs-p1", ""), entry("POST", "Observation", obsFor("p1")))),
		gc("transaction entry of another type", "POST", "", "user/Observation.cruds", 403).withBody(bundleOf("transaction", entry("DELETE", "Condition/c1", ""))),
		gc("patient transaction search gets subject", "POST", "", "patient/Observation.rs", 200).withBody(bundleOf("transaction", entry("GET", "Observation?code=1", ""))).then(upstreamBodyHas(`Observation?code=1\u0026subject=Patient%2Fp1`)),
		gc("patient batch read of a compartment resource", "POST", "", "patient/Observation.rs", 403).withBody(bundleOf("batch", entry("GET", "Observation/obs-p1", ""))),
		gc("patient batch create for another", "POST", "", "patient/Observation.c", 403).withBody(bundleOf("batch", entry("POST", "Observation", obsFor("p2")))),
		gc("patient batch create for own", "POST", "", "patient/Observation.c", 200).withBody(bundleOf("batch", entry("POST", "Observation", obsFor("p1")))),
		gc("patient batch own Patient", "POST", "", "patient/Patient.r", 200).withBody(bundleOf("batch", entry("GET", "Patient/p1", ""))),
		gc("patient batch other Patient", "POST", "", "patient/Patient.r", 403).withBody(bundleOf("batch", entry("GET", "Patient/p2", ""))),
		gc("batch with an absolute entry url elsewhere", "POST", "", "user/*.cruds", 400).withBody(bundleOf("batch", entry("GET", "https://evil.example/fhir/Patient/p1", ""))),
		gc("batch entry metadata", "POST", "", "user/Observation.r", 200).withBody(bundleOf("batch", entry("GET", "metadata", ""))),
		gc("nested batch", "POST", "", "user/*.cruds", 403).withBody(bundleOf("batch", entry("POST", "/", bundleOf("batch")))),
		gc("collection Bundle to the base", "POST", "", "user/*.cruds", 400).withBody(bundleOf("collection")),
		gc("batch that is not JSON", "POST", "", "user/*.cruds", 400).withBody(`{"resourceType":`),
		gc("batch entry with bad path", "POST", "", "user/*.cruds", 400).withBody(bundleOf("batch", entry("GET", "Patient/../Observation", ""))),
		gc("batch entry system search needs wildcard", "POST", "", "user/Observation.rs", 403).withBody(bundleOf("batch", entry("GET", "?_type=Observation", ""))),

		// Capabilities and CORS.
		{name: "metadata without a token", method: "GET", path: "metadata", noToken: true, want: 200},
		{name: "POST to metadata", method: "POST", path: "metadata", scope: "user/*.cruds", want: 405},
		{name: "percent-encoded metadata without a token", method: "GET", path: "metad%61ta", noToken: true, want: 401},
		{name: "percent-encoded metadata", method: "GET", path: "metad%61ta", scope: "user/*.cruds", want: 400},
		{name: "preflight from a registered app", method: "OPTIONS", path: "Observation", noToken: true, want: 204, header: map[string]string{"Origin": "https://app.example.org", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}, check: func(t *testing.T, _ upstreamRequest, resp *http.Response, _ string) {
			if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.org" || !strings.Contains(strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")), "authorization") {
				t.Errorf("preflight headers %v", resp.Header)
			}
		}},
		{name: "preflight from an unknown origin", method: "OPTIONS", path: "Observation", noToken: true, want: 204, header: map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}, check: func(t *testing.T, _ upstreamRequest, resp *http.Response, _ string) {
			if resp.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("unknown origin allowed: %v", resp.Header)
			}
		}},
		{name: "401 carries CORS", method: "GET", path: "Observation", noToken: true, want: 401, header: map[string]string{"Origin": "https://app.example.org"}, check: allowOrigin("https://app.example.org")},
		gc("403 carries CORS", "GET", "Patient/p2", "patient/Patient.r", 403).hdr("Origin", "https://app.example.org").then(allowOrigin("https://app.example.org")),
		gc("200 carries CORS", "GET", "Patient/p1", "patient/Patient.r", 200).hdr("Origin", "https://app.example.org").then(allowOrigin("https://app.example.org")),

		// Placeholders and headers set upstream; forged ones are replaced.
		gc("forged X-Smart-Patient is replaced", "GET", "Patient/p1", "patient/Patient.r", 200).hdr("X-Smart-Patient", "p2").then(func(t *testing.T, up upstreamRequest, _ *http.Response, _ string) {
			if v := up.Header.Values("X-Smart-Patient"); len(v) != 1 || v[0] != "p1" {
				t.Errorf("X-Smart-Patient %q", v)
			}
			if up.Header.Get("X-Smart-Client") != "app" || up.Header.Get("X-Smart-Sub") != "alice" || !strings.HasSuffix(up.Header.Get("X-Smart-User"), "/fhir/Practitioner/dr-alice") {
				t.Errorf("identity headers %v", up.Header)
			}
		}),
		gc("forged header without patient context is dropped", "GET", "Observation", "user/*.rs", 200).hdr("X-Smart-Patient", "p2").withPatient("-").then(func(t *testing.T, up upstreamRequest, _ *http.Response, _ string) {
			if v := up.Header.Values("X-Smart-Patient"); len(v) != 0 {
				t.Errorf("X-Smart-Patient %q reached the upstream", v)
			}
		}),
	}
}

func allowOrigin(o string) func(*testing.T, upstreamRequest, *http.Response, string) {
	return func(t *testing.T, _ upstreamRequest, resp *http.Response, _ string) {
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != o {
			t.Errorf("Access-Control-Allow-Origin %q, want %q", got, o)
		}
	}
}

func TestGuardTable(t *testing.T) {
	g := startGuardSite(t, guardBlock)
	cases := append(guardCases(), permMatrix()...)
	if len(cases) < 150 {
		t.Fatalf("only %d cases", len(cases))
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := fmt.Sprintf("case-%d", i)
			h := http.Header{"X-Test-Case": {id}}
			if c.ctype != "" {
				h.Set("Content-Type", c.ctype)
			}
			for k, v := range c.header {
				h.Set(k, v)
			}
			tok := c.token
			if tok == "" && !c.noToken && h.Get("Authorization") == "" {
				spec := tokenSpec{sub: c.sub, clientID: c.client, scope: c.scope, fhirUser: ""}
				if spec.sub == "" || spec.sub == "alice" {
					spec.fhirUser = g.base() + "/fhir/Practitioner/dr-alice"
				}
				switch {
				case c.patient == "-":
				case c.patient != "":
					spec.patient = c.patient
				case strings.Contains(c.scope, "patient/"):
					spec.patient = "p1"
				}
				tok = g.signer.mint(t, spec)
			}
			if c.name == "lower-case bearer scheme" {
				h.Set("Authorization", "bearer "+tok)
				tok = ""
			}
			resp, body := g.do(t, c.method, c.path, tok, c.body, h)
			if resp.StatusCode != c.want {
				t.Fatalf("%s %s with %q: status %d, want %d\n%s", c.method, c.path, c.scope, resp.StatusCode, c.want, body)
			}
			up, reached := g.up.reached(id)
			wantReach := c.want >= 200 && c.want < 300 && c.method != "OPTIONS" || c.reach > 0
			if c.reach < 0 {
				wantReach = false
			}
			if reached != wantReach {
				t.Fatalf("reached upstream: %t, want %t", reached, wantReach)
			}
			if c.want == 401 || c.want == 403 {
				if c.method != "HEAD" && !strings.Contains(body, `"OperationOutcome"`) {
					t.Errorf("refusal body %s", body)
				}
				challenge := resp.Header.Get("WWW-Authenticate")
				switch {
				case c.want == 401 && c.noToken && challenge != fmt.Sprintf(`Bearer realm="%s/fhir"`, g.base()):
					t.Errorf("challenge %q", challenge)
				case c.want == 401 && !c.noToken && !strings.Contains(challenge, `error="invalid_token"`):
					t.Errorf("challenge %q", challenge)
				case c.want == 403 && !strings.Contains(challenge, `error="insufficient_scope"`):
					t.Errorf("challenge %q", challenge)
				}
			}
			if reached && !c.noToken && c.want >= 200 && c.want < 300 && up.Header.Get("X-Smart-Client") == "" {
				t.Errorf("allowed request arrived without the configured headers: %v", up.Header)
			}
			if c.check != nil {
				c.check(t, up, resp, body)
			}
		})
	}
}
