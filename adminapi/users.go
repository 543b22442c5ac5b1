package adminapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/store"
)

// Grant is one client's grant of a user (GET .../users/{user}/grants):
// the live refresh-token families, the newest one's scope, when it was
// last refreshed and authorized, and the remembered consent's scopes.
type Grant struct {
	ClientID   string    `json:"client_id"`
	Families   []string  `json:"family_ids"`
	Scope      string    `json:"scope,omitempty"`
	IssuedAt   time.Time `json:"issued_at,omitzero"`
	AuthTime   time.Time `json:"auth_time,omitzero"`
	Remembered []string  `json:"remembered_consent,omitempty"`
	Patients   []string  `json:"patients,omitempty"`
}

// Grants is the answer of GET /smart-auth/users/{user}/grants.
type Grants struct {
	Issuer string  `json:"issuer"`
	User   string  `json:"user"`
	Grants []Grant `json:"grants"`
}

// userGrants reads the user's grants, refusing a name that is neither a
// configured user nor found in any grant.
func userGrants(r *http.Request, t *Target) (string, []store.UserGrant, error) {
	user := r.PathValue("user")
	list, err := t.Store.UserGrants(r.Context(), user)
	if err != nil {
		return "", nil, storeError(t, "reading a user's grants", err)
	}
	if len(list) == 0 && (t.Users == nil || !t.Users(user)) {
		return "", nil, apiError(http.StatusNotFound, fmt.Sprintf("no configured user %q and no grants of that name", user))
	}
	return user, list, nil
}

// GrantsOf is the listing of a user's grants.
func GrantsOf(list []store.UserGrant) []Grant {
	out := make([]Grant, 0, len(list))
	for _, g := range list {
		out = append(out, Grant{ClientID: g.ClientID, Families: g.Families, Scope: g.Scope,
			IssuedAt: g.IssuedAt.UTC(), AuthTime: g.AuthTime.UTC(), Remembered: g.Remembered, Patients: g.Patients})
	}
	return out
}

// listGrants answers GET /smart-auth/users/{user}/grants.
func listGrants(w http.ResponseWriter, r *http.Request, t *Target) error {
	user, list, err := userGrants(r, t)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, Grants{Issuer: t.Issuer, User: user, Grants: GrantsOf(list)})
}

// RevokeUser revokes every token of a user until until: every access
// token issued for the user so far (store.RevokedUser, by issue time, so
// that tokens issued without a refresh token are covered too), every live
// refresh-token family of the user (store.RevokedFamily), and forgets the
// user's remembered consents, so that the next authorization asks again.
// It returns the families revoked. The admin API and the command line (on
// a storage directory) both use it.
func RevokeUser(ctx context.Context, st store.Store, user string, grants []store.UserGrant, until time.Time) ([]string, error) {
	families := []string{}
	if err := st.Revoke(ctx, store.RevokedUser, user, until); err != nil {
		return families, fmt.Errorf("revoking the access tokens of %s: %w", user, err)
	}
	for _, g := range grants {
		for _, f := range g.Families {
			if err := st.Revoke(ctx, store.RevokedFamily, f, until); err != nil {
				return families, fmt.Errorf("revoking a refresh-token family of %s: %w", user, err)
			}
			families = append(families, f)
		}
		if g.Remembered != nil {
			if err := st.DeleteConsent(ctx, user, g.ClientID); err != nil {
				return families, fmt.Errorf("forgetting a consent of %s: %w", user, err)
			}
		}
	}
	return families, nil
}

// RevokedUser is the answer of POST /smart-auth/users/{user}/revoke.
type RevokedUser struct {
	User     string   `json:"user"`
	Families []string `json:"families_revoked"`
}

// revokeUser answers POST /smart-auth/users/{user}/revoke (RevokeUser).
func revokeUser(w http.ResponseWriter, r *http.Request, t *Target) error {
	user, list, err := userGrants(r, t)
	if err != nil {
		return err
	}
	until, err := revocationUntil(w, r, t)
	if err != nil {
		return err
	}
	families, err := RevokeUser(r.Context(), t.Store, user, list, until)
	if len(families) > 0 || err == nil {
		audit(t, r, "every token of a user revoked", zap.String("user", user), zap.Int("families", len(families)), zap.Time("revoked_until", until))
	}
	if err != nil {
		return storeError(t, "revoking a user's tokens", err)
	}
	return writeJSON(w, http.StatusOK, RevokedUser{User: user, Families: families})
}

// maxFamilyID bounds a family id in a path.
const maxFamilyID = 128

// revokeFamily answers POST /smart-auth/families/{family_id}/revoke: the
// refresh-token family and every access token issued from it are revoked.
// An unknown family is revoked all the same (the store cannot tell a
// family that never existed from one whose tokens are gone).
func revokeFamily(w http.ResponseWriter, r *http.Request, t *Target) error {
	id := r.PathValue("family_id")
	if len(id) > maxFamilyID || !printableASCII(id) {
		return apiError(http.StatusBadRequest, "family_id: not a refresh-token family id")
	}
	until, err := revocationUntil(w, r, t)
	if err != nil {
		return err
	}
	if err := t.Store.Revoke(r.Context(), store.RevokedFamily, id, until); err != nil {
		return storeError(t, "revoking a refresh-token family", err)
	}
	audit(t, r, "refresh-token family revoked", zap.String("family_id", id), zap.Time("revoked_until", until))
	return writeJSON(w, http.StatusOK, map[string]any{"family_id": id, "revoked": true})
}

// printableASCII tells whether s is visible ASCII only.
func printableASCII(s string) bool {
	for i := range len(s) {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
