package clients

import (
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/smartcaddy/smartauth/handlers/internal/compactjws"
	"github.com/smartcaddy/smartauth/handlers/internal/jsonobj"
	"github.com/smartcaddy/smartauth/handlers/oauth"
)

// maxFastAssertion bounds the client assertions the fast parser reads;
// longer ones (a few hundred bytes is usual) go to jwx.
const maxFastAssertion = 8192

// parseAssertionFast reads a compact JWS client assertion in one pass,
// as parseAssertionJWX would, and checks its header in the same order
// with the same answers. It decides only assertions in its domain (ok):
// three non-empty parts of strict unpadded base64url; a header of string
// alg (one of clientAssertionAlgs), kid, typ and jku only; claims of
// string iss, sub and jti, aud a string or an array of strings, exp, iat
// and nbf plain non-negative integers, and nothing else; JSON without
// duplicate names, in valid UTF-8. For anything else ok is false and jwx
// reads the assertion (FuzzAssertionFast checks that both decide alike).
func parseAssertionFast(raw string) (a *assertion, f *oauth.Error, ok bool) {
	if len(raw) > maxFastAssertion {
		return nil, nil, false
	}
	h, pl, sg, ok := compactjws.Split(raw)
	if !ok {
		return nil, nil, false
	}
	// One buffer holds a copy of the token, whose bytes up to the second
	// dot are the signing input, then the decoded header, payload and
	// signature.
	buf := append(make([]byte, 0, 2*len(raw)), raw...)
	hdr, ok1 := compactjws.Decode(buf, h)
	payload, ok2 := compactjws.Decode(hdr[len(hdr):], pl)
	sig, ok3 := compactjws.Decode(payload[len(payload):], sg)
	if !ok1 || !ok2 || !ok3 {
		return nil, nil, false
	}
	input := buf[: len(h)+1+len(pl) : len(h)+1+len(pl)]
	a = &assertion{input: input, sig: sig}
	var typ string
	hasTyp := false
	if !jsonobj.Walk(hdr, func(name string, dec *jsontext.Decoder) bool {
		var dst *string
		switch name {
		case "alg":
			dst = &a.alg
		case "kid":
			dst = &a.kid
		case "typ":
			dst, hasTyp = &typ, true
		case "jku":
			dst, a.hasJKU = &a.jku, true
		default:
			return false
		}
		s, ok := jsonobj.String(dec)
		*dst = s
		return ok
	}) {
		return nil, nil, false
	}
	// An algorithm that is not accepted is refused by jwx, in its words.
	if _, accepted := clientAssertionAlgs[a.alg]; !accepted {
		return nil, nil, false
	}
	switch {
	case a.kid == "":
		return nil, badAssertion(reasonNoKID), true
	case hasTyp && !strings.EqualFold(typ, "JWT"):
		return nil, badAssertion(reasonTyp), true
	}
	c := &fastAssertionClaims{}
	if !c.parse(payload) {
		return nil, nil, false
	}
	if c.iss == "" {
		return nil, badAssertion(reasonNoIss), true
	}
	a.iss, a.claims = c.iss, c
	return a, nil, true
}

// Bits of fastAssertionClaims.has: the claims present.
const (
	claimSub = 1 << iota
	claimAud
	claimExp
	claimIat
	claimNbf
	claimJTI
)

// fastAssertionClaims are the claims of a client assertion the fast
// parser read.
type fastAssertionClaims struct {
	has           int
	iss, sub, jti string
	aud           []string
	exp, iat, nbf int64
}

// parse reads the claims; false sends the assertion to jwx: not one JSON
// object, a duplicate name, a claim other than iss, sub, aud, exp, iat,
// nbf and jti, or one of an unexpected type or form.
func (c *fastAssertionClaims) parse(payload []byte) bool {
	return jsonobj.Walk(payload, func(name string, dec *jsontext.Decoder) bool {
		var s *string
		var t *int64
		bit := 0
		switch name {
		case "iss":
			s = &c.iss
		case "sub":
			s, bit = &c.sub, claimSub
		case "jti":
			s, bit = &c.jti, claimJTI
		case "exp":
			t, bit = &c.exp, claimExp
		case "iat":
			t, bit = &c.iat, claimIat
		case "nbf":
			t, bit = &c.nbf, claimNbf
		case "aud":
			aud, ok := jsonobj.Strings(dec)
			c.aud, c.has = aud, c.has|claimAud
			return ok
		default:
			return false
		}
		c.has |= bit
		var ok bool
		if s != nil {
			*s, ok = jsonobj.String(dec)
		} else {
			*t, ok = jsonobj.NumericDate(dec)
		}
		return ok
	})
}

// validate checks the claims as jwt.Validate does with the options of
// jwxClaims.validate, in its order and with its answers: iat, exp and nbf
// with the skew, then iss, sub, and aud, exp and jti present.
func (c *fastAssertionClaims) validate(clientID string, now time.Time) string {
	at := func(sec int64) time.Time { return time.Unix(sec, 0) }
	switch {
	case c.has&claimIat != 0 && now.Before(at(c.iat).Add(-clientAssertionSkew)):
		return reasonIssuedFuture
	case c.has&claimExp != 0 && !now.Before(at(c.exp).Add(clientAssertionSkew)):
		return reasonExpired
	case c.has&claimNbf != 0 && now.Before(at(c.nbf).Add(-clientAssertionSkew)):
		return reasonNotYetValid
	case c.iss != clientID:
		return reasonIssuer
	case c.has&claimSub == 0 || c.sub != clientID:
		return reasonClaimsInvalid
	case c.has&(claimAud|claimExp|claimJTI) != claimAud|claimExp|claimJTI:
		return reasonRequired
	}
	return ""
}

// audience is the aud claim.
func (c *fastAssertionClaims) audience() []string { return c.aud }

// expiration is the exp claim.
func (c *fastAssertionClaims) expiration() time.Time {
	if c.has&claimExp == 0 {
		return time.Time{}
	}
	return time.Unix(c.exp, 0).UTC()
}

// jwtID is the jti claim.
func (c *fastAssertionClaims) jwtID() string { return c.jti }
