package integration

// Writes and patches under patient/ scopes (issue 10 §4), run by
// TestGuardHardening.

// writeCases: to write, the primary patient reference must be the token's
// patient and no compartment element may name another patient.
func writeCases() []guardCase {
	const c = "patient/Observation.cruds"
	p1, p2 := `{"reference":"Patient/p1"}`, `{"reference":"Patient/p2"}`
	return []guardCase{
		gc("create for another patient with performer p1", "POST", "Observation", c, 403).withBody(obsWith(`"subject":` + p2 + `,"performer":[` + p1 + `]`)),
		gc("create for p1 with performer p2", "POST", "Observation", c, 403).withBody(obsWith(`"subject":` + p1 + `,"performer":[` + p2 + `]`)),
		gc("create without subject, performer p1", "POST", "Observation", c, 403).withBody(obsWith(`"performer":[` + p1 + `]`)),
		gc("create with a conditional subject reference", "POST", "Observation", c, 403).withBody(obsWith(`"subject":{"reference":"Patient?identifier=mrn|2"},"performer":[` + p1 + `]`)),
		gc("create with a logical Patient subject", "POST", "Observation", c, 403).withBody(obsWith(`"subject":{"type":"Patient","identifier":{"value":"2"}},"performer":[` + p1 + `]`)),
		gc("create with another server's patient too", "POST", "Observation", c, 403).withBody(obsWith(`"subject":` + p1 + `,"performer":[{"reference":"https://other.example/fhir/Patient/p2"}]`)),
		gc("create with p1 only in an extension of the subject", "POST", "Observation", c, 403).withBody(obsWith(`"subject":{"reference":"Group/g1","extension":[{"url":"x","valueReference":` + p1 + `}]}`)),
		gc("create for p1 with a practitioner performer", "POST", "Observation", c, 201).withBody(obsWith(`"subject":` + p1 + `,"performer":[{"reference":"Practitioner/dr1"}]`)),
		gc("create Encounter for p1", "POST", "Encounter", "patient/Encounter.c", 201).withBody(`{"resourceType":"Encounter","status":"planned","subject":{"reference":"Patient/p1"}}`),
		gc("create Encounter for p2", "POST", "Encounter", "patient/Encounter.c", 403).withBody(`{"resourceType":"Encounter","status":"planned","subject":{"reference":"Patient/p2"}}`),
		gc("update moving to p2 with performer p1", "PUT", "Observation/obs-p1", c, 403).withBody(obsWith(`"subject":` + p2 + `,"performer":[` + p1 + `]`)),
		gc("update of p2's observation performed by p1", "PUT", "Observation/perf-p1", c, 403).withBody(obsWith(`"subject":` + p1)).reaching(1).then(upstreamMethod("GET")),
		gc("delete of p2's observation performed by p1", "DELETE", "Observation/perf-p1", c, 403).reaching(1).then(upstreamMethod("GET")),
		gc("patch of p2's observation performed by p1", "PATCH", "Observation/perf-p1", c, 403).withBody(`[]`).reaching(1).then(upstreamMethod("GET")),
		gc("delete of an observation with p1 only in an extension", "DELETE", "Observation/ext-p1", c, 403).reaching(1).then(upstreamMethod("GET")),
		gc("read of p2's observation performed by p1", "GET", "Observation/perf-p1", "patient/Observation.rs", 200),
		gc("read of an observation with p1 only in an extension", "GET", "Observation/ext-p1", "patient/Observation.rs", 403).reaching(1),
		gc("conditional update creating p2's", "PUT", "Observation?identifier=x|1", c, 403).withBody(obsFor("p2")),
		gc("conditional update creating p2's with performer p1", "PUT", "Observation?identifier=x|1", c, 403).withBody(obsWith(`"subject":` + p2 + `,"performer":[` + p1 + `]`)),
		gc("conditional update of p1's", "PUT", "Observation?identifier=x|1", c, 200).withBody(obsFor("p1")).then(queryHas("subject", "Patient/p1")),
		gc("conditional update of a Patient with another id", "PUT", "Patient?identifier=x|1", "patient/Patient.cus", 403).withBody(`{"resourceType":"Patient","id":"p2"}`),
		gc("conditional update of the own Patient", "PUT", "Patient?identifier=x|1", "patient/Patient.cus", 200).withBody(`{"resourceType":"Patient","id":"p1"}`).then(queryHas("_id", "p1")),
		gc("conditional create for p2 with performer p1", "POST", "Observation", c, 403).withBody(obsWith(`"subject":`+p2+`,"performer":[`+p1+`]`)).withHeaders("If-None-Exist", "identifier=x|1"),
		gc("Bundle create for p2 with performer p1", "POST", "", c, 403).withBody(bundleOf("transaction", entry("POST", "Observation", obsWith(`"subject":`+p2+`,"performer":[`+p1+`]`)))),
		gc("Bundle conditional update creating p2's", "POST", "", c, 403).withBody(bundleOf("transaction", entry("PUT", "Observation?identifier=x|1", obsFor("p2")))),
		gc("Bundle conditional update of p1's", "POST", "", c, 200).withBody(bundleOf("transaction", entry("PUT", "Observation?identifier=x|1", obsFor("p1")))).
			then(upstreamBodyHas(`Observation?identifier=x|1\u0026subject=Patient%2Fp1`)),
	}
}

