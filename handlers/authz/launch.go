package authz

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/handlers/clients"
	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/handlers/users"
	"github.com/smartcaddy/smartauth/store"
)

// launchFHIRIDPattern is a FHIR resource id.
var launchFHIRIDPattern = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// launchRequest is the body of POST {issuer}/launch. client_id is
// required, every other field optional; unknown fields are ignored.
type launchRequest struct {
	Patient           string            `json:"patient"`
	Encounter         string            `json:"encounter"`
	FHIRContext       []json.RawMessage `json:"fhirContext"`
	NeedPatientBanner *bool             `json:"need_patient_banner"`
	SmartStyleURL     string            `json:"smart_style_url"`
	Intent            string            `json:"intent"`
	Tenant            string            `json:"tenant"`
	// ClientID binds the launch to one app; required.
	ClientID string `json:"client_id"`
	// User, when set, binds the launch to the EHR user (a configured user
	// name): only that user can complete it.
	User string `json:"user"`
}

// launchResponse is the answer of the launch API.
type launchResponse struct {
	Launch    string `json:"launch"`
	ExpiresIn int64  `json:"expires_in"`
}

// serveLaunch is the EHR launch API: an EHR client (CanCreateLaunch,
// HTTP Basic client_secret) posts a launch context and gets the opaque
// launch id to pass to the app's launch URL.
func (s *Server) serveLaunch(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		oauth.Write(w, &oauth.Error{Status: http.StatusMethodNotAllowed, Code: oauth.CodeInvalidRequest, Description: "use POST"})
		return
	}
	client, fault := s.authenticateLaunchClient(r)
	if fault != nil {
		oauth.Write(w, fault)
		return
	}
	if !client.CanCreateLaunch {
		oauth.Write(w, &oauth.Error{Status: http.StatusForbidden, Code: oauth.CodeUnauthorizedClient, Description: "the client may not create launches"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 256<<10))
	if err != nil {
		oauth.Write(w, &oauth.Error{Status: http.StatusRequestEntityTooLarge, Code: oauth.CodeInvalidRequest, Description: "the body is too large"})
		return
	}
	var req launchRequest
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			oauth.Write(w, oauth.New(oauth.CodeInvalidRequest, "the body is not a JSON object: "+err.Error()))
			return
		}
	}
	if msg := s.checkLaunchRequest(r, &req); msg != "" {
		oauth.Write(w, oauth.New(oauth.CodeInvalidRequest, msg))
		return
	}
	id, ttl, err := s.saveLaunch(r, &store.Launch{
		LaunchContext: store.LaunchContext{
			Patient:           req.Patient,
			Encounter:         req.Encounter,
			FHIRContext:       req.FHIRContext,
			NeedPatientBanner: req.NeedPatientBanner,
			SmartStyleURL:     req.SmartStyleURL,
			Intent:            req.Intent,
			Tenant:            req.Tenant,
		},
		ClientID:  req.ClientID,
		User:      req.User,
		CreatedBy: client.ID,
	})
	if err != nil {
		s.logger.Error("saving a launch failed", zap.Error(err))
		if errors.Is(err, store.ErrUnavailable) {
			oauth.Write(w, oauth.Unavailable())
			return
		}
		oauth.Write(w, oauth.New(oauth.CodeServerError, "the launch could not be stored"))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	oauth.WriteJSON(w, http.StatusCreated, launchResponse{Launch: id, ExpiresIn: int64(ttl / time.Second)})
}

// checkLaunchRequest validates a launch context; it returns what is wrong.
func (s *Server) checkLaunchRequest(r *http.Request, req *launchRequest) string {
	if req.Patient != "" && !launchFHIRIDPattern.MatchString(req.Patient) {
		return "patient must be a FHIR resource id"
	}
	if req.Encounter != "" && !launchFHIRIDPattern.MatchString(req.Encounter) {
		return "encounter must be a FHIR resource id"
	}
	for _, item := range req.FHIRContext {
		var obj map[string]json.RawMessage
		if json.Unmarshal(item, &obj) != nil || obj == nil {
			return "fhirContext must be an array of objects"
		}
	}
	if req.SmartStyleURL != "" {
		u, err := url.Parse(req.SmartStyleURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return "smart_style_url must be an absolute http(s) URL"
		}
	}
	if len(req.Intent) > 1024 || len(req.Tenant) > 1024 {
		return "intent and tenant must be at most 1024 characters"
	}
	if req.ClientID == "" {
		return "client_id is required: a launch is bound to the app it launches"
	}
	if c, err := s.registry.Lookup(r.Context(), req.ClientID); err != nil || c == nil {
		return "client_id names no registered client"
	}
	if req.User != "" {
		u := s.cfg.Users[req.User]
		if u == nil {
			return "user names no configured user"
		}
		if req.Patient != "" && !s.users.Reach(u).PatientAllowed(req.Patient) {
			return "the user may not open this patient's record"
		}
	}
	return ""
}

// checkLaunchUser tells whether the signed-in user may complete an EHR
// launch: the launch's user, when it names one, and a user allowed the
// launch's patient (mayHavePatient, the rule of the picker and the
// launcher page). Otherwise it shows an error page and uses the pending
// request up; the launch itself stays usable for the right user until it
// expires.
func (s *Server) checkLaunchUser(w http.ResponseWriter, r *http.Request, p pendingAuthorization, u *users.User) bool {
	var msg string
	switch {
	case p.launchUser != "" && p.launchUser != u.Name:
		msg = "This app was launched for another user. Sign out, then sign in as the user the EHR launched it for."
	case p.context.Patient != "" && !s.mayHavePatient(r.Context(), u, p.context.Patient):
		msg = "This app was launched for a patient whose record you may not open."
	default:
		return true
	}
	if err := s.pending.use(r.Context(), p); err != nil && !errors.Is(err, store.ErrReplayed) {
		s.logger.Error("using up a pending authorization request failed", zap.Error(err))
	}
	s.logger.Warn("an EHR launch was refused to the signed-in user",
		zap.String("client_id", p.clientID), zap.String("user", u.Name))
	s.pages.message(w, http.StatusForbidden, "Launch not available", msg)
	return false
}

// saveLaunch stores a launch under a new id.
func (s *Server) saveLaunch(r *http.Request, l *store.Launch) (string, time.Duration, error) {
	ttl := s.cfg.Lifetimes.Launch
	l.CreatedAt = time.Now()
	id := store.NewSecret()
	return id, ttl, s.cfg.Store.SaveLaunch(r.Context(), id, l, ttl)
}

// authenticateLaunchClient authenticates the caller of the launch API:
// client_secret_basic, checked by the token endpoint's client
// authentication.
func (s *Server) authenticateLaunchClient(r *http.Request) (*store.Client, *oauth.Error) {
	if !clients.HasBasicAuth(r) {
		return nil, oauth.New(oauth.CodeInvalidClient, "client authentication with HTTP Basic is required").WithBasic(s.cfg.Issuer.String())
	}
	c, f := s.registry.AuthenticateBasic(r, url.Values{})
	if f != nil {
		f.WithBasic(s.cfg.Issuer.String())
	}
	return c, f
}
