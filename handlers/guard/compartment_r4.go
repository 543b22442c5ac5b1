package guard

// patientCompartmentR4 is the FHIR R4 (4.0.1) Patient CompartmentDefinition
// (http://hl7.org/fhir/R4/compartmentdefinition-patient.html): each
// resource type of the compartment with the search parameters that put a
// resource in a patient's compartment. Types not listed are outside it.
//
// The guard enforces the FIRST parameter of each list on searches under
// patient/ scopes (the parameter is added with the context patient when
// absent), and checks response and request bodies against the elements
// named by all of them (see compartmentElements).
//
// Patient itself is in its own compartment by id (the "link" parameter is
// not followed: linked patients are not reachable through patient/
// scopes).
var patientCompartmentR4 = map[string][]string{
	"Account":                     {"subject"},
	"AdverseEvent":                {"subject"},
	"AllergyIntolerance":          {"patient", "recorder", "asserter"},
	"Appointment":                 {"actor"},
	"AppointmentResponse":         {"actor"},
	"AuditEvent":                  {"patient"},
	"Basic":                       {"patient", "author"},
	"BodyStructure":               {"patient"},
	"CarePlan":                    {"patient", "performer"},
	"CareTeam":                    {"patient", "participant"},
	"ChargeItem":                  {"subject"},
	"Claim":                       {"patient", "payee"},
	"ClaimResponse":               {"patient"},
	"ClinicalImpression":          {"subject"},
	"Communication":               {"subject", "sender", "recipient"},
	"CommunicationRequest":        {"subject", "sender", "recipient", "requester"},
	"Composition":                 {"subject", "author", "attester"},
	"Condition":                   {"patient", "asserter"},
	"Consent":                     {"patient"},
	"Coverage":                    {"beneficiary", "policy-holder", "subscriber", "payor"},
	"CoverageEligibilityRequest":  {"patient"},
	"CoverageEligibilityResponse": {"patient"},
	"DetectedIssue":               {"patient"},
	"DeviceRequest":               {"subject", "performer"},
	"DeviceUseStatement":          {"subject"},
	"DiagnosticReport":            {"subject"},
	"DocumentManifest":            {"subject", "author", "recipient"},
	"DocumentReference":           {"subject", "author"},
	"Encounter":                   {"patient"},
	"EnrollmentRequest":           {"subject"},
	"EpisodeOfCare":               {"patient"},
	"ExplanationOfBenefit":        {"patient", "payee"},
	"FamilyMemberHistory":         {"patient"},
	"Flag":                        {"patient"},
	"Goal":                        {"patient"},
	"Group":                       {"member"},
	"ImagingStudy":                {"patient"},
	"Immunization":                {"patient"},
	"ImmunizationEvaluation":      {"patient"},
	"ImmunizationRecommendation":  {"patient"},
	"Invoice":                     {"subject", "patient", "recipient"},
	"List":                        {"subject", "source"},
	"MeasureReport":               {"patient"},
	"Media":                       {"subject"},
	"MedicationAdministration":    {"patient", "performer", "subject"},
	"MedicationDispense":          {"subject", "patient", "receiver"},
	"MedicationRequest":           {"subject"},
	"MedicationStatement":         {"subject"},
	"MolecularSequence":           {"patient"},
	"NutritionOrder":              {"patient"},
	"Observation":                 {"subject", "performer"},
	"Patient":                     {"link"},
	"Person":                      {"patient"},
	"Procedure":                   {"patient", "performer"},
	"Provenance":                  {"patient"},
	"QuestionnaireResponse":       {"subject", "author"},
	"RelatedPerson":               {"patient"},
	"RequestGroup":                {"subject", "participant"},
	"ResearchSubject":             {"individual"},
	"RiskAssessment":              {"subject"},
	"Schedule":                    {"actor"},
	"ServiceRequest":              {"subject", "performer"},
	"Specimen":                    {"subject"},
	"SupplyDelivery":              {"patient"},
	"SupplyRequest":               {"subject"},
	"VisionPrescription":          {"patient"},
}

// compartmentParamElements maps a compartment search parameter to the
// top-level elements of the resource it reads, where the name differs
// (R4 search parameter expressions). Parameters not listed read the
// element of the same name; "patient" and "subject" are always read too,
// since R4 often defines the "patient" parameter on the subject element.
var compartmentParamElements = map[string][]string{
	"actor":         {"actor", "participant"},
	"policy-holder": {"policyHolder"},
	"participant":   {"participant"},
	"member":        {"member"},
	"performer":     {"performer"},
	"patient":       {"patient", "subject"},
}

// compartmentElements returns the top-level elements of a resource type
// that may hold its reference to a patient.
func compartmentElements(resourceType string) []string {
	params, ok := patientCompartmentR4[resourceType]
	if !ok {
		return nil
	}
	out := []string{"subject", "patient"}
	for _, p := range params {
		if els, ok := compartmentParamElements[p]; ok {
			out = append(out, els...)
		} else {
			out = append(out, p)
		}
	}
	if resourceType == "Person" {
		out = append(out, "link")
	}
	return out
}

// primaryElements returns the top-level elements that hold a resource
// type's primary reference to its patient, the one a write must make to
// the token's patient: the elements the type's first compartment
// parameter reads (Observation: subject; Encounter: patient → subject;
// Coverage: beneficiary; Appointment: actor → participant.actor; Person:
// link, whose target is the patient).
func primaryElements(resourceType string) []string {
	params, ok := patientCompartmentR4[resourceType]
	if !ok {
		return nil
	}
	switch els, mapped := compartmentParamElements[params[0]]; {
	case resourceType == "Person":
		return []string{"link"}
	case mapped:
		return els
	default:
		return params[:1]
	}
}
