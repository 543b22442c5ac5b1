package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/handlers/users"
)

// Limits on the patient picker's search against the upstream FHIR server.
const (
	patientSearchTimeout  = 5 * time.Second
	patientSearchMaxBody  = 1 << 20
	patientSearchCount    = 20
	patientSearchMaxQuery = 100
)

// fhirIDPattern is a FHIR resource id (FHIR R4 "id" datatype).
var fhirIDPattern = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// patientSearchClient queries the upstream FHIR server. It never follows
// redirects: the operator configured one server.
var patientSearchClient = &http.Client{
	Timeout:       patientSearchTimeout,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// patientChoice is a patient as the pages show it (picker, launcher,
// consent).
type patientChoice struct {
	// ID is the Patient resource's id.
	ID string
	// Label is one line naming the patient: "Amy Shaw, 1980-01-01" when
	// the FHIR server gave a name, else the id.
	Label string
	// Known is set when the patient was read from the FHIR server; Name,
	// BirthDate, Gender and MRN are then what it said (each may be "").
	Known     bool
	Name      string
	BirthDate string
	Gender    string
	MRN       string
}

// patientResource is the part of a FHIR Patient the pages show.
type patientResource struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	BirthDate    string `json:"birthDate"`
	Gender       string `json:"gender"`
	Name         []struct {
		Use    string   `json:"use"`
		Text   string   `json:"text"`
		Family string   `json:"family"`
		Given  []string `json:"given"`
	} `json:"name"`
	Identifier []struct {
		Type struct {
			Text   string `json:"text"`
			Coding []struct {
				Code string `json:"code"`
			} `json:"coding"`
		} `json:"type"`
		Value string `json:"value"`
	} `json:"identifier"`
}

// choice makes a page entry from a Patient resource: the official name
// (else the first), the birth date, gender and the medical record number
// (an identifier of type MR).
func (p *patientResource) choice() patientChoice {
	c := patientChoice{ID: p.ID, Known: true, BirthDate: p.BirthDate, Gender: p.Gender}
	for i, n := range p.Name {
		if i > 0 && n.Use != "official" {
			continue
		}
		name := n.Text
		if name == "" {
			name = strings.TrimSpace(strings.Join(append(append([]string{}, n.Given...), n.Family), " "))
		}
		if name != "" {
			c.Name = name
		}
		if n.Use == "official" {
			break
		}
	}
	for _, id := range p.Identifier {
		mr := id.Type.Text == "MRN"
		for _, cd := range id.Type.Coding {
			mr = mr || cd.Code == "MR"
		}
		if mr && id.Value != "" {
			c.MRN = id.Value
			break
		}
	}
	c.Label = c.Name
	if c.Label == "" {
		c.Label = p.ID
	}
	if c.BirthDate != "" {
		c.Label += ", " + c.BirthDate
	}
	return c
}

// mayUsePatientSearch tells whether a user picks patients by searching
// the upstream FHIR server (users.Rule.SearchesPatients).
func (s *Server) mayUsePatientSearch(u *users.User) bool {
	return s.users.SearchesPatients(u)
}

// mayHavePatient tells whether a user may have a patient in context: the
// one rule for the patient picker, the launcher page and EHR launches
// (users.Rule.MayHavePatient), with findPatient confirming a patient
// allowed only through patient search.
func (s *Server) mayHavePatient(ctx context.Context, u *users.User, patient string) bool {
	ok, err := s.users.MayHavePatient(ctx, u, patient, func(ctx context.Context, id string) error {
		_, err := s.findPatient(ctx, id)
		return err
	})
	if err != nil {
		s.logger.Info("a patient could not be confirmed on the FHIR server", zap.Error(err))
	}
	return ok
}

// searchPatients asks the upstream FHIR server for patients by name
// (GET [base]/Patient?name=…&_count=20).
func (s *Server) searchPatients(ctx context.Context, name string) ([]patientChoice, error) {
	q := url.Values{"name": {name}, "_count": {fmt.Sprint(patientSearchCount)}}
	var bundle struct {
		ResourceType string `json:"resourceType"`
		Entry        []struct {
			Resource patientResource `json:"resource"`
		} `json:"entry"`
	}
	if err := getFHIR(ctx, s.cfg.PatientSearch.String()+"/Patient?"+q.Encode(), &bundle); err != nil {
		return nil, err
	}
	if bundle.ResourceType != "Bundle" {
		return nil, errors.New("the search did not answer a Bundle")
	}
	var out []patientChoice
	for _, e := range bundle.Entry {
		if e.Resource.ResourceType == "Patient" && fhirIDPattern.MatchString(e.Resource.ID) {
			out = append(out, e.Resource.choice())
		}
	}
	return out, nil
}

// findPatient reads one patient from the upstream FHIR server of patient
// search, to check that a chosen id exists.
func (s *Server) findPatient(ctx context.Context, id string) (*patientChoice, error) {
	return s.readPatient(ctx, s.cfg.PatientSearch.String(), id)
}

// readPatient reads Patient/{id} from the FHIR server at base.
func (s *Server) readPatient(ctx context.Context, base, id string) (*patientChoice, error) {
	if !fhirIDPattern.MatchString(id) {
		return nil, errors.New("not a FHIR id")
	}
	var p patientResource
	if err := getFHIR(ctx, base+"/Patient/"+id, &p); err != nil {
		return nil, err
	}
	if p.ResourceType != "Patient" || p.ID != id {
		return nil, errors.New("the server answered another resource")
	}
	c := p.choice()
	return &c, nil
}

// getFHIR reads a JSON resource from a FHIR server the operator
// configured (patient_search, the pages' patient names).
func getFHIR(ctx context.Context, target string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/fhir+json")
	resp, err := patientSearchClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the FHIR server answered %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, patientSearchMaxBody+1))
	if err != nil {
		return err
	}
	if len(body) > patientSearchMaxBody {
		return errors.New("the FHIR server's answer is too large")
	}
	return json.Unmarshal(body, into)
}
