package guard

import (
	"bytes"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/smartcaddy/smartauth/handlers/oauth"
)

// checkWriter buffers a 2xx response (up to a limit) so that the guard can
// check it before anything reaches the client; other statuses pass
// through unchanged.
type checkWriter struct {
	*caddyhttp.ResponseWriterWrapper
	status    int
	buffering bool
	over      bool
	limit     int
	buf       bytes.Buffer
}

// newCheckWriter wraps w, buffering a 2xx answer of up to limit bytes.
func newCheckWriter(w http.ResponseWriter, limit int) *checkWriter {
	return &checkWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, limit: limit}
}

// WriteHeader starts buffering a 2xx response, passes others on.
func (c *checkWriter) WriteHeader(status int) {
	if c.status != 0 {
		return
	}
	if status < 200 {
		c.ResponseWriterWrapper.WriteHeader(status)
		return
	}
	c.status = status
	if status < 300 {
		c.buffering = true
		return
	}
	c.ResponseWriterWrapper.WriteHeader(status)
}

// Write buffers or passes on; beyond the limit it discards and remembers.
func (c *checkWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	if !c.buffering {
		return c.ResponseWriterWrapper.Write(b)
	}
	if c.buf.Len()+len(b) > c.limit {
		c.over = true
		return len(b), nil
	}
	return c.buf.Write(b)
}

// Flush does nothing while buffering.
func (c *checkWriter) Flush() {
	if !c.buffering && c.status != 0 {
		_ = http.NewResponseController(c.ResponseWriterWrapper).Flush()
	}
}

// FlushError is Flush for http.ResponseController.
func (c *checkWriter) FlushError() error {
	c.Flush()
	return nil
}

// release writes the buffered response to the client as it came.
func (c *checkWriter) release() error {
	h := c.ResponseWriterWrapper.Header()
	if c.buf.Len() > 0 || h.Get("Content-Length") == "" {
		h.Set("Content-Length", strconv.Itoa(c.buf.Len()))
	}
	c.ResponseWriterWrapper.WriteHeader(c.status)
	_, err := c.ResponseWriterWrapper.Write(c.buf.Bytes())
	return err
}

// replace throws the buffered response away, with every header the
// upstream set, and writes a refusal instead.
func (g *Guard) replaceResponse(w http.ResponseWriter, saved http.Header, f *oauth.Error) {
	h := w.Header()
	clear(h)
	for k, v := range saved {
		h[k] = v
	}
	g.writeGuardFault(w, f)
}

// prepareForCheck makes the upstream answer in plain JSON: no
// compression, no _format, Accept application/fhir+json.
func prepareForCheck(r *http.Request) {
	r.Header.Del("Accept-Encoding")
	r.Header.Set("Accept", "application/fhir+json")
	if q := r.URL.Query(); q.Has("_format") {
		q.Del("_format")
		r.URL.RawQuery = q.Encode()
	}
}

