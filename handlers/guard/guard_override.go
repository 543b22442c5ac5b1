package guard

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/smartcaddy/smartauth/handlers/oauth"
)

// Requests whose method or path an upstream framework could take from
// somewhere else than the request line are refused before anything else:
// the guard authorizes the method and path it sees, and a FHIR server (or
// the framework under it) that honoured an override would act on another
// one — a read-only token could delete. What is refused, under the FHIR
// base, metadata included:
//
//   - a header whose name, read case-insensitively with '_' and '.' as
//     '-' (CGI, PHP and WSGI read X_HTTP_METHOD_OVERRIDE as
//     X-HTTP-Method-Override; Caddy drops such spellings by default),
//     contains "method" — X-HTTP-Method-Override, X-HTTP-Method,
//     X-Method-Override and any other spelling — except
//     Access-Control-Request-Method, which only a CORS preflight carries
//     (answered by the guard, never forwarded);
//   - X-Original-URL, X-Original-URI and X-Rewrite-URL, which IIS, Zend and
//     older Symfony read as the request path;
//   - a parameter named _method (any case; also " method", ".method" and
//     "[method", which PHP reads as _method; with or without a modifier or
//     "[…]" suffix) in the query, the form of a POST _search, an
//     If-None-Exist header, and a Bundle entry's request.url or
//     request.ifNoneExist;
//   - a form body (Content-Type application/x-www-form-urlencoded or
//     multipart/form-data) anywhere but POST [type]/_search and POST
//     _search, whose url-encoded form the guard reads (Rack, Spring,
//     Symfony, Laravel, ASP.NET, gorilla read _method from the form of any
//     POST); more than one Content-Type or If-None-Exist header (the guard
//     reads the first, a server may read another);
//   - declared trailers (a Trailer header): Caddy forwards request
//     trailers, and a server that merges them into the headers would see
//     an override the guard never read.

// pathOverrideHeaders are headers some servers read as the request path.
var pathOverrideHeaders = [...]string{"x-original-url", "x-original-uri", "x-rewrite-url"}

// foldHeaderByte spells one byte of a header name as servers that fold
// case and read '_' and '.' as '-' (CGI, PHP, WSGI) see it.
func foldHeaderByte(c byte) byte {
	switch {
	case c == '_' || c == '.':
		return '-'
	case 'A' <= c && c <= 'Z':
		return c + 'a' - 'A'
	}
	return c
}

// sameHeaderName tells whether two header names are one name for such a
// server (X_Smart_Patient is X-Smart-Patient). (Caddy drops headers
// spelled with '_' or '.' before the guard unless the operator allows
// them by name.) It allocates nothing: the guard runs it on every header
// of every request.
func sameHeaderName(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if foldHeaderByte(a[i]) != foldHeaderByte(b[i]) {
			return false
		}
	}
	return true
}

// overrideHeader returns the name of a header that could make an upstream
// act on another method or path than the request's, or "".
func overrideHeader(h http.Header) string {
	for name := range h {
		if sameHeaderName(name, "access-control-request-method") {
			continue
		}
		for i := 0; i+len("method") <= len(name); i++ {
			if strings.EqualFold(name[i:i+len("method")], "method") {
				return name
			}
		}
		for _, p := range pathOverrideHeaders {
			if sameHeaderName(name, p) {
				return name
			}
		}
	}
	return ""
}

// isMethodParam tells whether a query or form parameter name is read as
// _method by some framework: "_method" in any case, or with the first
// character " ", "." or "[" (PHP turns them into "_"), optionally followed
// by a modifier (":…"), an array suffix ("[…]") or a chain (".…").
func isMethodParam(k string) bool {
	if len(k) < len("_method") || !strings.ContainsRune("_ .[", rune(k[0])) || !strings.EqualFold(k[1:7], "method") {
		return false
	}
	rest := k[7:]
	return rest == "" || strings.ContainsRune(":[.", rune(rest[0]))
}

// refuseMethodParams refuses a parameter list that holds a _method
// parameter; where names the list in the refusal.
func refuseMethodParams(params url.Values, where string) *oauth.Error {
	for k := range params {
		if isMethodParam(k) {
			return badRequest(where + " must not carry a " + k + " parameter (a method override)")
		}
	}
	return nil
}

// formMediaType tells whether a Content-Type names a form body, read
// loosely (case, spaces, parameters), as a lenient server would.
func formMediaType(ct string) (urlencoded, multipart bool) {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/x-www-form-urlencoded", strings.HasPrefix(mt, "multipart/")
}

// refuseRawQuery refuses a raw query string (or If-None-Exist, or a
// Bundle entry's url query) with a character a server could read as the
// end of the query: '#' (a fragment: the parameters after it, the
// compartment restriction the guard appends among them, would be
// dropped), a space or a control character. They must be
// percent-encoded.
func refuseRawQuery(q, where string) *oauth.Error {
	for i := 0; i < len(q); i++ {
		if c := q[i]; c == '#' || c <= ' ' || c == 0x7f {
			return badRequest(where + " must percent-encode '#', spaces and control characters")
		}
	}
	return nil
}

// requestParams are a request's query and If-None-Exist parameters, parsed
// once by refuseOverride for the rest of the guard.
type requestParams struct {
	query, ifNoneExist url.Values
}

// refuseOverride refuses a request under the FHIR base (rel is its path
// relative to the base) that carries a method or path override: see the
// list above. It runs before the token is read, for every request, and
// returns the parsed parameters (parseRequestInteraction reads them).
func refuseOverride(r *http.Request, rel string) (requestParams, *oauth.Error) {
	var rp requestParams
	if name := overrideHeader(r.Header); name != "" {
		return rp, badRequest("the request must not carry a " + name + " header (a method or path override)")
	}
	if len(r.Header.Values("Trailer")) > 0 || len(r.Trailer) > 0 {
		return rp, badRequest("the request must not declare trailers")
	}
	if f := refuseRawQuery(r.URL.RawQuery, "the query string"); f != nil {
		return rp, f
	}
	var err error
	if rp.query, err = url.ParseQuery(r.URL.RawQuery); err != nil {
		return rp, badRequest("the query string is malformed")
	}
	if f := refuseMethodParams(rp.query, "the query string"); f != nil {
		return rp, f
	}
	cts := r.Header.Values("Content-Type")
	if len(cts) > 1 {
		return rp, badRequest("the request must not carry more than one Content-Type header")
	}
	if len(cts) == 1 {
		urlencoded, multipart := formMediaType(cts[0])
		search := r.Method == http.MethodPost && (rel == "_search" || strings.HasSuffix(rel, "/_search"))
		if multipart || urlencoded && !search {
			return rp, badRequest("a form body is only accepted by POST _search (application/x-www-form-urlencoded)")
		}
	}
	if len(r.Header.Values("If-None-Exist")) > 1 {
		// The guard restricts the first; a server may read another.
		return rp, badRequest("the request must not carry more than one If-None-Exist header")
	}
	if h := r.Header.Get("If-None-Exist"); h != "" {
		if f := refuseRawQuery(h, "the If-None-Exist header"); f != nil {
			return rp, f
		}
		if rp.ifNoneExist, err = url.ParseQuery(strings.TrimPrefix(h, "?")); err != nil {
			return rp, badRequest("the If-None-Exist header is malformed")
		}
		if f := refuseMethodParams(rp.ifNoneExist, "the If-None-Exist header"); f != nil {
			return rp, f
		}
	}
	return rp, nil
}
