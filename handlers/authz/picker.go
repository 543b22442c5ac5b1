package authz

import (
	"net/http"
	"strings"
	"unicode/utf8"

	"go.uber.org/zap"
)

// pickerPage is the data of picker.html.
type pickerPage struct {
	Action     string
	CSRF       string
	Req        string
	ClientName string
	// User is the signed-in user's name, SignOut the sign-out page.
	User    string
	SignOut string
	// Patients are the patients offered (the user's list, filtered by
	// Filter, or the search's results); Notice says when some could not
	// be named.
	Patients []patientChoice
	Notice   string
	// Filterable is set when the user's list is long enough to offer a
	// filter box; Filter is what was typed in it, Total the list's length.
	Filterable bool
	Filter     string
	Total      int
	// Search is set when the user finds patients by name on the
	// upstream FHIR server; Query is the name searched for, and
	// SearchError a message when the search failed.
	Search      bool
	Query       string
	SearchError string
}

// servePicker is the standalone-launch patient picker: GET shows the
// user's patients (or, with patient search, a name search and its
// results: GET with name=…), POST (patient, csrf_token) puts the chosen
// one in context and goes on to consent.
func (s *Server) servePicker(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		fs, p, ok := s.pending.readPage(w, r)
		if !ok {
			return
		}
		s.renderPicker(w, r, fs, p)
	case http.MethodPost:
		fs, p, ok := s.pending.readForm(w, r)
		if !ok {
			return
		}
		if p.ehrLaunch || p.context.Patient != "" {
			// The context is settled; a second choice changes nothing.
			s.advanceAuthorization(w, r, fs, p)
			return
		}
		patient := r.PostForm.Get("patient")
		if patient == "" || len(r.PostForm["patient"]) != 1 || !s.mayHavePatient(r.Context(), s.sessions.user(fs), patient) {
			s.pages.message(w, http.StatusForbidden, "Patient not available",
				"You cannot choose that patient. Go back and choose one of the patients listed.")
			return
		}
		// The choice travels sealed in the request from here on.
		p.context.Patient = patient
		s.advanceAuthorization(w, r, fs, p)
	default:
		w.Header().Set("Allow", "GET, POST")
		s.pages.message(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET or POST.")
	}
}

// renderPicker shows the patient picker of a pending request, with the
// name search's results when the user searches.
func (s *Server) renderPicker(w http.ResponseWriter, r *http.Request, fs *flowSession, p pendingAuthorization) {
	u := s.sessions.user(fs)
	data := pickerPage{
		Action:     s.Endpoint(pathPicker),
		CSRF:       fs.rec.CSRF,
		Req:        s.pending.seal(p),
		ClientName: p.clientName,
		User:       displayUserName(u),
		SignOut:    s.Endpoint(pathLogout),
	}
	data.Patients, data.Notice = s.describePatients(r.Context(), u.Patients)
	data.Total = len(data.Patients)
	if data.Total > patientFilterThreshold {
		data.Filterable = true
		data.Filter = limitQuery(r.URL.Query().Get("filter"))
		data.Patients = filterPatients(data.Patients, data.Filter)
	}
	if s.mayUsePatientSearch(u) {
		data.Search = true
		data.Query = limitQuery(r.URL.Query().Get("name"))
		if data.Query != "" {
			found, err := s.searchPatients(r.Context(), data.Query)
			switch {
			case err != nil:
				s.logger.Warn("patient picker: the search failed", zap.Error(err))
				data.SearchError = "The patient search is not available right now."
			case len(found) == 0:
				data.SearchError = "No patient matches that name."
			}
			data.Patients = found
		}
	}
	s.pages.render(w, http.StatusOK, pagePicker, s.flowPageSecurity(p), data)
}

// limitQuery trims what was typed in a search or filter box and cuts it
// to patientSearchMaxQuery bytes, on a character boundary.
func limitQuery(q string) string {
	q = strings.TrimSpace(q)
	if len(q) <= patientSearchMaxQuery {
		return q
	}
	q = q[:patientSearchMaxQuery]
	for len(q) > 0 && !utf8.ValidString(q) {
		q = q[:len(q)-1]
	}
	return q
}
