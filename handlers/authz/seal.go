package authz

import (
	"context"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/smartcaddy/smartauth/store"
)

// What a browser carries between the instances of one authorization
// server is sealed or signed with keys derived from the store's site
// secret (store.Store.SiteSecret: 32 random bytes, made once, shared by
// every instance, kept across restarts and carried by migrate), each with
// HKDF-SHA256 and its own purpose label, so that a key of one purpose
// opens nothing of another:
//
//   - a pending authorization request travels as its own sealed value
//     (sealPending, openPending), XChaCha20-Poly1305 with the issuer as
//     associated data;
//   - the sign-in form's CSRF token before sign-in is an HMAC-SHA256 of a
//     random cookie value (session.go, loginCSRF);
//   - the relying-party state of a sign-in through an identity provider
//     travels in a short-lived cookie, XChaCha20-Poly1305 as well
//     (idp_state.go).
//
// Nothing of this is written to the store until a user has signed in.
const (
	// hkdfPendingLabel and hkdfCSRFLabel are the HKDF info labels.
	hkdfPendingLabel = "smartauth pending authorization request v1"
	hkdfCSRFLabel    = "smartauth sign-in form csrf v1"
	hkdfIDPLabel     = "smartauth identity provider sign-in state v1"
	// pendingSealVersion is the first byte of a sealed pending request;
	// a value of another version does not open.
	pendingSealVersion = 1
	// pendingMaxSealed bounds a sealed pending request, in characters of
	// its base64url text. A longer value is refused before it is decoded;
	// an authorization request that would seal to more (a huge state or
	// launch context) is refused at the authorization endpoint.
	pendingMaxSealed = 12 << 10
)

// siteKeys are the keys derived from the site secret. They are immutable.
type siteKeys struct {
	// pending seals pending authorization requests.
	pending cipher.AEAD
	// csrf signs the sign-in form's CSRF cookie value.
	csrf []byte
	// idp seals the relying-party state of a sign-in through an identity
	// provider.
	idp cipher.AEAD
}

// loadSiteKeys reads (or, on the store's first start, creates) the site
// secret and derives the keys from it.
func loadSiteKeys(ctx context.Context, st SiteSecretStore) (*siteKeys, error) {
	secret, err := st.SiteSecret(ctx)
	if err != nil {
		return nil, fmt.Errorf("authz: reading the site secret: %w", err)
	}
	return deriveSiteKeys(secret)
}

