package accesstoken

import (
	"bytes"
	"encoding/json"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"
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
	return walkObject(payload, func(name string, dec *jsontext.Decoder) bool {
		if f, bit := fc.stringField(name); f != nil {
			s, ok := nextString(dec)
			*f, fc.has = s, fc.has|bit
			return ok
		}
		if f, bit := fc.timeField(name); f != nil {
			t, err := dec.ReadToken()
			if err != nil || t.Kind() != '0' {
				return false
			}
			n := t.String()
			if len(n) > 12 || !digits(n) {
				return false
			}
			v, err := strconv.ParseInt(n, 10, 64)
			*f, fc.has = v, fc.has|bit
			return err == nil
		}
		switch name {
		case "aud":
			fc.has |= hasAud
			return fc.parseAudience(dec)
		case ClaimNeedPatientBanner:
			t, err := dec.ReadToken()
			if err != nil || (t.Kind() != 't' && t.Kind() != 'f') {
				return false
			}
			b := t.Kind() == 't'
			fc.banner = &b
			return true
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

// parseAudience reads aud: one string, or an array of strings.
func (fc *fastClaims) parseAudience(dec *jsontext.Decoder) bool {
	t, err := dec.ReadToken()
	switch {
	case err != nil:
		return false
	case t.Kind() == '"':
		fc.aud = []string{t.String()}
		return true
	case t.Kind() != '[':
		return false
	}
	fc.aud = []string{}
	for dec.PeekKind() != ']' {
		s, ok := nextString(dec)
		if !ok {
			return false
		}
		fc.aud = append(fc.aud, s)
	}
	t, err = dec.ReadToken()
	return err == nil && t.Kind() == ']'
}

// hasAudience tells whether aud contains want.
func (fc *fastClaims) hasAudience(want string) bool {
	return fc.has&hasAud != 0 && slices.Contains(fc.aud, want)
}

// parseHeader reads a protected header of string alg, kid and typ only;
// false for anything else (jwx decides such tokens).
func parseHeader(hdr []byte) (alg, kid, typ string, ok bool) {
	ok = walkObject(hdr, func(name string, dec *jsontext.Decoder) bool {
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

// objectReader is a JSON decoder with the reader it reads from.
type objectReader struct {
	rd  bytes.Reader
	dec *jsontext.Decoder
}

// decoders recycles the JSON decoders of walkObject.
var decoders = sync.Pool{New: func() any {
	o := &objectReader{}
	o.dec = jsontext.NewDecoder(&o.rd)
	return o
}}

// walkObject calls member for each member of the JSON object b, with the
// decoder positioned on its value, which member must consume. It is false
// when b is not exactly one object (white space aside), is not valid JSON
// in valid UTF-8 (jsontext's strict defaults), a member name repeats, or
// member returns false.
func walkObject(b []byte, member func(name string, dec *jsontext.Decoder) bool) bool {
	o := decoders.Get().(*objectReader)
	o.rd.Reset(b)
	dec := o.dec
	dec.Reset(&o.rd) // strict defaults: duplicate names and invalid UTF-8 are errors
	defer func() {
		o.rd.Reset(nil)
		dec.Reset(&o.rd)
		decoders.Put(o)
	}()
	if t, err := dec.ReadToken(); err != nil || t.Kind() != '{' {
		return false
	}
	for dec.PeekKind() == '"' {
		t, err := dec.ReadToken()
		if err != nil || !member(t.String(), dec) {
			return false
		}
	}
	if t, err := dec.ReadToken(); err != nil || t.Kind() != '}' {
		return false
	}
	_, err := dec.ReadToken()
	return err == io.EOF
}

// nextString reads a JSON string value.
func nextString(dec *jsontext.Decoder) (string, bool) {
	t, err := dec.ReadToken()
	if err != nil || t.Kind() != '"' {
		return "", false
	}
	return t.String(), true
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
