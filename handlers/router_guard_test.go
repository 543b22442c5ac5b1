package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/smartcaddy/smartauth/handlers"
	"github.com/smartcaddy/smartauth/handlers/register"
	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/store"
)

// TestRouterWiresGuard: the router sends {fhir_base}/metadata to the
// guard, which advertises the authorization server's endpoints in the
// CapabilityStatement, the registration endpoint only when registration
// is on; a path outside the FHIR base goes to next untouched.
func TestRouterWiresGuard(t *testing.T) {
	db, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ring, err := keys.New(context.Background(), keys.Options{Store: db, Retain: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	iss, _ := url.Parse("https://auth.example.org/auth")
	fhir, _ := url.Parse("https://fhir.example.org/r4")
	upstream := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/fhir+json")
		_, err := w.Write([]byte(`{"resourceType":"CapabilityStatement","rest":[{"mode":"server"}]}`))
		return err
	})
	for _, registration := range []bool{false, true} {
		s, err := handlers.New(handlers.Config{
			Issuer: iss, FHIRBase: fhir, Store: db, Keys: ring,
			Registration: register.Settings{Enabled: registration},
		})
		if err != nil {
			t.Fatal(err)
		}
		uris := map[string]string{}
		req := httptest.NewRequest(http.MethodGet, "https://fhir.example.org/r4/metadata", nil)
		req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
		w := httptest.NewRecorder()
		if err := s.ServeHTTP(w, req, upstream); err != nil || w.Code != http.StatusOK {
			t.Fatalf("metadata: %v %d %s", err, w.Code, w.Body)
		}
		var cs struct {
			Rest []struct {
				Security struct {
					Extension []struct {
						Extension []struct {
							URL      string `json:"url"`
							ValueURI string `json:"valueUri"`
						} `json:"extension"`
					} `json:"extension"`
				} `json:"security"`
			} `json:"rest"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &cs); err != nil || len(cs.Rest) != 1 || len(cs.Rest[0].Security.Extension) != 1 {
			t.Fatalf("registration %v: %v %s", registration, err, w.Body)
		}
		for _, e := range cs.Rest[0].Security.Extension[0].Extension {
			uris[e.URL] = e.ValueURI
		}
		want := map[string]string{}
		for _, name := range []string{"authorize", "token", "manage", "introspect", "revoke"} {
			want[name] = iss.String() + "/" + name
		}
		if registration {
			want["register"] = iss.String() + "/register"
		}
		if len(uris) != len(want) {
			t.Errorf("registration %v: oauth-uris %v, want %v", registration, uris, want)
		}
		for name, u := range want {
			if uris[name] != u {
				t.Errorf("registration %v: oauth-uris %s = %q, want %q", registration, name, uris[name], u)
			}
		}
		reached := false
		other := httptest.NewRequest(http.MethodGet, "https://fhir.example.org/elsewhere", nil)
		next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { reached = true; return nil })
		if err := s.ServeHTTP(httptest.NewRecorder(), other, next); err != nil || !reached {
			t.Errorf("a path outside the FHIR base did not go to next: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
