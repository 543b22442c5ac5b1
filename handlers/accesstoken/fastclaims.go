package accesstoken

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/smartcaddy/smartauth/handlers/internal/jsonobj"
)

// Bits of fastClaims.has: which registered claims the token carries.
const (
	hasIss = 1 << iota
	hasSub
	hasJti
	hasExp
	hasIat
	hasNbf
	hasAud
)

// fastClaims are the claims of a token the fast path verified, read once.
type fastClaims struct {
	has                   int
	iss, sub, jti         string
	aud                   []string
	exp, iat, nbf         int64
	clientID, scope       string
	patient, encounter    string
	fhirUser, family      string
	style, intent, tenant string
	banner                *bool
	fhirContext           json.RawMessage
}

// strings maps the string-valued claims to their fields; a claim named
// here that is not a JSON string sends the token to jwx.
func (fc *fastClaims) stringField(name string) (*string, int) {
	switch name {
	case "iss":
		return &fc.iss, hasIss
	case "sub":
		return &fc.sub, hasSub
	case "jti":
		return &fc.jti, hasJti
	case ClaimClientID:
		return &fc.clientID, 0
	case ClaimScope:
		return &fc.scope, 0
	case ClaimPatient:
		return &fc.patient, 0
	case ClaimEncounter:
		return &fc.encounter, 0
	case ClaimFHIRUser:
		return &fc.fhirUser, 0
	case ClaimFamily:
		return &fc.family, 0
	case ClaimSmartStyleURL:
		return &fc.style, 0
	case ClaimIntent:
		return &fc.intent, 0
	case ClaimTenant:
		return &fc.tenant, 0
	}
	return nil, 0
}

// timeField maps the NumericDate claims to their fields.
func (fc *fastClaims) timeField(name string) (*int64, int) {
	switch name {
	case "exp":
		return &fc.exp, hasExp
	case "iat":
		return &fc.iat, hasIat
	case "nbf":
		return &fc.nbf, hasNbf
	}
	return nil, 0
}

// parse reads a payload; false sends the token to jwx: not one JSON
// object, a duplicate member, a claim of an unexpected type, a time that
// is not a plain non-negative integer of at most 12 digits.
func (fc *fastClaims) parse(payload []byte) bool {
	return jsonobj.Walk(payload, func(name string, dec *jsontext.Decoder) bool {
		if f, bit := fc.stringField(name); f != nil {
			s, ok := jsonobj.String(dec)
			*f, fc.has = s, fc.has|bit
			return ok
		}
		if f, bit := fc.timeField(name); f != nil {
			v, ok := jsonobj.NumericDate(dec)
			*f, fc.has = v, fc.has|bit
			return ok
		}
		switch name {
		case "aud":
			fc.has |= hasAud
			aud, ok := jsonobj.Strings(dec)
			fc.aud = aud
			return ok
		case ClaimNeedPatientBanner:
			b, ok := jsonobj.Bool(dec)
			fc.banner = &b
			return ok
		case ClaimFHIRContext:
			return decodesAsAny(dec, &fc.fhirContext)
		}
		var skip json.RawMessage
		return decodesAsAny(dec, &skip)
	})
}

// decodesAsAny reads the next value into raw and tells whether it also
// decodes into an interface value as jwx decodes the claims it does not
// know (numbers as float64: 1e400 fails there, so the token goes to jwx,
// which refuses it).
func decodesAsAny(dec *jsontext.Decoder, raw *json.RawMessage) bool {
	v, err := dec.ReadValue()
	if err != nil {
		return false
	}
	*raw = append(json.RawMessage(nil), v...)
	var x any
	return json.Unmarshal(*raw, &x) == nil
}

// hasAudience tells whether aud contains want.
func (fc *fastClaims) hasAudience(want string) bool {
	return fc.has&hasAud != 0 && slices.Contains(fc.aud, want)
}

// parseHeader reads a protected header of string alg, kid and typ only;
// false for anything else (jwx decides such tokens).
func parseHeader(hdr []byte) (alg, kid, typ string, ok bool) {
	ok = jsonobj.Walk(hdr, func(name string, dec *jsontext.Decoder) bool {
		var f *string
		switch name {
		case "alg":
			f = &alg
		case "kid":
			f = &kid
		case "typ":
			f = &typ
		default:
			return false
		}
		s, ok := jsonobj.String(dec)
		*f = s
		return ok
	})
	return alg, kid, typ, ok && alg != "" && kid != ""
}

// unixUTC is a NumericDate as jwx reads it.
func unixUTC(sec int64) time.Time { return time.Unix(sec, 0).UTC() }
