package authz

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/handlers/users"
)

// TestParseClaimTemplate: claim names and {claims.x} templates parse and
// render; anything else is refused.
func TestParseClaimTemplate(t *testing.T) {
	claims := map[string]any{"fhirUser": "Practitioner/p1", "employee_id": "E 1", "num": float64(42), "list": []any{"a"}}
	for in, want := range map[string]string{
		"":                                   "",
		"fhirUser":                           "Practitioner/p1",
		"Practitioner/{claims.num}":          "Practitioner/42",
		"{claims.fhirUser}":                  "Practitioner/p1",
		"Practitioner/{claims.missing}":      "",
		"Practitioner/{claims.list}":         "",
		"x{claims.num}-{claims.employee_id}": "x42-E 1",
	} {
		tmpl, err := ParseClaimTemplate(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if got := tmpl.render(claims); got != want {
			t.Errorf("%q rendered %q, want %q", in, got, want)
		}
	}
	for _, bad := range []string{"a b", "{env.SECRET}", "Practitioner/{claims.x", "{claims.}", "x}{claims.a}", "{claims.a}{y}"} {
		if _, err := ParseClaimTemplate(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestMapUser: require rules, configured users by claim, unlisted users
// with a fhirUser only when it is a FHIR user reference, and scopes
// narrowed by a claim.
func TestMapUser(t *testing.T) {
	tmpl, _ := ParseClaimTemplate("fhirUser")
	c := &idpClient{cfg: IdentityProvider{Name: "h", DisplayName: "H", UsernameClaim: "preferred_username", DisplayNameClaim: "name",
		AcceptUnlisted: true, UserScopes: []string{"user/*.rs"}, ScopesClaim: "smart",
		Require: []ClaimRule{{Claim: "groups", Values: []string{"staff"}}}}, fhirUser: tmpl}
	configured := map[string]*users.User{"alice": {Name: "alice"}}
	base := "https://fhir.example/r4"
	claims := func(kv ...any) map[string]any {
		m := map[string]any{"groups": []any{"staff"}, "smart": "user/Observation.rs user/*.cruds"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	sub, fed, err := c.mapUser(claims("preferred_username", "alice"), configured, base)
	if err != nil || sub != "alice" || fed != nil {
		t.Errorf("configured user: %q %+v %v", sub, fed, err)
	}
	sub, fed, err = c.mapUser(claims("preferred_username", "erin", "fhirUser", base+"/Practitioner/E1", "name", "Erin"), configured, base)
	if err != nil || sub != "h|erin" || fed.FHIRUser != "Practitioner/E1" || fed.DisplayName != "Erin" || !slices.Equal(fed.Scopes, []string{"user/Observation.rs"}) {
		t.Errorf("unlisted user: %q %+v %v", sub, fed, err)
	}
	for name, m := range map[string]map[string]any{
		"not in the group":  {"preferred_username": "x", "groups": []any{"guests"}, "smart": "user/*.rs"},
		"no username":       claims(),
		"username control":  claims("preferred_username", "a\nb"),
		"scopes widen only": claims("preferred_username", "erin", "smart", "user/*.cruds"),
		"no scopes claim":   {"preferred_username": "erin", "groups": []any{"staff"}},
	} {
		var r *idpRefusal
		if _, _, err := c.mapUser(m, configured, base); !errors.As(err, &r) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, v := range []string{"https://other.example/Practitioner/E1", "Observation/1", "Practitioner/../x"} {
		if _, fed, err := c.mapUser(claims("preferred_username", "erin", "fhirUser", v), configured, base); err != nil || fed.FHIRUser != "" {
			t.Errorf("fhirUser %q kept: %+v %v", v, fed, err)
		}
	}
	c.cfg.AcceptUnlisted = false
	if _, _, err := c.mapUser(claims("preferred_username", "erin"), configured, base); err == nil {
		t.Error("an unlisted user accepted by a provider that does not accept them")
	}
}

// TestIDPStateCookie: the sealed state opens only for its state, issuer
// and site secret, and not once expired or altered.
func TestIDPStateCookie(t *testing.T) {
	secret := make([]byte, 32)
	keys, err := deriveSiteKeys(secret)
	if err != nil {
		t.Fatal(err)
	}
	iss, _ := url.Parse("https://auth.example/a")
	s := &Server{cfg: Options{Issuer: iss}, keys: keys, issuerPath: "/a", sessions: &sessions{issuer: iss}}
	now := time.Now()
	st := idpState{Provider: "h", State: "state-0123456789abcdef", Nonce: "n", Verifier: "v", Started: now.UnixNano(), Expires: now.Add(time.Minute).UnixNano()}
	w := httptest.NewRecorder()
	if !s.setIDPState(w, st) {
		t.Fatal("not sealed")
	}
	cookie := w.Result().Cookies()[0]
	if !cookie.HttpOnly || !cookie.Secure || cookie.Path != "/a"+pathIDPCallback || cookie.SameSite != http.SameSiteLaxMode {
		t.Errorf("cookie attributes: %+v", cookie)
	}
	open := func(c *http.Cookie, state string, at time.Time, srv *Server) bool {
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(c)
		_, ok := srv.readIDPState(r, state, at)
		return ok
	}
	if !open(cookie, st.State, now, s) {
		t.Fatal("the state does not open")
	}
	if open(cookie, st.State[:16]+"-other-suffix", now, s) {
		t.Error("another state with the same prefix opens it")
	}
	if open(cookie, st.State, now.Add(2*time.Minute), s) {
		t.Error("an expired state opens")
	}
	altered := *cookie
	altered.Value = cookie.Value[:len(cookie.Value)-2] + "AA"
	if open(&altered, st.State, now, s) {
		t.Error("an altered state opens")
	}
	other, _ := url.Parse("https://other.example")
	if open(cookie, st.State, now, &Server{cfg: Options{Issuer: other}, keys: keys, sessions: &sessions{issuer: other}}) {
		t.Error("another issuer opens it")
	}
	keys2, _ := deriveSiteKeys(append([]byte{1}, secret[1:]...))
	if open(cookie, st.State, now, &Server{cfg: Options{Issuer: iss}, keys: keys2, sessions: &sessions{issuer: iss}}) {
		t.Error("another site secret opens it")
	}
}
