// Package accesstoken is the access-token profile shared by the
// authorization server, which mints the tokens, and the guard in front of
// the FHIR API, which verifies them: the claim names, the minting of the
// JWT (RFC 9068, typ at+jwt), its verification and the revocation check.
//
// It knows nothing of the HTTP endpoints: a Profile is built from Options
// (issuer, audience, key ring, algorithm, lifetime) and the narrow store
// view it needs (RevocationStore).
package accesstoken

import (
	"encoding/json"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/smartcaddy/smartauth/store"
)

// Claims of the access tokens this server issues, besides iss, sub, aud,
// exp, iat, nbf and jti. The guard, introspection and revocation read
// them by these names.
const (
	ClaimClientID  = "client_id"
	ClaimScope     = "scope"
	ClaimPatient   = "patient"
	ClaimEncounter = "encounter"
	ClaimFHIRUser  = "fhirUser"
	// ClaimFamily names the refresh-token family (the code's family) the
	// token was issued from: revoking the family (store.RevokedFamily)
	// revokes the token.
	ClaimFamily = "family_id"
)

// Claims carrying the rest of the launch context, so that introspection
// can repeat every launch-context parameter of the token response (SMART
// token introspection: SHALL).
const (
	ClaimFHIRContext       = "fhirContext"
	ClaimNeedPatientBanner = "need_patient_banner"
	ClaimSmartStyleURL     = "smart_style_url"
	ClaimIntent            = "intent"
	ClaimTenant            = "tenant"
)

// Type is the typ header of access tokens (RFC 9068).
const Type = "at+jwt"

// Skew is the clock skew tolerated when checking exp and nbf of access
// tokens; the guard's cache and a jti revocation last until exp plus Skew.
const Skew = 30 * time.Second

// Claims is the view of a verified access token (Profile.Verify): read
// once by the fast path (f), or the jwx token of a token jwx verified.
type Claims struct {
	tok jwt.Token
	f   *fastClaims
}

// stringClaim reads a string claim of a token; "" when absent or not a
// string.
func stringClaim(tok jwt.Token, name string) string {
	var v string
	if tok.Has(name) {
		if err := tok.Get(name, &v); err != nil {
			return ""
		}
	}
	return v
}

// Subject is the sub claim: the user's name, or the client id for a
// client acting on its own behalf.
func (c Claims) Subject() string {
	if c.f != nil {
		return c.f.sub
	}
	v, _ := c.tok.Subject()
	return v
}

// ID is the jti claim.
func (c Claims) ID() string {
	if c.f != nil {
		return c.f.jti
	}
	v, _ := c.tok.JwtID()
	return v
}

// Issuer is the iss claim.
func (c Claims) Issuer() string {
	if c.f != nil {
		return c.f.iss
	}
	v, _ := c.tok.Issuer()
	return v
}

// Audience is the first aud value; "" when there is none.
func (c Claims) Audience() string {
	if c.f != nil {
		if len(c.f.aud) > 0 {
			return c.f.aud[0]
		}
		return ""
	}
	if aud, _ := c.tok.Audience(); len(aud) > 0 {
		return aud[0]
	}
	return ""
}

// IssuedAt is the iat claim; ok is false when the token has none.
func (c Claims) IssuedAt() (t time.Time, ok bool) {
	if c.f != nil {
		if c.f.has&hasIat == 0 {
			return time.Time{}, false
		}
		return unixUTC(c.f.iat), true
	}
	return c.tok.IssuedAt()
}

// Expiration is the exp claim; ok is false when the token has none
// (Verify requires one).
func (c Claims) Expiration() (t time.Time, ok bool) {
	if c.f != nil {
		if c.f.has&hasExp == 0 {
			return time.Time{}, false
		}
		return unixUTC(c.f.exp), true
	}
	return c.tok.Expiration()
}

// ClientID is the client_id claim.
func (c Claims) ClientID() string { return c.str(ClaimClientID) }

// Scope is the scope claim: the granted scopes, space-separated.
func (c Claims) Scope() string { return c.str(ClaimScope) }

// Patient is the patient in context; "" for none.
func (c Claims) Patient() string { return c.str(ClaimPatient) }

// Encounter is the encounter in context; "" for none.
func (c Claims) Encounter() string { return c.str(ClaimEncounter) }

// FHIRUser is the user's FHIR resource (an absolute URL); "" for none.
func (c Claims) FHIRUser() string { return c.str(ClaimFHIRUser) }

// Family is the refresh-token family the token was issued from; "" for
// none.
func (c Claims) Family() string { return c.str(ClaimFamily) }

// LaunchContext reads the launch context the token carries (the claims
// Mint sets from Grant.Context).
func (c Claims) LaunchContext() store.LaunchContext {
	if c.f != nil {
		return c.f.launchContext()
	}
	tok := c.tok
	lc := store.LaunchContext{
		Patient:       stringClaim(tok, ClaimPatient),
		Encounter:     stringClaim(tok, ClaimEncounter),
		SmartStyleURL: stringClaim(tok, ClaimSmartStyleURL),
		Intent:        stringClaim(tok, ClaimIntent),
		Tenant:        stringClaim(tok, ClaimTenant),
	}
	if tok.Has(ClaimNeedPatientBanner) {
		var b bool
		if err := tok.Get(ClaimNeedPatientBanner, &b); err == nil {
			lc.NeedPatientBanner = &b
		}
	}
	if tok.Has(ClaimFHIRContext) {
		var v any
		if err := tok.Get(ClaimFHIRContext, &v); err == nil {
			lc.FHIRContext = fhirContextItems(v)
		}
	}
	return lc
}

// fhirContextItems are the items of a fhirContext claim's value, each
// marshaled again; nil when the value is not an array.
func fhirContextItems(v any) []json.RawMessage {
	var items []json.RawMessage
	if list, ok := v.([]any); ok {
		for _, item := range list {
			if b, err := json.Marshal(item); err == nil {
				items = append(items, b)
			}
		}
	}
	return items
}

// str reads a string claim of the token.
func (c Claims) str(name string) string {
	if c.f != nil {
		if f, _ := c.f.stringField(name); f != nil {
			return *f
		}
		return ""
	}
	return stringClaim(c.tok, name)
}

// launchContext is LaunchContext for a token the fast path read; the
// fhirContext items are decoded and marshaled again as jwx's are.
func (fc *fastClaims) launchContext() store.LaunchContext {
	lc := store.LaunchContext{
		Patient: fc.patient, Encounter: fc.encounter, SmartStyleURL: fc.style,
		Intent: fc.intent, Tenant: fc.tenant, NeedPatientBanner: fc.banner,
	}
	if fc.fhirContext != nil {
		var v any
		if err := json.Unmarshal(fc.fhirContext, &v); err == nil {
			lc.FHIRContext = fhirContextItems(v)
		}
	}
	return lc
}
