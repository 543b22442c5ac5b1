package authz

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/store"
)

// pageTemplateFS holds the built-in templates of the user-facing pages.
//
//go:embed templates/*.html
var pageTemplateFS embed.FS

// Template file names. An operator's TemplatesDir may hold files with
// these names to replace the built-in ones.
const (
	pageLogin    = "login.html"
	pageLogout   = "logout.html"
	pageConsent  = "consent.html"
	pagePicker   = "picker.html"
	pageLauncher = "launcher.html"
	pageMessage  = "message.html"
	pageManage   = "manage.html"
	// pageLayout defines the "head" and "foot" every page shares.
	pageLayout = "layout.html"
)

var pageNames = []string{pageLogin, pageLogout, pageConsent, pagePicker, pageLauncher, pageMessage, pageManage}

// pageRenderer renders the user-facing pages (sign-in, sign-out, consent,
// patient picker, launcher, the user's apps, messages) with the security
// headers and Content-Security-Policy every page carries. Its templates
// are parsed once, when the Server is built, and it is read-only
// afterwards.
type pageRenderer struct {
	// byName are the parsed templates by file name.
	byName map[string]*template.Template
	// frameAncestors are the origins besides 'self' allowed to frame a
	// framable page (Options.FrameAncestors).
	frameAncestors []string
	// logger receives template execution failures.
	logger *zap.Logger
}

// newPageRenderer loads the page templates (loadPages) with the branding
// and keeps the framing origins and the logger of the pages.
func newPageRenderer(dir string, brand Branding, frameAncestors []string, logger *zap.Logger) (*pageRenderer, error) {
	if err := CheckBranding(brand); err != nil {
		return nil, err
	}
	p, err := loadPages(dir, brand)
	if err != nil {
		return nil, err
	}
	p.frameAncestors, p.logger = frameAncestors, logger
	return p, nil
}

// loadPages parses the built-in templates, each replaced by the file of the
// same name in dir when dir is set and holds one, with the template
// function brand giving the branding. An error names the file.
func loadPages(dir string, brand Branding) (*pageRenderer, error) {
	if dir != "" {
		st, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("templates directory: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("templates directory %s: not a directory", dir)
		}
	}
	layout, layoutOrigin, err := readPageTemplate(dir, pageLayout)
	if err != nil {
		return nil, err
	}
	p := &pageRenderer{byName: make(map[string]*template.Template, len(pageNames))}
	for _, name := range pageNames {
		src, origin, err := readPageTemplate(dir, name)
		if err != nil {
			return nil, err
		}
		funcs := template.FuncMap{"brand": brand.brand}
		t, err := template.New(name).Option("missingkey=error").Funcs(funcs).Parse(string(src))
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", origin, err)
		}
		if _, err := t.New(pageLayout).Parse(string(layout)); err != nil {
			return nil, fmt.Errorf("template %s: %w", layoutOrigin, err)
		}
		p.byName[name] = t
	}
	return p, nil
}

// readPageTemplate returns the operator's template file when there is one,
// else the built-in one, and where it came from.
func readPageTemplate(dir, name string) ([]byte, string, error) {
	if dir != "" {
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			return b, path, nil
		case !errors.Is(err, fs.ErrNotExist):
			return nil, path, fmt.Errorf("template %s: %w", path, err)
		}
	}
	b, err := pageTemplateFS.ReadFile("templates/" + name)
	if err != nil {
		return nil, "built-in " + name, fmt.Errorf("built-in template %s: %w", name, err)
	}
	return b, "built-in " + name, nil
}

// pageSecurity says how a page may be framed and where its forms may post.
type pageSecurity struct {
	// framable allows the configured FrameAncestors besides 'self'.
	framable bool
	// formTargets are origins besides 'self' that forms (and the
	// redirects that follow them) may reach.
	formTargets []string
}

// render executes a page template and writes it with the security
// headers every page carries.
func (pr *pageRenderer) render(w http.ResponseWriter, status int, name string, sec pageSecurity, data any) {
	var buf bytes.Buffer
	t := pr.byName[name]
	if t == nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if err := t.Execute(&buf, data); err != nil {
		pr.logger.Error("rendering page failed", zap.String("page", name), zap.Error(err))
		setPageHeaders(w.Header(), pr.csp(pageSecurity{}))
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("The page could not be shown.\n"))
		return
	}
	setPageHeaders(w.Header(), pr.csp(sec))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// setPageHeaders sets the headers of every HTML page and redirect of the
// sign-in flow.
func setPageHeaders(h http.Header, csp string) {
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
}

// csp builds the Content-Security-Policy of a page.
func (pr *pageRenderer) csp(sec pageSecurity) string {
	formAction := []string{"'self'"}
	for _, o := range sec.formTargets {
		if cspSourceOK(o) {
			formAction = append(formAction, o)
		}
	}
	ancestors := []string{"'self'"}
	if sec.framable {
		for _, o := range pr.frameAncestors {
			if cspSourceOK(o) {
				ancestors = append(ancestors, o)
			}
		}
	}
	return "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self'; form-action " +
		strings.Join(formAction, " ") + "; frame-ancestors " + strings.Join(ancestors, " ") +
		"; base-uri 'none'"
}

// cspSourceOK tells whether a value can be placed in a CSP source list
// without changing the policy's structure.
func cspSourceOK(v string) bool {
	if v == "" {
		return false
	}
	for _, c := range v {
		if c <= ' ' || c >= 0x7f || c == ';' || c == ',' || c == '\'' {
			return false
		}
	}
	return true
}

// messagePage is the data of message.html: an error or a notice.
type messagePage struct {
	Title   string
	Message string
	// Status is the HTTP status, shown for errors.
	Status int
	// Links are ways on offered under the message (idp_pages.go).
	Links []pageLink
}

// message renders the message page.
func (pr *pageRenderer) message(w http.ResponseWriter, status int, title, message string) {
	pr.render(w, status, pageMessage, pageSecurity{}, messagePage{Title: title, Message: message, Status: status})
}

// storeFailure shows the message page for a failure of the server itself,
// already logged: 503 with a Retry-After and a note to try again when
// the store cannot be reached now (store.ErrUnavailable), 500 otherwise.
// message says what could not be done.
func (pr *pageRenderer) storeFailure(w http.ResponseWriter, err error, message string) {
	if errors.Is(err, store.ErrUnavailable) {
		w.Header().Set("Retry-After", oauth.RetryAfterSeconds(oauth.UnavailableRetryAfter))
		pr.message(w, http.StatusServiceUnavailable, "Temporarily unavailable",
			message+" The authorization server cannot reach its storage just now; try again in a few seconds.")
		return
	}
	pr.message(w, http.StatusInternalServerError, "Server error", message)
}

// failureCode is the OAuth error code for a failure of the server itself
// sent in an authorization redirect (RFC 6749 §4.1.2.1):
// temporarily_unavailable when the store cannot be reached now
// (store.ErrUnavailable), server_error otherwise.
func failureCode(err error) string {
	if errors.Is(err, store.ErrUnavailable) {
		return oauth.CodeTemporarilyUnavailable
	}
	return oauth.CodeServerError
}
