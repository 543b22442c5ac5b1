package guard

import "net/http"

// Methods and response headers browser apps need on the FHIR API.
const (
	corsMethods       = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
	corsDefaultHeader = "Authorization, Content-Type, Accept, If-Match, If-None-Match, If-None-Exist, If-Modified-Since, Prefer"
	corsExpose        = "Location, Content-Location, ETag, Last-Modified, WWW-Authenticate"
)

// guardCORS puts Access-Control-Allow-Origin on every guarded response for
// an allowed origin (so that an app sees a 401 or 403 rather than a
// network error), and answers a CORS preflight without a token. It tells
// whether the request was answered.
func (g *Guard) guardCORS(w http.ResponseWriter, r *http.Request) bool {
	h := w.Header()
	h.Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	allowed := origin != "" && g.gs.originAllowed(origin)
	if allowed {
		if g.gs.anyOrigin {
			h.Set("Access-Control-Allow-Origin", "*")
		} else {
			h.Set("Access-Control-Allow-Origin", origin)
		}
		h.Set("Access-Control-Expose-Headers", corsExpose)
	}
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		return false
	}
	if allowed {
		h.Set("Access-Control-Allow-Methods", corsMethods)
		if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
			h.Set("Access-Control-Allow-Headers", req)
		} else {
			h.Set("Access-Control-Allow-Headers", corsDefaultHeader)
		}
		h.Set("Access-Control-Max-Age", "600")
	}
	w.WriteHeader(http.StatusNoContent)
	return true
}
