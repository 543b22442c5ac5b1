package scopes

import (
	"slices"
	"strings"
	"unicode"
)

// nonResource describes the known non-resource scopes.
var nonResource = map[string]string{
	"openid":           "Know who you are",
	"fhirUser":         "Know who you are",
	"profile":          "Know your name",
	"launch":           "Know which record the app was opened from",
	"launch/patient":   "Know which patient record is open",
	"launch/encounter": "Know which visit (encounter) is open",
	"offline_access":   "Keep access when you are not using the app",
	"online_access":    "Keep access while you are signed in",
}

// noun is the plain-language name of a resource type.
type noun struct {
	plural string // "observations"
	hint   string // "lab results, vital signs"; may be empty
	mine   string // replaces plural after "your", e.g. "personal details"
}

// nouns names the common resource types.
var nouns = map[string]noun{
	"AllergyIntolerance":       {plural: "allergies and intolerances"},
	"Appointment":              {plural: "appointments"},
	"Binary":                   {plural: "attached files"},
	"CarePlan":                 {plural: "care plans"},
	"CareTeam":                 {plural: "care teams"},
	"Claim":                    {plural: "insurance claims"},
	"Communication":            {plural: "messages"},
	"Condition":                {plural: "conditions", hint: "problems and diagnoses"},
	"Consent":                  {plural: "consent records"},
	"Coverage":                 {plural: "insurance coverage"},
	"Device":                   {plural: "medical devices"},
	"DiagnosticReport":         {plural: "test and imaging reports"},
	"DocumentReference":        {plural: "documents", hint: "clinical notes, letters"},
	"Encounter":                {plural: "visits", hint: "encounters"},
	"ExplanationOfBenefit":     {plural: "insurance claims and benefits"},
	"FamilyMemberHistory":      {plural: "family health history"},
	"Goal":                     {plural: "health goals"},
	"ImagingStudy":             {plural: "imaging studies"},
	"Immunization":             {plural: "immunizations", hint: "vaccines"},
	"Location":                 {plural: "care locations"},
	"Medication":               {plural: "medications"},
	"MedicationAdministration": {plural: "medications given"},
	"MedicationDispense":       {plural: "medications dispensed"},
	"MedicationRequest":        {plural: "prescriptions", hint: "medication orders"},
	"MedicationStatement":      {plural: "medication lists"},
	"Observation":              {plural: "observations", hint: "lab results, vital signs"},
	"Organization":             {plural: "healthcare organizations"},
	"Patient":                  {plural: "patient details", hint: "name, birth date, contact details", mine: "personal details"},
	"Practitioner":             {plural: "care provider details"},
	"PractitionerRole":         {plural: "care provider roles"},
	"Procedure":                {plural: "procedures"},
	"Provenance":               {plural: "record history", hint: "who changed what"},
	"Questionnaire":            {plural: "questionnaires"},
	"QuestionnaireResponse":    {plural: "questionnaire answers"},
	"RelatedPerson":            {plural: "related people"},
	"ServiceRequest":           {plural: "orders and referrals"},
	"Specimen":                 {plural: "specimens"},
}

// categories names common category restrictions by resource type and
// code. The code is matched with or without its system: this is only a
// description, access is decided literally by Permits.
var categories = map[string]map[string]string{
	"Observation": {
		"laboratory":     "lab results",
		"vital-signs":    "vital signs",
		"social-history": "social history",
		"imaging":        "imaging results",
		"survey":         "survey answers",
		"exam":           "exam findings",
		"procedure":      "procedure results",
		"therapy":        "therapy records",
		"activity":       "activity records",
	},
	"Condition": {
		"problem-list-item":   "problem list",
		"encounter-diagnosis": "visit diagnoses",
		"health-concern":      "health concerns",
	},
	"DocumentReference": {
		"clinical-note": "clinical notes",
	},
	"DiagnosticReport": {
		"LAB": "lab reports",
		"RAD": "imaging reports",
	},
}

