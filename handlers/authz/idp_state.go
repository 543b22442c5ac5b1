package authz

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// The relying-party state of a sign-in through an identity provider
// (which provider, state, nonce, PKCE verifier, the pending authorization
// request, what the app asked about a fresh sign-in) is written nowhere on
// the server before the user has signed in: it travels sealed
// (XChaCha20-Poly1305 under its own HKDF key of the site secret, seal.go)
// in a short-lived HttpOnly cookie, set when the browser is sent to the
// provider and read when the provider sends it back, by whichever
// instance that lands on. The cookie is bound to the browser (only it
// holds it) and to the state value (its name carries the state's start,
// its sealed content the whole state, compared in constant time), so
// that a provider response carried to another browser, or to another
// sign-in of the same browser, does not continue; sign-ins in several
// tabs at once each keep their own cookie. It is removed when the
// provider's answer arrives, and the state is recorded as used in the
// store (UseJTI) once the sign-in succeeded, so that a replayed answer
// does not sign anyone in.
const (
	// idpStateTTL is how long a sign-in at the provider may take.
	idpStateTTL = 10 * time.Minute
	// idpCookiePrefix starts the name of the state cookie, followed by
	// the first idpCookieStateChars characters of the state.
	idpCookiePrefix     = "smart_auth_idp_"
	idpCookieStateChars = 16
	// idpSealVersion is the first byte of a sealed state.
	idpSealVersion = 1
	// idpMaxSealed bounds a sealed state cookie, in characters.
	idpMaxSealed = 3800
)

// idpState is the relying-party state of one sign-in at a provider.
type idpState struct {
	Provider string `json:"p"`
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	// Req is the sealed pending authorization request; Return the
	// sign-in page's other return target.
	Req    string `json:"r,omitempty"`
	Return string `json:"rt,omitempty"`
	// PromptLogin and MaxAge are what was asked of the provider: a fresh
	// sign-in, or one no older than MaxAge seconds (nil: not asked).
	PromptLogin bool `json:"pl,omitempty"`
	MaxAge      *int `json:"ma,omitempty"`
	// Started and Expires are Unix nanoseconds.
	Started int64 `json:"t"`
	Expires int64 `json:"e"`
}

// idpCookieName is the name of the state cookie of a state value.
func idpCookieName(state string) string {
	if len(state) > idpCookieStateChars {
		state = state[:idpCookieStateChars]
	}
	return idpCookiePrefix + state
}

// idpCookiePath is the state cookie's path: only the callback sees it.
func (s *Server) idpCookiePath() string {
	return s.issuerPath + pathIDPCallback
}

// setIDPState seals the state into its cookie; false when it is too
// large for one (an authorization request with a huge launch context).
func (s *Server) setIDPState(w http.ResponseWriter, st idpState) bool {
	plain, err := json.Marshal(st)
	if err != nil {
		panic("authz: sealing a sign-in state: " + err.Error()) // plain data always marshals
	}
	out := make([]byte, 1+chacha20poly1305.NonceSizeX, 1+chacha20poly1305.NonceSizeX+len(plain)+s.keys.idp.Overhead())
	out[0] = idpSealVersion
	_, _ = rand.Read(out[1:])
	out = s.keys.idp.Seal(out, out[1:], plain, pendingAAD(s.cfg.Issuer.String()))
	value := base64.RawURLEncoding.EncodeToString(out)
	if len(value) > idpMaxSealed {
		return false
	}
	http.SetCookie(w, &http.Cookie{
		Name: idpCookieName(st.State), Value: value,
		Path: s.idpCookiePath(), MaxAge: int(idpStateTTL / time.Second),
		HttpOnly: true, Secure: s.sessions.cookieSecure(), SameSite: http.SameSiteLaxMode,
	})
	return true
}

// clearIDPState removes the state cookie of a state value.
func (s *Server) clearIDPState(w http.ResponseWriter, state string) {
	http.SetCookie(w, &http.Cookie{
		Name: idpCookieName(state), Value: "", Path: s.idpCookiePath(), MaxAge: -1,
		HttpOnly: true, Secure: s.sessions.cookieSecure(), SameSite: http.SameSiteLaxMode,
	})
}

// readIDPState opens the state cookie of the state the provider sent
// back: it must open under this issuer's key, not have expired, and hold
// exactly that state.
func (s *Server) readIDPState(r *http.Request, state string, now time.Time) (idpState, bool) {
	if state == "" || len(state) > 128 {
		return idpState{}, false
	}
	c, err := r.Cookie(idpCookieName(state))
	if err != nil || c.Value == "" || len(c.Value) > idpMaxSealed {
		return idpState{}, false
	}
	raw, err := pendingEncoding.DecodeString(c.Value)
	if err != nil || len(raw) < 1+chacha20poly1305.NonceSizeX+s.keys.idp.Overhead() || raw[0] != idpSealVersion {
		return idpState{}, false
	}
	plain, err := s.keys.idp.Open(nil, raw[1:1+chacha20poly1305.NonceSizeX], raw[1+chacha20poly1305.NonceSizeX:],
		pendingAAD(s.cfg.Issuer.String()))
	if err != nil {
		return idpState{}, false
	}
	var st idpState
	if json.Unmarshal(plain, &st) != nil || st.State == "" || !now.Before(time.Unix(0, st.Expires)) {
		return idpState{}, false
	}
	if subtle.ConstantTimeCompare([]byte(st.State), []byte(state)) != 1 {
		return idpState{}, false
	}
	return st, true
}
