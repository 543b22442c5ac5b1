package audit

import "time"

// Code systems of the AuditEvent codings.
const (
	systemDICOM       = "http://dicom.nema.org/resources/ontology/DCM"
	systemIHE         = "urn:ihe:event-type-code"
	systemAction      = "urn:smartcaddy:smartauth:audit-action"
	systemSourceType  = "http://terminology.hl7.org/CodeSystem/security-source-type"
	systemEntityType  = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	systemObjectRole  = "http://terminology.hl7.org/CodeSystem/object-role"
	systemNetworkType = "2" // AuditEventAgentNetworkType: IP address
)

// AuditEvent is a FHIR R4 AuditEvent, with the elements smart_auth fills.
type AuditEvent struct {
	ResourceType string   `json:"resourceType"`
	Type         Coding   `json:"type"`
	Subtype      []Coding `json:"subtype,omitempty"`
	Action       string   `json:"action,omitempty"`
	Recorded     string   `json:"recorded"`
	Outcome      string   `json:"outcome,omitempty"`
	OutcomeDesc  string   `json:"outcomeDesc,omitempty"`
	Agent        []Agent  `json:"agent"`
	Source       Source   `json:"source"`
	Entity       []Entity `json:"entity,omitempty"`
}

// Coding is a FHIR Coding.
type Coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

// CodeableConcept is a FHIR CodeableConcept with codings only.
type CodeableConcept struct {
	Coding []Coding `json:"coding"`
}

// Identifier is a FHIR Identifier.
type Identifier struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value"`
}

// Reference is a FHIR Reference by reference or identifier.
type Reference struct {
	Reference  string      `json:"reference,omitempty"`
	Identifier *Identifier `json:"identifier,omitempty"`
	Display    string      `json:"display,omitempty"`
}

// Agent is an AuditEvent.agent.
type Agent struct {
	Type      *CodeableConcept `json:"type,omitempty"`
	Who       *Reference       `json:"who,omitempty"`
	Requestor bool             `json:"requestor"`
	Network   *Network         `json:"network,omitempty"`
}

// Network is an AuditEvent.agent.network.
type Network struct {
	Address string `json:"address"`
	Type    string `json:"type"`
}

// Source is an AuditEvent.source.
type Source struct {
	Site     string    `json:"site,omitempty"`
	Observer Reference `json:"observer"`
	Type     []Coding  `json:"type,omitempty"`
}

// Entity is an AuditEvent.entity.
type Entity struct {
	What        *Reference `json:"what,omitempty"`
	Type        *Coding    `json:"type,omitempty"`
	Role        *Coding    `json:"role,omitempty"`
	Description string     `json:"description,omitempty"`
}

// eventCodes are an action's AuditEvent type, subtype and action code.
type eventCodes struct {
	typ     Coding
	subtype Coding
	action  string
}

// The DICOM event types and subtypes used.
var (
	dcmUserAuth      = Coding{System: systemDICOM, Code: "110114", Display: "User Authentication"}
	dcmSecurityAlert = Coding{System: systemDICOM, Code: "110113", Display: "Security Alert"}
	dcmLogin         = Coding{System: systemDICOM, Code: "110122", Display: "Login"}
	dcmUserAttrs     = Coding{System: systemDICOM, Code: "110137", Display: "User Security Attributes Changed"}
	dcmSecurityConf  = Coding{System: systemDICOM, Code: "110129", Display: "Security Configuration"}
	iheGetToken      = Coding{System: systemIHE, Code: "ITI-71", Display: "Get Access Token"}
)

// codes maps each action to its codes (action: C create, U update, E
// execute).
var codes = map[Action]eventCodes{
	ActionSignIn:       {dcmUserAuth, dcmLogin, "E"},
	ActionTokenIssued:  {dcmUserAuth, iheGetToken, "E"},
	ActionTokenRefused: {dcmUserAuth, iheGetToken, "E"},
	ActionConsent:      {dcmSecurityAlert, dcmUserAttrs, "U"},
	ActionRevocation:   {dcmSecurityAlert, dcmUserAttrs, "U"},
	ActionRegistration: {dcmSecurityAlert, dcmSecurityConf, "C"},
	ActionAdmin:        {dcmSecurityAlert, dcmSecurityConf, "E"},
}

