package adminapi

import (
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

// listGrants answers GET /smart-auth/users/{user}/grants.
func listGrants(w http.ResponseWriter, r *http.Request, t *Target) error {
	user, list, err := userGrants(r, t)
	if err != nil {
		return err
	}
	out := Grants{Issuer: t.Issuer, User: user, Grants: []Grant{}}
	for _, g := range list {
		out.Grants = append(out.Grants, Grant{ClientID: g.ClientID, Families: g.Families, Scope: g.Scope,
			IssuedAt: g.IssuedAt.UTC(), AuthTime: g.AuthTime.UTC(), Remembered: g.Remembered})
	}
	return writeJSON(w, http.StatusOK, out)
}

// revokeUser answers POST /smart-auth/users/{user}/revoke: every live
// refresh-token family of the user is revoked, and with each family every
// access token issued from it (store.RevokedFamily). Remembered consents
// are forgotten, so that the next authorization asks again.
func revokeUser(w http.ResponseWriter, r *http.Request, t *Target) error {
	user, list, err := userGrants(r, t)
	if err != nil {
		return err
	}
	until, err := revocationUntil(w, r, t)
	if err != nil {
		return err
	}
	families := []string{}
	for _, g := range list {
		for _, f := range g.Families {
			if err := t.Store.Revoke(r.Context(), store.RevokedFamily, f, until); err != nil {
				return storeError(t, "revoking a user's refresh-token family", err)
			}
			families = append(families, f)
		}
		if g.Remembered != nil {
			if err := t.Store.DeleteConsent(r.Context(), user, g.ClientID); err != nil {
				return storeError(t, "forgetting a user's consent", err)
			}
		}
	}
	audit(t, r, "every refresh-token family of a user revoked", zap.String("user", user), zap.Int("families", len(families)), zap.Time("revoked_until", until))
	return writeJSON(w, http.StatusOK, map[string]any{"user": user, "families_revoked": families})
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