// Describe returns a plain-language description of a scope for the
// consent page ("Read your lab results"). It never returns "".
//
// Given a space-separated list it describes each scope and joins the
// distinct descriptions with "; " (so "openid fhirUser" gives "Know who
// you are"). An unknown scope gives `Unrecognized permission "…"`.
func Describe(scope string) string {
	if strings.ContainsFunc(scope, unicode.IsSpace) {
		var out []string
		for _, s := range Split(scope) {
			if d := Describe(s); !slices.Contains(out, d) {
				out = append(out, d)
			}
		}
		if len(out) > 0 {
			return strings.Join(out, "; ")
		}
		return "No permission"
	}
	sc, err := Parse(scope)
	switch {
	case scope == "":
		return "No permission"
	case err != nil:
		return `Unrecognized permission "` + scope + `"`
	case !sc.IsResource():
		return nonResource[scope]
	}
	return verb(sc) + " " + object(sc)
}

// verb describes the permissions: "Read and search".
func verb(sc Scope) string {
	if sc.V1 && sc.Perms == v1Read {
		return "Read" // v1 .read: reading includes searching
	}
	words := make([]string, 0, len(permLetters))
	for _, l := range permLetters {
		if sc.Perms&l.p != 0 {
			words = append(words, permWords[l.p])
		}
	}
	if len(words) == 0 {
		return "Use"
	}
	s := words[0]
	if n := len(words); n > 1 {
		s = strings.Join(words[:n-1], ", ") + " and " + words[n-1]
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

var permWords = map[Perms]string{
	Create: "create", Read: "read", Update: "update", Delete: "delete", Search: "search",
}

// object describes what the scope reaches: "your observations (…)".
func object(sc Scope) string {
	if sc.ResourceType == "*" && len(sc.Query) == 0 {
		switch sc.Context {
		case Patient:
			return "all of your health records"
		case User:
			return "all records you can access"
		default:
			return "all records"
		}
	}
	n := nounPhrase(sc)
	switch sc.Context {
	case Patient:
		return "your " + n
	case User:
		return n + " in records you can access"
	default:
		return n + " in all records"
	}
}

// nounPhrase names the resources a scope reaches, restrictions included.
func nounPhrase(sc Scope) string {
	n, ok := nouns[sc.ResourceType]
	if !ok {
		n = noun{plural: genericNoun(sc.ResourceType)}
	}
	if sc.Context == Patient && n.mine != "" {
		n.plural = n.mine
	}
	if len(sc.Query) == 0 {
		if n.hint != "" {
			return n.plural + " (" + n.hint + ")"
		}
		return n.plural
	}
	name := n.plural
	rest := sc.Query
	if vs := sc.Query["category"]; len(vs) == 1 {
		if c, ok := categories[sc.ResourceType][codeOf(vs[0])]; ok {
			name = c
			rest = make(map[string][]string, len(sc.Query))
			for k, v := range sc.Query {
				if k != "category" {
					rest[k] = v
				}
			}
		}
	}
	if len(rest) == 0 {
		return name
	}
	keys := make([]string, 0, len(rest))
	for k := range rest {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var conds []string
	for _, k := range keys {
		for _, v := range rest[k] {
			conds = append(conds, k+" is "+codeOf(v))
		}
	}
	return name + " where " + strings.Join(conds, " and ")
}

// codeOf returns the code of a token search value (system|code), or the
// value itself.
func codeOf(v string) string {
	if i := strings.LastIndexByte(v, '|'); i >= 0 && i < len(v)-1 {
		return v[i+1:]
	}
	return v
}

// genericNoun turns an unknown resource type into words: "NutritionOrder"
// → "nutrition order records", "*" → "records of every type".
func genericNoun(t string) string {
	if t == "*" {
		return "records of every type"
	}
	var b strings.Builder
	for i := 0; i < len(t); i++ {
		c := t[i]
		if i > 0 && isUpper(c) && (!isUpper(t[i-1]) || (i+1 < len(t) && !isUpper(t[i+1]))) {
			b.WriteByte(' ')
		}
		if isUpper(c) {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String() + " records"
}

func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }
