package handlers

import (
	"net/http"
	"slices"
)

// pickerPage is the data of picker.html.
type pickerPage struct {
	Action     string
	CSRF       string
	Req        string
	ClientName string
	Patients   []string
}

// servePicker is the standalone-launch patient picker: GET shows the
// user's patients, POST (patient, csrf_token) puts the chosen one in
// context and goes on to consent.
func (s *Server) servePicker(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		fs := s.readSession(r)
		id := r.URL.Query().Get(pendingFieldName)
		p, ok := s.pendingFor(fs, id)
		if !ok {
			s.showPendingExpired(w)
			return
		}
		s.renderPicker(w, fs, id, p, http.StatusOK)
	case http.MethodPost:
		fs, id, p, ok := s.readPendingForm(w, r)
		if !ok {
			return
		}
		if p.ehrLaunch || p.context.Patient != "" {
			// The context is settled; a second choice changes nothing.
			s.advanceAuthorization(w, r, fs, id, p)
			return
		}
		patient := r.PostForm.Get("patient")
		if patient == "" || len(r.PostForm["patient"]) != 1 || !slices.Contains(fs.user(s).Patients, patient) {
			s.showMessage(w, http.StatusForbidden, "Patient not available",
				"You cannot choose that patient. Go back and choose one of the patients listed.")
			return
		}
		p.context.Patient = patient
		savePending(id, p)
		s.advanceAuthorization(w, r, fs, id, p)
	default:
		w.Header().Set("Allow", "GET, POST")
		s.showMessage(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET or POST.")
	}
}

func (s *Server) renderPicker(w http.ResponseWriter, fs *flowSession, id string, p pendingAuthorization, status int) {
	s.renderPage(w, status, pagePicker, s.flowPageSecurity(p), pickerPage{
		Action:     s.Endpoint(pathPicker),
		CSRF:       fs.rec.CSRF,
		Req:        id,
		ClientName: p.clientName,
		Patients:   fs.user(s).Patients,
	})
}