// deriveSiteKeys derives the keys of every purpose from a site secret.
func deriveSiteKeys(secret []byte) (*siteKeys, error) {
	if len(secret) < store.SiteSecretSize {
		return nil, errors.New("authz: the site secret is too short")
	}
	pk, err := hkdf.Key(sha256.New, secret, nil, hkdfPendingLabel, chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(pk)
	if err != nil {
		return nil, err
	}
	ck, err := hkdf.Key(sha256.New, secret, nil, hkdfCSRFLabel, sha256.Size)
	if err != nil {
		return nil, err
	}
	ik, err := hkdf.Key(sha256.New, secret, nil, hkdfIDPLabel, chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	idp, err := chacha20poly1305.NewX(ik)
	if err != nil {
		return nil, err
	}
	return &siteKeys{pending: aead, csrf: ck, idp: idp}, nil
}

// csrfToken is the sign-in form's CSRF token for a cookie value: its
// HMAC, bound to the issuer, base64url.
func (k *siteKeys) csrfToken(issuer, cookie string) string {
	m := hmac.New(sha256.New, k.csrf)
	m.Write([]byte(issuer))
	m.Write([]byte{0})
	m.Write([]byte(cookie))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// sealedPending is the plaintext of a sealed pending request: every field
// of pendingAuthorization but the issuer (the associated data).
type sealedPending struct {
	ID          string              `json:"id"`
	Expires     int64               `json:"exp"` // Unix nanoseconds
	ClientID    string              `json:"cid"`
	ClientName  string              `json:"cn,omitempty"`
	RedirectURI string              `json:"ru"`
	State       string              `json:"st"`
	Nonce       string              `json:"no,omitempty"`
	Challenge   string              `json:"cc"`
	Offered     []string            `json:"sc"`
	Context     store.LaunchContext `json:"ctx"`
	EHRLaunch   bool                `json:"ehr,omitempty"`
	LaunchID    string              `json:"lid,omitempty"`
	LaunchUser  string              `json:"lu,omitempty"`
	PromptNone  bool                `json:"pn,omitempty"`
	Session     string              `json:"ses,omitempty"`
	PromptLogin bool                `json:"pl,omitempty"`
	MaxAge      *int                `json:"ma,omitempty"`
}

// pendingAAD is the associated data of a sealed pending request: the
// version and the issuer, so that another issuer's value does not open.
func pendingAAD(issuer string) []byte {
	return append([]byte{pendingSealVersion}, issuer...)
}

// sealPending seals a pending request: version byte, random 24-byte
// nonce, XChaCha20-Poly1305 ciphertext of its JSON; base64url.
func (k *siteKeys) sealPending(p pendingAuthorization) string {
	var maxAge *int
	if p.hasMaxAge {
		maxAge = &p.maxAge
	}
	plain, err := json.Marshal(sealedPending{
		ID: p.requestID, Expires: p.expires.UnixNano(), ClientID: p.clientID, ClientName: p.clientName,
		RedirectURI: p.redirectURI, State: p.state, Nonce: p.nonce, Challenge: p.challenge, Offered: p.offered,
		Context: p.context, EHRLaunch: p.ehrLaunch, LaunchID: p.launchID, LaunchUser: p.launchUser,
		PromptNone: p.promptNone, Session: p.session, PromptLogin: p.promptLogin, MaxAge: maxAge,
	})
	if err != nil {
		panic("authz: sealing a pending request: " + err.Error()) // plain data always marshals
	}
	out := make([]byte, 1+chacha20poly1305.NonceSizeX, 1+chacha20poly1305.NonceSizeX+len(plain)+k.pending.Overhead())
	out[0] = pendingSealVersion
	_, _ = rand.Read(out[1:]) // never fails (crypto/rand panics instead)
	out = k.pending.Seal(out, out[1:], plain, pendingAAD(p.issuer))
	return base64.RawURLEncoding.EncodeToString(out)
}

// pendingEncoding decodes sealed values strictly: a changed padding bit
// is a changed value.
var pendingEncoding = base64.RawURLEncoding.Strict()

// openPending opens a sealed pending request of the issuer that has not
// expired at now. Anything else (too long, not base64url, another
// version, altered, sealed under another secret or for another issuer,
// expired) does not open.
func (k *siteKeys) openPending(sealed, issuer string, now time.Time) (pendingAuthorization, bool) {
	if sealed == "" || len(sealed) > pendingMaxSealed {
		return pendingAuthorization{}, false
	}
	raw, err := pendingEncoding.DecodeString(sealed)
	if err != nil || len(raw) < 1+chacha20poly1305.NonceSizeX+k.pending.Overhead() || raw[0] != pendingSealVersion {
		return pendingAuthorization{}, false
	}
	nonce, box := raw[1:1+chacha20poly1305.NonceSizeX], raw[1+chacha20poly1305.NonceSizeX:]
	plain, err := k.pending.Open(nil, nonce, box, pendingAAD(issuer))
	if err != nil {
		return pendingAuthorization{}, false
	}
	var sp sealedPending
	if err := json.Unmarshal(plain, &sp); err != nil || sp.ID == "" {
		return pendingAuthorization{}, false
	}
	exp := time.Unix(0, sp.Expires)
	if !now.Before(exp) {
		return pendingAuthorization{}, false
	}
	p := pendingAuthorization{
		issuer: issuer, requestID: sp.ID, expires: exp, clientID: sp.ClientID, clientName: sp.ClientName,
		redirectURI: sp.RedirectURI, state: sp.State, nonce: sp.Nonce, challenge: sp.Challenge, offered: sp.Offered,
		context: sp.Context, ehrLaunch: sp.EHRLaunch, launchID: sp.LaunchID, launchUser: sp.LaunchUser,
		promptNone: sp.PromptNone, session: sp.Session, promptLogin: sp.PromptLogin,
	}
	if sp.MaxAge != nil {
		p.maxAge, p.hasMaxAge = *sp.MaxAge, true
	}
	return p, true
}