// patchCases: under patient/ scopes a patch may not touch what puts the
// resource in a compartment.
func patchCases() []guardCase {
	const u, jp = "patient/Observation.u", "application/json-patch+json"
	fp := func(typ, path, name string) string {
		parts := `{"name":"type","valueCode":"` + typ + `"},{"name":"path","valueString":"` + path + `"}`
		if name != "" {
			parts += `,{"name":"name","valueString":"` + name + `"}`
		}
		return `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[` + parts + `,{"name":"value","valueString":"x"}]}]}`
	}
	return []guardCase{
		gc("JSON Patch of subject", "PATCH", "Observation/obs-p1", u, 403).withContent(jp, `[{"op":"replace","path":"/subject/reference","value":"Patient/p2"}]`),
		gc("JSON Patch of Subject", "PATCH", "Observation/obs-p1", u, 403).withContent(jp, `[{"op":"replace","path":"/Subject","value":{"reference":"Patient/p2"}}]`),
		gc("JSON Patch adding a performer", "PATCH", "Observation/obs-p1", u, 403).withContent(jp, `[{"op":"add","path":"/performer/-","value":{"reference":"Patient/p2"}}]`),
		gc("JSON Patch moving subject away", "PATCH", "Observation/obs-p1", u, 403).withContent(jp, `[{"op":"move","from":"/subject","path":"/focus"}]`),
		gc("JSON Patch of the whole resource", "PATCH", "Observation/obs-p1", u, 403).withContent(jp, `[{"op":"replace","path":"","value":{}}]`),
		gc("JSON Patch as fhir+json of subject", "PATCH", "Observation/obs-p1", u, 403).withBody(`[{"op":"remove","path":"/subject"}]`),
		gc("JSON Patch of status", "PATCH", "Observation/obs-p1", u, 200).withContent(jp, `[{"op":"replace","path":"/status","value":"amended"}]`).
			then(upstreamBodyHas(`"path":"/status"`)),
		gc("JSON Patch with a duplicate path key", "PATCH", "Observation/obs-p1", u, 400).withContent(jp, `[{"op":"replace","path":"/subject","path":"/status","value":"x"}]`),
		gc("FHIRPath Patch of subject", "PATCH", "Observation/obs-p1", u, 403).withBody(fp("replace", "Observation.subject", "")),
		gc("FHIRPath Patch adding subject", "PATCH", "Observation/obs-p1", u, 403).withBody(fp("add", "Observation", "subject")),
		gc("FHIRPath Patch through descendants()", "PATCH", "Observation/obs-p1", u, 403).withBody(fp("replace", "Observation.descendants().where(reference.exists())", "")),
		gc("FHIRPath Patch of status", "PATCH", "Observation/obs-p1", u, 200).withBody(fp("replace", "Observation.status", "")),
		gc("XML Patch", "PATCH", "Observation/obs-p1", u, 415).withContent("application/xml-patch+xml", `<diff/>`),
		gc("conditional JSON Patch of subject", "PATCH", "Observation?identifier=x|1", "patient/Observation.us", 403).withContent(jp, `[{"op":"replace","path":"/subject/reference","value":"Patient/p2"}]`),
		gc("conditional JSON Patch of status", "PATCH", "Observation?identifier=x|1", "patient/Observation.us", 200).withContent(jp, `[{"op":"replace","path":"/status","value":"amended"}]`).
			then(queryHas("subject", "Patient/p1")),
		gc("Bundle conditional patch", "POST", "", "patient/Observation.us", 403).withBody(bundleOf("transaction", entry("PATCH", "Observation?identifier=x|1", fp("replace", "Observation.status", "")))),
		gc("own Patient patch of id", "PATCH", "Patient/p1", "patient/Patient.u", 403).withContent(jp, `[{"op":"replace","path":"/id","value":"p2"}]`),
		gc("own Patient patch of name", "PATCH", "Patient/p1", "patient/Patient.u", 200).withContent(jp, `[{"op":"add","path":"/name/-","value":{"family":"x"}}]`),
		gc("user scopes patch anything", "PATCH", "Observation/obs-p1", "user/Observation.u", 200).withContent(jp, `[{"op":"replace","path":"/subject/reference","value":"Patient/p2"}]`),
	}
}
