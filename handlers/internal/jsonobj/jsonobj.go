// Package jsonobj reads the JSON objects of compact JWS headers and claims
// on the fast paths of token and assertion verification: one strict pass
// (jsontext's defaults: duplicate member names and invalid UTF-8 are
// errors), member by member, with pooled decoders. Callers send whatever
// it refuses to jwx, which decides.
package jsonobj

import (
	"bytes"
	"io"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
)

// reader is a JSON decoder with the reader it reads from.
type reader struct {
	rd  bytes.Reader
	dec *jsontext.Decoder
}

// decoders recycles the decoders of Walk.
var decoders = sync.Pool{New: func() any {
	o := &reader{}
	o.dec = jsontext.NewDecoder(&o.rd)
	return o
}}

// Walk calls member for each member of the JSON object b, with the
// decoder positioned on its value, which member must consume. It is false
// when b is not exactly one object (white space aside), is not valid JSON
// in valid UTF-8, a member name repeats, or member returns false. The
// decoder must not be kept after member returns.
func Walk(b []byte, member func(name string, dec *jsontext.Decoder) bool) bool {
	o := decoders.Get().(*reader)
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

// String reads a JSON string value.
func String(dec *jsontext.Decoder) (string, bool) {
	t, err := dec.ReadToken()
	if err != nil || t.Kind() != '"' {
		return "", false
	}
	return t.String(), true
}

// Strings reads a JSON string, or an array of strings (an audience).
func Strings(dec *jsontext.Decoder) ([]string, bool) {
	t, err := dec.ReadToken()
	switch {
	case err != nil:
		return nil, false
	case t.Kind() == '"':
		return []string{t.String()}, true
	case t.Kind() != '[':
		return nil, false
	}
	out := []string{}
	for dec.PeekKind() != ']' {
		s, ok := String(dec)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	t, err = dec.ReadToken()
	return out, err == nil && t.Kind() == ']'
}

// NumericDate reads a JWT NumericDate in the form the fast paths accept:
// a plain non-negative integer of at most 12 digits (no sign, fraction or
// exponent).
func NumericDate(dec *jsontext.Decoder) (int64, bool) {
	t, err := dec.ReadToken()
	if err != nil || t.Kind() != '0' {
		return 0, false
	}
	n := t.String()
	if len(n) == 0 || len(n) > 12 {
		return 0, false
	}
	var v int64
	for i := range len(n) {
		c := n[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

// Bool reads a JSON true or false.
func Bool(dec *jsontext.Decoder) (bool, bool) {
	t, err := dec.ReadToken()
	if err != nil || (t.Kind() != 't' && t.Kind() != 'f') {
		return false, false
	}
	return t.Kind() == 't', true
}
