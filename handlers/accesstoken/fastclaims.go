package accesstoken

import (
	"bytes"
	"encoding/json"
	"io"
	"slices"
	"strconv"
	"time"
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
	return walkObject(payload, func(name string, dec *json.Decoder) bool {
		if f, bit := fc.stringField(name); f != nil {
			s, ok := nextString(dec)
			*f, fc.has = s, fc.has|bit
			return ok
		}
		if f, bit := fc.timeField(name); f != nil {
			t, err := dec.Token()
			n, ok := t.(json.Number)
			if err != nil || !ok || len(n) > 12 || !digits(string(n)) {
				return false
			}
			v, err := strconv.ParseInt(string(n), 10, 64)
			*f, fc.has = v, fc.has|bit
			return err == nil
		}
		switch name {
		case "aud":
			fc.has |= hasAud
			return fc.parseAudience(dec)
		case ClaimNeedPatientBanner:
			t, err := dec.Token()
			b, ok := t.(bool)
			fc.banner = &b
			return err == nil && ok
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
func decodesAsAny(dec *json.Decoder, raw *json.RawMessage) bool {
	if dec.Decode(raw) != nil {
		return false
	}
	var v any
	return json.Unmarshal(*raw, &v) == nil
}

// parseAudience reads aud: one string, or an array of strings.
func (fc *fastClaims) parseAudience(dec *json.Decoder) bool {
	t, err := dec.Token()
	if err != nil {
		return false
	}
	if s, ok := t.(string); ok {
		fc.aud = []string{s}
		return true
	}
	if t != json.Delim('[') {
		return false
	}
	fc.aud = []string{}
	for dec.More() {
		s, ok := nextString(dec)
		if !ok {
			return false
		}
		fc.aud = append(fc.aud, s)
	}
	t, err = dec.Token()
	return err == nil && t == json.Delim(']')
}

// hasAudience tells whether aud contains want.
func (fc *fastClaims) hasAudience(want string) bool {
	return fc.has&hasAud != 0 && slices.Contains(fc.aud, want)
}

// parseHeader reads a protected header of string alg, kid and typ only;
// false for anything else (jwx decides such tokens).
func parseHeader(hdr []byte) (alg, kid, typ string, ok bool) {
	ok = walkObject(hdr, func(name string, dec *json.Decoder) bool {
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
		s, ok := nextString(dec)
		*f = s
		return ok
	})
	return alg, kid, typ, ok && alg != "" && kid != ""
}

// walkObject calls member for each member of the JSON object b, with the
// decoder positioned on its value, which member must consume. It is false
// when b is not exactly one object (white space aside), a member name
// repeats, or member returns false.
func walkObject(b []byte, member func(name string, dec *json.Decoder) bool) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return false
	}
	var seen []string
	for dec.More() {
		t, err := dec.Token()
		name, ok := t.(string)
		if err != nil || !ok || slices.Contains(seen, name) {
			return false
		}
		seen = append(seen, name)
		if !member(name, dec) {
			return false
		}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return false
	}
	_, err := dec.Token()
	return err == io.EOF
}

// nextString reads a JSON string value.
func nextString(dec *json.Decoder) (string, bool) {
	t, err := dec.Token()
	s, ok := t.(string)
	return s, err == nil && ok
}

// digits tells whether s is a non-empty run of ASCII digits.
func digits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// unixUTC is a NumericDate as jwx reads it.
func unixUTC(sec int64) time.Time { return time.Unix(sec, 0).UTC() }