// ToAuditEvent converts an event of an issuer to a FHIR R4 AuditEvent:
// the DICOM type and subtype of its action (and the action's own code),
// the outcome (0 success, 4 refused, 8 server failure), the agents (the
// user, the client, the operator; the requester marked), the source (the
// issuer, an application server) and the entities (the patient, the
// client acted on).
func ToAuditEvent(issuer string, e Event) AuditEvent {
	c, ok := codes[e.Action]
	if !ok {
		c = codes[ActionAdmin]
	}
	ev := AuditEvent{
		ResourceType: "AuditEvent",
		Type:         c.typ,
		Subtype:      []Coding{c.subtype, {System: systemAction, Code: string(e.Action)}},
		Action:       c.action,
		Recorded:     e.Time.UTC().Format(time.RFC3339Nano),
		Outcome:      "0",
		Source: Source{Site: issuer, Observer: Reference{Display: "smart_auth", Identifier: &Identifier{System: "urn:ietf:rfc:3986", Value: issuer}},
			Type: []Coding{{System: systemSourceType, Code: "4", Display: "Application Server"}}},
	}
	switch e.Outcome {
	case OutcomeRefused:
		ev.Outcome = "4"
	case OutcomeError:
		ev.Outcome = "8"
	}
	ev.OutcomeDesc = joinNonEmpty(e.Detail, e.Reason)
	var network *Network
	if e.Remote != "" {
		network = &Network{Address: e.Remote, Type: systemNetworkType}
	}
	switch {
	case e.Admin != "":
		ev.Agent = append(ev.Agent, Agent{Who: &Reference{Display: "Caddy admin API: " + e.Admin}, Requestor: true, Network: network})
		network = nil
	case e.User != "":
		ev.Agent = append(ev.Agent, Agent{Who: &Reference{Identifier: &Identifier{System: issuer + "#user", Value: e.User}},
			Requestor: true, Network: network})
		network = nil
	}
	if e.Client != "" {
		ev.Agent = append(ev.Agent, Agent{
			Type:      &CodeableConcept{Coding: []Coding{{System: systemDICOM, Code: "110150", Display: "Application"}}},
			Who:       &Reference{Identifier: &Identifier{System: issuer, Value: e.Client}},
			Requestor: len(ev.Agent) == 0, Network: network})
	}
	if len(ev.Agent) == 0 { // R4 requires an agent: the unidentified requester
		ev.Agent = append(ev.Agent, Agent{Who: &Reference{Display: "unidentified requester"}, Requestor: true, Network: network})
	}
	if e.Patient != "" {
		ev.Entity = append(ev.Entity, Entity{What: &Reference{Reference: "Patient/" + e.Patient},
			Type: &Coding{System: systemEntityType, Code: "1", Display: "Person"},
			Role: &Coding{System: systemObjectRole, Code: "1", Display: "Patient"}})
	}
	if e.Target != "" || e.Scope != "" {
		ent := Entity{Type: &Coding{System: systemEntityType, Code: "2", Display: "System Object"},
			Description: joinNonEmpty(e.Target, scopeText(e.Scope))}
		if e.Target != "" {
			ent.What = &Reference{Display: e.Target}
		}
		ev.Entity = append(ev.Entity, ent)
	}
	return ev
}

// scopeText describes a scope for an entity's description.
func scopeText(scope string) string {
	if scope == "" {
		return ""
	}
	return "scope: " + scope
}

// joinNonEmpty joins the non-empty strings with "; ".
func joinNonEmpty(parts ...string) string {
	out := ""
	for _, p := range parts {
		if p == "" {
			continue
		}
		if out != "" {
			out += "; "
		}
		out += p
	}
	return out
}
