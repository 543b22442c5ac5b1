package guard

import (
	"net/http"
	"strings"
	"testing"

	"github.com/smartcaddy/smartauth/handlers/oauth"
)

// FuzzBearerToken checks the bearer parse (oauth.BearerToken) on any
// Authorization header values (one per line of the input; "$TOKEN"
// stands for a valid access token), alone and through the guard:
//   - a token is found only in exactly one Authorization header whose
//     scheme is Bearer (any case), and is the rest of it without
//     surrounding white space, never empty;
//   - the token found round-trips through "Bearer <token>";
//   - the guard lets a request through exactly when the token found is a
//     valid one, and otherwise answers 401 with a Bearer challenge and an
//     OperationOutcome; the upstream never sees a refused request.
func FuzzBearerToken(f *testing.F) {
	e := newFuzzEnv(f)
	for _, s := range []string{
		"Bearer $TOKEN", "bearer $TOKEN", "BEARER   $TOKEN  ", "Bearer\t$TOKEN", "Bearer $TOKEN\nBearer $TOKEN",
		"Basic YXBwOnNlY3JldA==", "Bearer", "Bearer ", "Bearer $TOKENx", "Bearer x$TOKEN", "Bearer $TOKEN x",
		"Bearer  \u00a0$TOKEN\u00a0", "Bearer $TOKEN,Bearer $TOKEN", "Token $TOKEN", "", "\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		in = strings.ReplaceAll(in, "$TOKEN", e.token)
		var values []string
		if in != "" {
			values = strings.Split(in, "\n")
		}
		r := &http.Request{Header: http.Header{"Authorization": values}}
		tok, ok := oauth.BearerToken(r)
		if ok {
			scheme, rest, found := strings.Cut(values[0], " ")
			switch {
			case len(values) != 1:
				t.Fatalf("%q: a token from %d Authorization headers", values, len(values))
			case !found || !strings.EqualFold(scheme, "Bearer"):
				t.Fatalf("%q: a token without the Bearer scheme", values[0])
			case tok == "" || tok != strings.TrimSpace(rest):
				t.Fatalf("%q: token %q", values[0], tok)
			}
			again, ok2 := oauth.BearerToken(&http.Request{Header: http.Header{"Authorization": {"Bearer " + tok}}})
			if !ok2 || again != tok {
				t.Fatalf("token %q does not round-trip: %q %v", tok, again, ok2)
			}
		} else if tok != "" {
			t.Fatalf("%q: not found, yet token %q", values, tok)
		}
		for _, v := range values {
			if !validHeader(v) {
				return // no client can send it
			}
		}
		req, _ := newFuzzRequest(http.MethodGet, "/fhir/Patient/"+fzPatient, nil)
		req.Header["Authorization"] = values
		up := &upstream{}
		w := e.serve(req, up)
		reached := len(up.calls) > 0
		valid := ok && tok == e.token
		switch {
		case valid && (!reached || w.Code != http.StatusOK):
			t.Fatalf("%q: a valid token was refused: %d %s", values, w.Code, w.Body)
		case !valid && reached:
			t.Fatalf("%q: reached the upstream without a valid token", values)
		case !valid && (w.Code != http.StatusUnauthorized || !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), `Bearer realm="`)):
			t.Fatalf("%q: refused with %d, challenge %q", values, w.Code, w.Header().Get("WWW-Authenticate"))
		case !valid:
			checkOutcome(t, w)
		}
	})
}
