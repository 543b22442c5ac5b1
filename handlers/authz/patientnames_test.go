package authz

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/scopes"
)

// namesServer is a Server with only what describePatients uses, reading
// names from base.
func namesServer(t *testing.T, base string) *Server {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return &Server{cfg: Options{Settings: Settings{PatientNames: u}}, logger: zap.NewNop(), patientNames: &patientNameCache{}}
}

func TestDescribePatientsNamesThemCachesAndFallsBack(t *testing.T) {
	var reads atomic.Int32
	fhir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reads.Add(1)
		switch r.URL.Path {
		case "/fhir/Patient/pat-2":
			w.Header().Set("Content-Type", "application/fhir+json")
			_, _ = w.Write([]byte(`{"resourceType":"Patient","id":"pat-2","gender":"female","birthDate":"1980-01-01",
				"identifier":[{"system":"urn:x","value":"other"},{"type":{"coding":[{"code":"MR"}]},"value":"1000-02"}],
				"name":[{"use":"nickname","text":"Ames"},{"use":"official","family":"Shaw","given":["Amy"]}]}`))
		case "/fhir/Patient/pat-3":
			http.Error(w, "gone", http.StatusInternalServerError)
		default:
			http.NotFound(w, r)
		}
	}))
	defer fhir.Close()
	s := namesServer(t, fhir.URL+"/fhir")

	got, notice := s.describePatients(context.Background(), []string{"pat-2", "pat-3"})
	want := patientChoice{ID: "pat-2", Label: "Amy Shaw, 1980-01-01", Known: true, Name: "Amy Shaw", BirthDate: "1980-01-01", Gender: "female", MRN: "1000-02"}
	if got[0] != want {
		t.Errorf("pat-2: %+v, want %+v", got[0], want)
	}
	if got[1] != (patientChoice{ID: "pat-3", Label: "pat-3"}) {
		t.Errorf("pat-3 (server error): %+v, want the id alone", got[1])
	}
	if notice != patientNamesUnavailable {
		t.Errorf("notice %q, want the fallback notice", notice)
	}
	// Both answers, the failure too, are cached for a while.
	before := reads.Load()
	again, notice := s.describePatients(context.Background(), []string{"pat-2", "pat-3"})
	if reads.Load() != before || again[0] != want || notice != patientNamesUnavailable {
		t.Errorf("second page: %d more reads, %+v, notice %q", reads.Load()-before, again, notice)
	}
}

func TestDescribePatientsWhenTheServerIsDown(t *testing.T) {
	fhir := httptest.NewServer(http.NotFoundHandler())
	base := fhir.URL
	fhir.Close() // nothing listens there now
	s := namesServer(t, base)
	got, notice := s.describePatients(context.Background(), []string{"pat-1", "pat-2"})
	if got[0].Known || got[0].Label != "pat-1" || got[1].Label != "pat-2" {
		t.Errorf("patients %+v, want ids", got)
	}
	if !strings.Contains(notice, "could not be read") {
		t.Errorf("notice %q", notice)
	}
	// Without a server configured, ids without a notice.
	s.cfg.PatientNames = nil
	if got, notice := s.describePatients(context.Background(), []string{"pat-1"}); got[0].Label != "pat-1" || notice != "" {
		t.Errorf("no server: %+v %q", got, notice)
	}
}

func TestFilterPatients(t *testing.T) {
	ps := []patientChoice{
		{ID: "pat-1", Name: "Bob Demo", BirthDate: "1981-01-01", MRN: "1000-01", Known: true},
		{ID: "pat-2", Name: "Amy Shaw", BirthDate: "1980-01-01", Known: true},
		{ID: "x-9"},
	}
	for q, want := range map[string]int{"": 3, "shaw": 1, "  AMY ": 1, "1980": 1, "1000-01": 1, "x-9": 1, "pat-": 2, "nobody": 0} {
		if got := filterPatients(ps, q); len(got) != want {
			t.Errorf("filter %q: %d patients, want %d", q, len(got), want)
		}
	}
	long := strings.Repeat("é", patientSearchMaxQuery)
	if got := limitQuery(long); len(got) > patientSearchMaxQuery || !strings.HasPrefix(long, got) || strings.ContainsRune(got, '\uFFFD') {
		t.Errorf("limitQuery cut a character: %q", got)
	}
}

func TestForThisPatient(t *testing.T) {
	for scope, want := range map[string]string{
		"patient/*.rs":           "Read and search all of this patient's health records",
		"patient/Observation.rs": "this patient's",
		"openid":                 "Know who you are",
		"user/*.rs":              "records you can access",
	} {
		if got := forThisPatient(scope, scopes.Describe(scope)); !strings.Contains(got, want) || strings.Contains(got, "your ") && strings.HasPrefix(scope, "patient/") {
			t.Errorf("%s: %q, want it to contain %q", scope, got, want)
		}
	}
}
