package authz

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/smartcaddy/smartauth/handlers/users"
	"github.com/smartcaddy/smartauth/store"
)

// What a provider's verified id_token claims make of a user (mapUser):
//
//  1. Every Require rule must hold, else the user may not sign in here.
//  2. The UsernameClaim (default sub) names a configured user: the user
//     is that configured user, whose configuration alone decides what it
//     reaches; nothing else is taken from the claims.
//  3. Otherwise, only when the provider accepts unlisted users, the user
//     is "<provider>|<value>", with fhirUser from FHIRUser (a claim or a
//     template; a value that is not a FHIR user reference is dropped,
//     never guessed), a display name from DisplayNameClaim and the
//     operator's UserScopes as bound, narrowed by ScopesClaim when set
//     (users.NarrowScopes). Otherwise the user is refused.

// claimTemplate is a parsed fhir_user_claim value: literal text and
// claim names, in order. A value without "{claims." is one claim name.
type claimTemplate struct {
	parts []templatePart
}

// templatePart is literal text, or (claim set) a claim's value.
type templatePart struct {
	text  string
	claim string
}

// claimNamePattern is a claim name a template or option may name.
var claimNamePattern = regexp.MustCompile(`^[A-Za-z0-9_:.\-/]{1,128}$`)

// fhirUserPattern is a relative FHIR user reference, as a configured
// user's fhir_user must be.
var fhirUserPattern = regexp.MustCompile(`^(Patient|Practitioner|PractitionerRole|RelatedPerson|Person)/[A-Za-z0-9\-.]{1,64}$`)

// ParseClaimTemplate parses a fhir_user_claim value: a claim name
// ("fhirUser"), or a template in which {claims.<name>} stands for a
// claim's value ("Practitioner/{claims.employee_id}"). Empty: none.
func ParseClaimTemplate(v string) (claimTemplate, error) {
	var t claimTemplate
	if v == "" {
		return t, nil
	}
	if !strings.Contains(v, "{") {
		if !claimNamePattern.MatchString(v) {
			return t, fmt.Errorf("%q is not a claim name", v)
		}
		t.parts = []templatePart{{claim: v}}
		return t, nil
	}
	rest := v
	for rest != "" {
		i := strings.Index(rest, "{claims.")
		if i < 0 {
			if strings.ContainsAny(rest, "{}") {
				return t, fmt.Errorf("%q: only {claims.<name>} may appear in braces", v)
			}
			t.parts = append(t.parts, templatePart{text: rest})
			break
		}
		if strings.ContainsAny(rest[:i], "{}") {
			return t, fmt.Errorf("%q: only {claims.<name>} may appear in braces", v)
		}
		if i > 0 {
			t.parts = append(t.parts, templatePart{text: rest[:i]})
		}
		end := strings.IndexByte(rest[i:], '}')
		if end < 0 {
			return t, fmt.Errorf("%q: a {claims.<name>} is not closed", v)
		}
		name := rest[i+len("{claims.") : i+end]
		if !claimNamePattern.MatchString(name) {
			return t, fmt.Errorf("%q: %q is not a claim name", v, name)
		}
		t.parts = append(t.parts, templatePart{claim: name})
		rest = rest[i+end+1:]
	}
	return t, nil
}

// render fills the template from the claims; "" when a claim it names is
// missing or not a plain value.
func (t claimTemplate) render(claims map[string]any) string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.claim == "" {
			b.WriteString(p.text)
			continue
		}
		v, ok := claimString(claims, p.claim)
		if !ok {
			return ""
		}
		b.WriteString(v)
	}
	return b.String()
}

// claimString is a claim's value as text: a string, or a number or
// boolean written out. Lists, objects and missing claims are not.
func claimString(claims map[string]any, name string) (string, bool) {
	switch v := claims[name].(type) {
	case string:
		return v, v != ""
	case json.Number:
		return v.String(), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}

// claimValues is a claim's values: a list's strings, or a single string
// (split on spaces when split is set, as scope claims are).
func claimValues(claims map[string]any, name string, split bool) ([]string, bool) {
	switch v := claims[name].(type) {
	case string:
		if split {
			return strings.Fields(v), true
		}
		return []string{v}, true
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out, true
	}
	return nil, false
}

// plainText tells whether a claim value may go into a name or subject:
// not empty, bounded, no control characters.
func plainText(v string) bool {
	if v == "" || len(v) > idpMaxClaimValue {
		return false
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// idpRefusal is why a provider's user may not sign in here, shown on
// the page.
type idpRefusal struct{ why string }

// Error implements error.
func (r *idpRefusal) Error() string { return r.why }

// mapUser decides who a provider's user is here: the subject (a
// configured user's name, or the provider's "<provider>|<id>") and, for
// an unlisted user, the profile recorded with the session. A refusal is
// an *idpRefusal.
func (c *idpClient) mapUser(claims map[string]any, configured map[string]*users.User, fhirBase string) (string, *store.FederatedUser, error) {
	for _, rule := range c.cfg.Require {
		have, _ := claimValues(claims, rule.Claim, false)
		if !slices.ContainsFunc(have, func(v string) bool { return slices.Contains(rule.Values, v) }) {
			return "", nil, &idpRefusal{fmt.Sprintf("Your account at %s is not among those allowed to use apps here (it lacks the required %s).",
				c.cfg.DisplayName, rule.Claim)}
		}
	}
	id, ok := claimString(claims, c.cfg.UsernameClaim)
	if !ok || !plainText(id) {
		return "", nil, &idpRefusal{fmt.Sprintf("%s did not say who you are (no usable %s claim).", c.cfg.DisplayName, c.cfg.UsernameClaim)}
	}
	if configured[id] != nil {
		return id, nil, nil
	}
	if !c.cfg.AcceptUnlisted {
		return "", nil, &idpRefusal{fmt.Sprintf("Your account at %s is not set up for apps on this server.", c.cfg.DisplayName)}
	}
	fed := &store.FederatedUser{Provider: c.cfg.Name, FHIRUser: c.fhirUserOf(claims, fhirBase)}
	if name, ok := claimString(claims, c.cfg.DisplayNameClaim); ok && plainText(name) {
		fed.DisplayName = name
	}
	if c.cfg.ScopesClaim != "" {
		claimed, _ := claimValues(claims, c.cfg.ScopesClaim, true)
		fed.Scopes = users.NarrowScopes(c.cfg.UserScopes, claimed)
		if len(fed.Scopes) == 0 {
			return "", nil, &idpRefusal{fmt.Sprintf("Your account at %s grants no access to health data through apps (%s).",
				c.cfg.DisplayName, c.cfg.ScopesClaim)}
		}
	}
	return users.FederatedSubject(c.cfg.Name, id), fed, nil
}

// fhirUserOf is an unlisted user's fhirUser from the claims: a relative
// FHIR user reference, or an absolute one under the FHIR base made
// relative. Anything else gives none.
func (c *idpClient) fhirUserOf(claims map[string]any, fhirBase string) string {
	v := c.fhirUser.render(claims)
	if rel, ok := strings.CutPrefix(v, strings.TrimSuffix(fhirBase, "/")+"/"); ok {
		v = rel
	}
	if !fhirUserPattern.MatchString(v) {
		return ""
	}
	return v
}

// scopeNeedsFHIRUser tells whether an app asked for the user's FHIR
// identity.
func scopeNeedsFHIRUser(offered []string) bool {
	return slices.Contains(offered, "fhirUser")
}
