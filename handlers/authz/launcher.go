package authz

import (
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/smartcaddy/smartauth/handlers/users"
	"github.com/smartcaddy/smartauth/store"
	"go.uber.org/zap"
)

// launcherPage is the data of launcher.html.
type launcherPage struct {
	Action string
	CSRF   string
	// User is the signed-in user's name, SignOut the sign-out page and
	// Manage the page of the user's authorized apps.
	User    string
	SignOut string
	Manage  string
	Apps    []launcherApp
	// Patients are the patients the user may launch an app for (filtered
	// by Filter when Filterable); Notice says when some could not be
	// named; Total is the list's length before filtering.
	Patients   []patientChoice
	Notice     string
	Filterable bool
	Filter     string
	Total      int
}

// launcherApp is an app the launcher can start.
type launcherApp struct {
	ID   string
	Name string
}

// serveLauncher is a small EHR for signed-in users: GET lists the apps
// with a launch URL and the user's patients; POST (client_id, patient,
// csrf_token) creates a launch bound to the app and sends the browser to
// launch_uri?iss={FHIR base}&launch={id}.
func (s *Server) serveLauncher(w http.ResponseWriter, r *http.Request) {
	fs, ok := s.signedInPage(w, r, loginReturnLauncher, "Sign in to launch apps.")
	if !ok {
		return
	}
	apps, err := s.launchableClients(r)
	if err != nil {
		s.logger.Error("listing clients failed", zap.Error(err))
		s.pages.storeFailure(w, err, "The apps could not be listed.")
		return
	}
	user := s.sessions.user(fs)
	patients := launcherPatients(user)
	if r.Method != http.MethodPost {
		data := launcherPage{Action: s.Endpoint(pathLauncher), CSRF: fs.rec.CSRF, User: displayUserName(user),
			SignOut: s.Endpoint(pathLogout), Manage: s.Endpoint(PathManage)}
		data.Patients, data.Notice = s.describePatients(r.Context(), patients)
		data.Total = len(data.Patients)
		if data.Total > patientFilterThreshold {
			data.Filterable = true
			data.Filter = limitQuery(r.URL.Query().Get("filter"))
			data.Patients = filterPatients(data.Patients, data.Filter)
		}
		for _, c := range apps {
			data.Apps = append(data.Apps, launcherApp{ID: c.ID, Name: clientDisplayName(c)})
		}
		s.pages.render(w, http.StatusOK, pageLauncher, launcherSecurity(apps), data)
		return
	}
	if err := parsePageForm(w, r); err != nil {
		s.pages.message(w, http.StatusBadRequest, "Invalid request", "The form could not be read.")
		return
	}
	if !s.sessions.checkCSRF(r, fs) {
		s.sessions.refuseCSRF(w)
		return
	}
	var app *store.Client
	for _, c := range apps {
		if c.ID == r.PostForm.Get("client_id") {
			app = c
		}
	}
	if app == nil {
		s.pages.message(w, http.StatusBadRequest, "Unknown app", "Choose one of the apps listed.")
		return
	}
	patient := r.PostForm.Get("patient")
	switch {
	case patient == "" && len(patients) == 0:
	case !slices.Contains(patients, patient) || !s.mayHavePatient(r.Context(), user, patient):
		s.pages.message(w, http.StatusForbidden, "Patient not available", "Choose one of the patients listed.")
		return
	}
	id, _, err := s.saveLaunch(r, &store.Launch{
		LaunchContext: store.LaunchContext{Patient: patient},
		ClientID:      app.ID,
		User:          user.Name,
		CreatedBy:     "user:" + user.Name,
	})
	if err != nil {
		s.logger.Error("saving a launch failed", zap.Error(err))
		s.pages.storeFailure(w, err, "The launch could not be stored.")
		return
	}
	target := withQuery(app.LaunchURI, url.Values{"iss": {strings.TrimSuffix(s.cfg.FHIRBase.String(), "/")}, "launch": {id}})
	setPageHeaders(w.Header(), "default-src 'none'; frame-ancestors 'none'; base-uri 'none'")
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// launcherPatients are the patients a user may launch an app for: their
// own record when they are a patient (and nothing else), else the ones
// they may pick (users.Rule).
func launcherPatients(u *users.User) []string {
	if own := u.OwnPatient(); own != "" {
		return []string{own}
	}
	return u.Patients
}

// launchableClients are the configured and registered clients with a
// launch URL, by name.
func (s *Server) launchableClients(r *http.Request) ([]*store.Client, error) {
	var out []*store.Client
	for _, c := range s.registry.Configured() {
		if c.LaunchURI != "" {
			out = append(out, c)
		}
	}
	dyn, err := s.cfg.Store.ListClients(r.Context())
	if err != nil {
		return nil, err
	}
	for _, c := range dyn {
		if c.LaunchURI != "" && !s.registry.IsConfigured(c.ID) {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := clientDisplayName(out[i]), clientDisplayName(out[j])
		if a != b {
			return a < b
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// launcherSecurity lets the launcher be framed by the EHR origins and its
// form lead on to the apps' launch URLs.
func launcherSecurity(apps []*store.Client) pageSecurity {
	sec := pageSecurity{framable: true}
	for _, c := range apps {
		if o := redirectOrigin(c.LaunchURI); o != "" && !slices.Contains(sec.formTargets, o) {
			sec.formTargets = append(sec.formTargets, o)
		}
	}
	return sec
}