// serveChecked passes an allowed request on under the compartment checks
// that need the upstream: a write first reads the stored resource, a read
// has its answer checked before it is released.
func (g *Guard) serveChecked(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, pl *plan, a *audit) error {
	base := g.base
	if pl.precheck {
		if f := g.precheck(r, next, pl); f != nil {
			a.reason = f.Description
			g.refuse(w, a, f)
			return nil
		}
	}
	if !pl.checkResponse {
		a.allowed, a.reason = true, pl.reason
		g.logDecision(a)
		return next.ServeHTTP(w, r)
	}
	prepareForCheck(r)
	// A HEAD is checked on the GET's body; only the headers go back.
	head := r.Method == http.MethodHead
	if head {
		r.Method = http.MethodGet
	}
	saved := w.Header().Clone()
	cw := newCheckWriter(w, maxCheckedBody)
	if err := next.ServeHTTP(cw, r); err != nil {
		return err
	}
	if !cw.buffering {
		a.allowed, a.reason = true, pl.reason+" (upstream answered "+strconv.Itoa(cw.status)+")"
		g.logDecision(a)
		return nil
	}
	var f *oauth.Error
	var res map[string]any
	var msg string
	var err error
	if !cw.over {
		res, msg, err = parseCheckedJSON(cw.buf.Bytes())
	}
	switch {
	case cw.over:
		f = &oauth.Error{Status: http.StatusBadGateway, Description: "the upstream's answer is too large to be checked"}
	case errors.Is(err, errJSONKeys):
		f = &oauth.Error{Status: http.StatusBadGateway, Description: "the upstream's answer cannot be checked: " + msg}
	case err != nil:
		f = &oauth.Error{Status: http.StatusBadGateway, Description: "the upstream's answer is not a JSON resource"}
	case res["resourceType"] == "Bundle" && !bundleBelongs(pl.resourceType, res, pl.patient, base),
		res["resourceType"] != "Bundle" && !resourceBelongs(pl.resourceType, res, pl.patient, base):
		f = forbidden("", "the resource is not in the patient's compartment")
	}
	if f != nil {
		a.reason, a.fault = f.Description, f
		a.allowed = false
		g.logDecision(a)
		g.replaceResponse(w, saved, f)
		return nil
	}
	a.allowed, a.reason = true, pl.reason+" (response checked)"
	g.logDecision(a)
	if head {
		cw.buf.Reset()
	}
	return cw.release()
}

// captureWriter records a whole response away from the client (the
// pre-check read).
type captureWriter struct {
	header http.Header
	status int
	over   bool
	buf    bytes.Buffer
}

// Header is the captured answer's header.
func (c *captureWriter) Header() http.Header { return c.header }

// WriteHeader records the first final status.
func (c *captureWriter) WriteHeader(status int) {
	if c.status == 0 && status >= 200 {
		c.status = status
	}
}

// Write captures up to maxCheckedBody bytes; beyond, it discards and
// remembers.
func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	if c.buf.Len()+len(b) > maxCheckedBody {
		c.over = true
		return len(b), nil
	}
	return c.buf.Write(b)
}

// precheck reads the resource a write under patient/ scopes targets,
// through the same upstream, and lets the write go on only when the
// patient may write it (resourceWritable: its primary patient reference
// is the patient, no compartment element names another), or (for an
// update, which may create it) it does not exist.
func (g *Guard) precheck(r *http.Request, next caddyhttp.Handler, pl *plan) *oauth.Error {
	get := r.Clone(r.Context())
	get.Method = http.MethodGet
	get.Body = http.NoBody
	get.ContentLength = 0
	get.URL = &url.URL{Path: r.URL.Path}
	get.RequestURI = get.URL.RequestURI()
	for _, h := range []string{"Content-Type", "Content-Length", "If-Match", "If-None-Match", "If-None-Exist", "Prefer", "Transfer-Encoding"} {
		get.Header.Del(h)
	}
	prepareForCheck(get)
	cw := &captureWriter{header: http.Header{}}
	if err := next.ServeHTTP(cw, get); err != nil {
		return &oauth.Error{Status: http.StatusBadGateway, Description: "the stored resource could not be read to check it"}
	}
	switch {
	case cw.status == http.StatusNotFound || cw.status == http.StatusGone:
		return nil // nothing stored to protect; an update creates a resource whose body was checked
	case cw.status < 200 || cw.status >= 300 || cw.over:
		return &oauth.Error{Status: http.StatusBadGateway, Description: "the stored resource could not be read to check it"}
	}
	res, msg, err := parseCheckedJSON(cw.buf.Bytes())
	switch {
	case errors.Is(err, errJSONKeys):
		return &oauth.Error{Status: http.StatusBadGateway, Description: "the stored resource cannot be checked: " + msg}
	case err != nil, !resourceWritable(pl.resourceType, res, pl.patient, g.base):
		return forbidden("", "the stored resource is not the patient's: its "+primaryName(pl.resourceType)+" must name the patient, and no compartment element another patient")
	}
	return nil
}
