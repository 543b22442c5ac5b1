package authz

import (
	"net/http"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/handlers/internal/throttle"
	"github.com/smartcaddy/smartauth/internal/audit"
	"github.com/smartcaddy/smartauth/scopes"
	"github.com/smartcaddy/smartauth/store"
)

// managePage is the data of manage.html.
type managePage struct {
	Action string
	CSRF   string
	// User is the signed-in user's name, SignOut the sign-out page and
	// Launcher the launcher page.
	User     string
	SignOut  string
	Launcher string
	Apps     []manageApp
	// Notice says what the last action did.
	Notice string
}

// manageApp is one app the user has authorized.
type manageApp struct {
	ID         string
	Name       string
	Since      string
	Access     []string // plain-language scope descriptions
	Offline    bool     // holds refresh tokens
	Remembered bool     // consent is remembered
	// Patients name the patients the app's lasting access is for (the
	// patients in context of its refresh-token families), as the picker
	// names them.
	Patients []patientChoice
	// PatientsNotice is set when a name could not be read.
	PatientsNotice string
}

// serveManage is SMART's management_endpoint: a signed-in user sees the
// apps that hold refresh tokens for them or whose consent is remembered,
// and can revoke an app (POST client_id, csrf_token): every refresh-token
// family the app holds for the user is revoked — with the access tokens
// issued from it, which the guard then refuses — and the remembered
// consent is forgotten. Access tokens issued without a refresh token are
// not listed; they expire with access_token_lifetime.
func (s *Server) serveManage(w http.ResponseWriter, r *http.Request) {
	fs, ok := s.signedInPage(w, r, loginReturnManage, "Sign in to manage the apps you have authorized.")
	if !ok {
		return
	}
	user := s.sessions.user(fs)
	notice := ""
	if r.Method == http.MethodPost {
		if err := parsePageForm(w, r); err != nil {
			s.pages.message(w, http.StatusBadRequest, "Invalid request", "The form could not be read.")
			return
		}
		if !s.sessions.checkCSRF(r, fs) {
			s.sessions.refuseCSRF(w)
			return
		}
		name, ok := s.revokeUserGrant(w, r, user.Name, r.PostForm.Get("client_id"))
		if !ok {
			return
		}
		notice = "Access for " + name + " was revoked."
	}
	grants, err := s.cfg.Store.UserGrants(r.Context(), user.Name)
	if err != nil {
		s.logger.Error("listing a user's grants failed", zap.Error(err))
		s.pages.storeFailure(w, err, "Your apps could not be listed.")
		return
	}
	data := managePage{Action: s.Endpoint(PathManage), CSRF: fs.rec.CSRF, User: displayUserName(user), Notice: notice,
		SignOut: s.Endpoint(pathLogout), Launcher: s.Endpoint(pathLauncher)}
	for _, g := range grants {
		app := manageApp{ID: g.ClientID, Name: g.ClientID, Offline: len(g.Families) > 0, Remembered: g.Remembered != nil}
		if c, err := s.registry.Lookup(r.Context(), g.ClientID); err == nil {
			app.Name = clientDisplayName(c)
		}
		if !g.AuthTime.IsZero() {
			app.Since = g.AuthTime.UTC().Format("2 January 2006")
		}
		scope := scopes.Split(g.Scope)
		if !app.Offline {
			scope = g.Remembered
		}
		for _, sc := range scope {
			if d := scopes.Describe(sc); d != "" && !slices.Contains(app.Access, d) {
				app.Access = append(app.Access, d)
			}
		}
		if len(g.Patients) > 0 {
			app.Patients, app.PatientsNotice = s.describePatients(r.Context(), g.Patients)
		}
		data.Apps = append(data.Apps, app)
	}
	s.pages.render(w, http.StatusOK, pageManage, pageSecurity{}, data)
}

// revokeUserGrant revokes what a user granted a client. It answers the
// request itself when it returns false.
func (s *Server) revokeUserGrant(w http.ResponseWriter, r *http.Request, user, clientID string) (string, bool) {
	grants, err := s.cfg.Store.UserGrants(r.Context(), user)
	if err != nil {
		s.logger.Error("listing a user's grants failed", zap.Error(err))
		s.pages.storeFailure(w, err, "Your apps could not be listed.")
		return "", false
	}
	var found *store.UserGrant
	for i := range grants {
		if grants[i].ClientID == clientID {
			found = &grants[i]
		}
	}
	if found == nil {
		s.pages.message(w, http.StatusBadRequest, "Unknown app", "That app holds no access for you.")
		return "", false
	}
	until := time.Now().Add(s.cfg.Lifetimes.token().FamilyRevocation())
	for _, fam := range found.Families {
		if err := s.cfg.Store.Revoke(r.Context(), store.RevokedFamily, fam, until); err != nil {
			s.logger.Error("revoking a token family failed", zap.Error(err))
			s.pages.storeFailure(w, err, "The access could not be revoked.")
			return "", false
		}
	}
	if err := s.cfg.Store.DeleteConsent(r.Context(), user, clientID); err != nil {
		s.logger.Error("forgetting a consent failed", zap.Error(err))
		s.pages.storeFailure(w, err, "The remembered consent could not be removed.")
		return "", false
	}
	s.logger.Info("a user revoked an app's access", zap.String("user", user), zap.String("client_id", clientID))
	s.cfg.Audit.Record(audit.Event{Action: audit.ActionRevocation, Outcome: audit.OutcomeSuccess, User: user, Client: clientID,
		Remote: throttle.ClientIP(r), Detail: "the user revoked the app's access (management page)", Target: "families: " + strconv.Itoa(len(found.Families))})
	name := clientID
	if c, err := s.registry.Lookup(r.Context(), clientID); err == nil {
		name = clientDisplayName(c)
	}
	return name, true
}
