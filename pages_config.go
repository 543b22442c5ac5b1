package smartauth

import (
	"fmt"
	"net/url"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/smartcaddy/smartauth/handlers/authz"
)

// PagesConfig brands the pages (sign-in, patient picker, consent,
// launcher, the user's apps, messages) without replacing their templates,
// and says where the pages read patients' names from.
//
// Caddyfile:
//
//	pages {
//		organization  <name>
//		logo          <path>       # same origin, e.g. /branding/logo.svg
//		accent_color  "#rrggbb"  # quoted (# starts a comment); contrast with white at least 4.5:1
//		patient_names <fhir_url>
//	}
type PagesConfig struct {
	// Organization is the organisation's name, shown above every page and
	// in the page titles.
	Organization string `json:"organization,omitempty"`
	// Logo is the path of a logo image on the same site (the pages'
	// Content-Security-Policy allows images from their own origin only);
	// serve it with a Caddy route, e.g. `handle /branding/* { file_server }`.
	Logo string `json:"logo,omitempty"`
	// AccentColor is the colour of buttons and links (#rgb or #rrggbb),
	// refused when its contrast with white is under 4.5:1.
	AccentColor string `json:"accent_color,omitempty"`
	// PatientNames is the base URL of the FHIR server the pages read
	// patients from (GET Patient/{id}, without a token, cached for a
	// minute) to show their name, birth date, gender and MRN instead of a
	// bare id. Give the upstream's internal address, like
	// patient_search. Default: patient_search's server; without either,
	// patients are shown by id.
	PatientNames string `json:"patient_names,omitempty"`
}

// parsePages reads a `pages { … }` block; d is on the `pages` token.
func parsePages(d *caddyfile.Dispenser) (*PagesConfig, error) {
	p := &PagesConfig{}
	if d.NextArg() {
		return nil, d.Errf("pages: unexpected argument %q (the options go in a block)", d.Val())
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		var field *string
		switch opt {
		case "organization":
			field = &p.Organization
		case "logo":
			field = &p.Logo
		case "accent_color":
			field = &p.AccentColor
		case "patient_names":
			field = &p.PatientNames
		default:
			return nil, d.Errf("pages: unknown option %q (want organization, logo, accent_color or patient_names)", opt)
		}
		if !d.NextArg() {
			return nil, d.Errf("pages: %s needs a value", opt)
		}
		*field = d.Val()
		if d.NextArg() {
			return nil, d.Errf("pages: %s takes one value", opt)
		}
	}
	if _, _, err := p.options(); err != nil {
		return nil, d.Errf("pages: %v", err)
	}
	return p, nil
}

// options checks the block and returns the pages' branding and the FHIR
// server of patient names (nil when not set). A nil PagesConfig is empty.
func (p *PagesConfig) options() (authz.Branding, *url.URL, error) {
	if p == nil {
		return authz.Branding{}, nil, nil
	}
	b := authz.Branding{Organization: p.Organization, Logo: p.Logo, Accent: p.AccentColor}
	if err := authz.CheckBranding(b); err != nil {
		return b, nil, err
	}
	if p.PatientNames == "" {
		return b, nil, nil
	}
	u, err := checkUpstreamURL(p.PatientNames)
	if err != nil {
		return b, nil, fmt.Errorf("patient_names: %w", err)
	}
	return b, u, nil
}
