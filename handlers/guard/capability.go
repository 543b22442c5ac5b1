package guard

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// The SMART security markers of a CapabilityStatement (SMART App Launch
// 2.2 conformance.html).
const (
	oauthURIsExtension = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
	restSecurityCoding = "http://terminology.hl7.org/CodeSystem/restful-security-service"
	smartServiceCode   = "SMART-on-FHIR"
)

// serveCapability passes GET {fhir_base}/metadata through without a token
// (any origin may read it) and adds to the upstream's JSON
// CapabilityStatement what it lacks in rest[0].security: the oauth-uris
// extension (authorize, token, register when enabled, manage, introspect,
// revoke) and the SMART-on-FHIR service coding. Anything else the
// upstream answers (an error, XML, not a CapabilityStatement) passes
// unchanged.
func (g *Guard) serveCapability(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	r.Header.Del("Accept-Encoding")
	cw := newCheckWriter(w, maxCheckedBody)
	if err := next.ServeHTTP(cw, r); err != nil {
		return err
	}
	if !cw.buffering {
		return nil
	}
	if cw.over {
		writeOutcome(w, http.StatusBadGateway, "exception", "the upstream's CapabilityStatement is too large")
		return nil
	}
	cs, ok := parseJSONObject(cw.buf.Bytes())
	if !ok || cs["resourceType"] != "CapabilityStatement" || !g.addSMARTSecurity(cs) {
		return cw.release()
	}
	// Keep the upstream's layout: indented in, indented out.
	var b []byte
	var err error
	if bytes.Contains(cw.buf.Bytes(), []byte("\n  ")) {
		b, err = json.MarshalIndent(cs, "", "  ")
	} else {
		b, err = json.Marshal(cs)
	}
	if err != nil {
		return cw.release()
	}
	h := w.Header()
	h.Del("ETag")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(cw.status)
	_, err = w.Write(b)
	return err
}

// addSMARTSecurity adds the missing SMART markers to a CapabilityStatement
// and tells whether it changed anything.
func (g *Guard) addSMARTSecurity(cs map[string]any) bool {
	rest, _ := cs["rest"].([]any)
	if len(rest) == 0 {
		rest = []any{map[string]any{"mode": "server"}}
		cs["rest"] = rest
	}
	r0, ok := rest[0].(map[string]any)
	if !ok {
		return false
	}
	sec, _ := r0["security"].(map[string]any)
	if sec == nil {
		sec = map[string]any{}
		r0["security"] = sec
	}
	changed := false
	exts, _ := sec["extension"].([]any)
	if !hasURL(exts, oauthURIsExtension) {
		uris := []any{}
		for _, e := range []struct{ name, url string }{
			{"authorize", g.endpoints.Authorize},
			{"token", g.endpoints.Token},
			{"register", g.endpoints.Register},
			{"manage", g.endpoints.Manage},
			{"introspect", g.endpoints.Introspect},
			{"revoke", g.endpoints.Revoke},
		} {
			if e.url != "" {
				uris = append(uris, map[string]any{"url": e.name, "valueUri": e.url})
			}
		}
		sec["extension"] = append(exts, map[string]any{"url": oauthURIsExtension, "extension": uris})
		changed = true
	}
	services, _ := sec["service"].([]any)
	if !hasSMARTService(services) {
		sec["service"] = append(services, map[string]any{
			"coding": []any{map[string]any{"system": restSecurityCoding, "code": smartServiceCode}},
			"text":   "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
		})
		changed = true
	}
	return changed
}

// hasURL tells whether a list of extensions holds one with url u.
func hasURL(exts []any, u string) bool {
	for _, e := range exts {
		if m, ok := e.(map[string]any); ok && m["url"] == u {
			return true
		}
	}
	return false
}

// hasSMARTService tells whether security.service codes SMART-on-FHIR.
func hasSMARTService(services []any) bool {
	for _, sv := range services {
		m, _ := sv.(map[string]any)
		codings, _ := m["coding"].([]any)
		for _, c := range codings {
			if cm, ok := c.(map[string]any); ok && cm["code"] == smartServiceCode {
				return true
			}
		}
	}
	return false
}
