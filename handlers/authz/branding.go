package authz

import (
	"fmt"
	"html/template"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Branding is the operator's branding of every page: shown by layout.html
// through the template function brand, without replacing templates.
type Branding struct {
	// Organization is the organisation's name, shown above every page
	// and in the page titles.
	Organization string
	// Logo is the path of the logo image on this site (same origin: the
	// pages' Content-Security-Policy allows images from 'self' only),
	// e.g. /branding/logo.svg, served by a Caddy route of the operator.
	Logo string
	// Accent is the colour of buttons and links, #rgb or #rrggbb, with a
	// contrast of at least 4.5:1 against white (CheckAccent).
	Accent string
}

// pageBrand is what the template function brand returns: Branding with
// the accent colour typed for a style sheet.
type pageBrand struct {
	Organization string
	Logo         string
	Accent       template.CSS
}

// hexColour is a CSS hex colour the accent may be.
var hexColour = regexp.MustCompile(`^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

// minAccentContrast is the contrast an accent colour needs against white:
// white text on buttons and links on white must meet WCAG 2.2 AA (4.5:1).
const minAccentContrast = 4.5

// CheckBranding tells what is wrong with a branding, if anything: a logo
// that is not a same-origin path, an accent that is not a hex colour or
// is too light to read against white.
func CheckBranding(b Branding) error {
	if b.Logo != "" && (!strings.HasPrefix(b.Logo, "/") || strings.HasPrefix(b.Logo, "//") || strings.ContainsAny(b.Logo, "\\ \"'<>")) {
		return fmt.Errorf("logo %q: give a path on this site such as /branding/logo.svg (the pages load images from their own origin only)", b.Logo)
	}
	if b.Accent == "" {
		return nil
	}
	if !hexColour.MatchString(b.Accent) {
		return fmt.Errorf("accent_color %q: give a hex colour such as #1d4ed8", b.Accent)
	}
	if c := Contrast(b.Accent, "#ffffff"); c < minAccentContrast {
		return fmt.Errorf("accent_color %s: its contrast with white is %.2f:1; buttons and links need at least %.1f:1 (WCAG 2.2 AA): choose a darker colour",
			b.Accent, c, minAccentContrast)
	}
	return nil
}

// brand is the template data of a branding.
func (b Branding) brand() pageBrand {
	return pageBrand{Organization: b.Organization, Logo: b.Logo, Accent: template.CSS(b.Accent)} // #nosec: checked by CheckBranding
}

// Contrast is the WCAG 2.2 contrast ratio of two hex colours (#rgb or
// #rrggbb), from 1 to 21; 0 when either is not a hex colour.
func Contrast(a, b string) float64 {
	la, ok1 := luminance(a)
	lb, ok2 := luminance(b)
	if !ok1 || !ok2 {
		return 0
	}
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

// luminance is the WCAG relative luminance of a hex colour.
func luminance(hex string) (float64, bool) {
	if !hexColour.MatchString(hex) {
		return 0, false
	}
	h := hex[1:]
	if len(h) == 3 {
		h = string([]byte{h[0], h[0], h[1], h[1], h[2], h[2]})
	}
	var l float64
	for i, weight := range []float64{0.2126, 0.7152, 0.0722} {
		v, err := strconv.ParseUint(h[2*i:2*i+2], 16, 8)
		if err != nil {
			return 0, false
		}
		c := float64(v) / 255
		if c <= 0.04045 {
			c /= 12.92
		} else {
			c = math.Pow((c+0.055)/1.055, 2.4)
		}
		l += weight * c
	}
	return l, true
}
