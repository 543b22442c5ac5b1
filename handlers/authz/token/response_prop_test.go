package token

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"testing"

	"pgregory.net/rapid"

	"github.com/smartcaddy/smartauth/store"
)

// TestTokenResponseJSON checks, over generated responses (plain and
// awkward strings, each optional member present or not, launch context
// with and without fhirContext), that writeTokenResponse sends exactly
// what oauth.WriteJSON sent before it: encoding/json's bytes, status 200,
// application/json and an exact Content-Length.
func TestTokenResponseJSON(t *testing.T) {
	str := rapid.OneOf(rapid.SampledFrom([]string{"", "Bearer", "system/Patient.rs launch", "eyJhbGciOi.x_y-z.0"}),
		rapid.StringMatching(`[ -~]{0,12}`), rapid.String())
	opt := func(t *rapid.T, label string) string {
		if rapid.Bool().Draw(t, label+"?") {
			return str.Draw(t, label)
		}
		return ""
	}
	rapid.Check(t, func(rt *rapid.T) {
		resp := &tokenResponse{
			AccessToken: str.Draw(rt, "access_token"), TokenType: str.Draw(rt, "token_type"),
			ExpiresIn: rapid.Int64().Draw(rt, "expires_in"), Scope: str.Draw(rt, "scope"),
			RefreshToken: opt(rt, "refresh_token"), IDToken: opt(rt, "id_token"),
			LaunchContext: store.LaunchContext{Patient: opt(rt, "patient"), Encounter: opt(rt, "encounter"),
				SmartStyleURL: opt(rt, "style"), Intent: opt(rt, "intent"), Tenant: opt(rt, "tenant")},
			subject: opt(rt, "subject"),
		}
		if rapid.Bool().Draw(rt, "banner?") {
			b := rapid.Bool().Draw(rt, "banner")
			resp.NeedPatientBanner = &b
		}
		if rapid.Bool().Draw(rt, "fhirContext?") {
			resp.FHIRContext = []json.RawMessage{json.RawMessage(`{"reference":"Patient/1"}`)}
		}
		want, err := json.Marshal(resp)
		if err != nil {
			rt.Fatal(err)
		}
		w := httptest.NewRecorder()
		writeTokenResponse(w, resp)
		if !bytes.Equal(w.Body.Bytes(), want) {
			rt.Fatalf("sent %s\nencoding/json %s", w.Body.Bytes(), want)
		}
		h := w.Result().Header
		if w.Code != 200 || h.Get("Content-Type") != "application/json" || h.Get("Content-Length") != itoa(len(want)) {
			rt.Fatalf("%d %v", w.Code, h)
		}
	})
}

// itoa formats a length as Content-Length does.
func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestTokenResponseJSONCoversEveryField sets every field of tokenResponse
// (embedded launch context included) by reflection and requires
// writeTokenResponse to send what encoding/json sends: a field added to
// the response and not to appendJSON fails here instead of silently
// disappearing from token responses.
func TestTokenResponseJSONCoversEveryField(t *testing.T) {
	resp := &tokenResponse{}
	var fill func(v reflect.Value)
	fill = func(v reflect.Value) {
		for i := range v.NumField() {
			f, sf := v.Field(i), v.Type().Field(i)
			switch {
			case !sf.IsExported():
			case sf.Anonymous && f.Kind() == reflect.Struct:
				fill(f)
			case sf.Name == "FHIRContext": // sent through encoding/json (appendJSON declines)
			case f.Kind() == reflect.String:
				f.SetString("v-" + sf.Name)
			case f.Kind() == reflect.Int64:
				f.SetInt(3600)
			case f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.Bool:
				b := true
				f.Set(reflect.ValueOf(&b))
			default:
				t.Fatalf("tokenResponse.%s is a %s: teach appendJSON (and this test) to write it", sf.Name, f.Type())
			}
		}
	}
	fill(reflect.ValueOf(resp).Elem())
	want, err := json.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	writeTokenResponse(w, resp)
	if !bytes.Equal(w.Body.Bytes(), want) {
		t.Fatalf("sent %s\nencoding/json %s", w.Body.Bytes(), want)
	}
}
