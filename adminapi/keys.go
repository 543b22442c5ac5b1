package adminapi

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/keys"
)

// Key is one published signing key (GET /smart-auth/keys): no key
// material, only its identity, state and times. Age is how long it has
// been (or will be, when negative) signing, in seconds.
type Key struct {
	keys.KeyStatus
	AgeSeconds int64 `json:"age_seconds"`
}

// KeyRing is the answer of GET /smart-auth/keys and POST
// /smart-auth/keys/rotate.
type KeyRing struct {
	Issuer string    `json:"issuer"`
	At     time.Time `json:"at"`
	Keys   []Key     `json:"keys"`
	// NextRotation is, per algorithm, when the next successor starts
	// signing (keys.Status.NextRotation).
	NextRotation map[string]time.Time `json:"next_rotation,omitempty"`
	// RotationPeriod and PublishAhead are the ring's settings, as Go
	// durations ("720h0m0s"); RotationPeriod "0s" means never.
	RotationPeriod string `json:"rotation_period"`
	PublishAhead   string `json:"publish_ahead"`
	// Rotated lists the algorithms a rotation request rotated.
	Rotated []string `json:"rotated,omitempty"`
}

// keyRing describes the target's ring now.
func keyRing(t *Target) KeyRing {
	st := t.Keys.Status()
	out := KeyRing{Issuer: t.Issuer, At: st.At.UTC(), Keys: []Key{}, NextRotation: st.NextRotation,
		RotationPeriod: st.RotationPeriod.String(), PublishAhead: st.PublishAhead.String()}
	for _, k := range st.Keys {
		out.Keys = append(out.Keys, Key{KeyStatus: k, AgeSeconds: int64(st.At.Sub(k.ActiveFrom) / time.Second)})
	}
	return out
}

// showKeys answers GET /smart-auth/keys.
func showKeys(w http.ResponseWriter, _ *http.Request, t *Target) error {
	return writeJSON(w, http.StatusOK, keyRing(t))
}

// rotateKeys answers POST /smart-auth/keys/rotate[?alg=ES256]: a
// successor is generated for the algorithm's key (every generated key's,
// without alg) and published now; it starts signing after the publish-ahead
// time, as a scheduled rotation does, so that verifiers with a cached
// JWKS know it. A successor already pending is kept. A key from a file
// cannot be rotated here (409): replace the file.
func rotateKeys(w http.ResponseWriter, r *http.Request, t *Target) error {
	algs := keys.Algorithms()
	if alg := r.URL.Query().Get("alg"); alg != "" {
		if !slices.Contains(algs, alg) {
			return apiError(http.StatusBadRequest, fmt.Sprintf("alg: %q is not one of %v", alg, algs))
		}
		if !t.Keys.Rotatable(alg) {
			return apiError(http.StatusConflict, fmt.Sprintf("the %s key comes from a file: replace the file to rotate it", alg))
		}
		algs = []string{alg}
	}
	var rotated []string
	for _, alg := range algs {
		if !t.Keys.Rotatable(alg) {
			continue
		}
		if err := t.Keys.Rotate(r.Context(), alg); err != nil {
			return storeError(t, "rotating the "+alg+" key", err)
		}
		rotated = append(rotated, alg)
	}
	if len(rotated) == 0 {
		return apiError(http.StatusConflict, "every signing key comes from a file: replace the files to rotate them")
	}
	audit(t, r, "signing keys rotated", zap.Strings("algs", rotated))
	out := keyRing(t)
	out.Rotated = rotated
	return writeJSON(w, http.StatusOK, out)
}
