package integration

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/html"
	"pgregory.net/rapid"
)

// invFlow is one authorization by a user for an app, with the user's
// choices drawn beforehand: which patient to post on the picker (one
// offered, or a forged one), which scopes to untick, and which scopes to
// add to the consent POST (a forged form).
type invFlow struct {
	client *invClient
	user   *invUser
	scope  []string
	launch string
	// pickForged posts pickID on the picker; otherwise the offered
	// patient at pickIndex (modulo the number offered).
	pickForged bool
	pickIndex  int
	pickID     string
	untick     []string
	forge      []string
	// jar continues a browser session (the launcher's); nil for a new one.
	jar http.CookieJar
}

// invOutcome is what a flow produced.
type invOutcome struct {
	shown     []string   // the consent page's scope checkboxes (nil: no consent page)
	picked    string     // the patient posted on the picker
	pageCode  int        // the status of the page the flow ended on, when not sent back to the app
	redirect  url.Values // the query of the redirect to the app
	tokStatus int
	token     map[string]any // the token response (nil when no code)
}

// genFlowChoices draws the user's choices of a flow.
func genFlowChoices(t *rapid.T, f *invFlow) {
	f.pickForged = rapid.IntRange(0, 2).Draw(t, "pickForged") == 0
	f.pickIndex = rapid.IntRange(0, 4).Draw(t, "pickIndex")
	f.pickID = rapid.SampledFrom(append([]string{"p9", "missing-1"}, invPool...)).Draw(t, "pickID")
	for _, sc := range f.scope {
		if rapid.IntRange(0, 4).Draw(t, "untick") == 0 {
			f.untick = append(f.untick, sc)
		}
	}
	if rapid.IntRange(0, 2).Draw(t, "forgeConsent") == 0 {
		f.forge = genScopeList(genScope(), 1, 4).Draw(t, "forged")
	}
}

// formInput is an input of a page's form.
type formInput struct {
	name, typ, value  string
	checked, disabled bool
}

// pageForm is a form of a page.
type pageForm struct {
	action, method string
	inputs         []formInput
}

// pageForms reads the forms of an HTML page.
func pageForms(page *url.URL, body string) []pageForm {
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		return nil
	}
	var forms []pageForm
	var walk func(n *html.Node, cur int)
	walk = func(n *html.Node, cur int) {
		if n.Type == html.ElementNode {
			a := map[string]string{}
			checked, disabled := false, false
			for _, at := range n.Attr {
				a[at.Key] = at.Val
				checked = checked || at.Key == "checked"
				disabled = disabled || at.Key == "disabled"
			}
			switch {
			case n.Data == "form":
				act, _ := page.Parse(a["action"])
				forms = append(forms, pageForm{action: act.String(), method: strings.ToUpper(a["method"])})
				cur = len(forms) - 1
			case (n.Data == "input" || n.Data == "button") && cur >= 0 && a["name"] != "":
				forms[cur].inputs = append(forms[cur].inputs, formInput{a["name"], a["type"], a["value"], checked, disabled})
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, cur)
		}
	}
	walk(doc, -1)
	return forms
}

// run drives a flow over HTTP like a browser (the user signs in with a
// password, or is identified by basic_auth in trusted mode), answering the
// picker and consent pages with the drawn choices, and redeems the code.
func (s *invSite) run(tb rapid.TB, f invFlow) invOutcome {
	tb.Helper()
	if f.jar == nil {
		f.jar, _ = cookiejar.New(nil)
	}
	hc := &http.Client{Jar: f.jar, Timeout: 20 * time.Second, CheckRedirect: invHTTP.CheckRedirect}
	verifier := guardJTI() + guardJTI()
	q := url.Values{"response_type": {"code"}, "client_id": {f.client.id}, "redirect_uri": {s.redirect},
		"scope": {strings.Join(f.scope, " ")}, "state": {"st"}, "aud": {s.fhirBase()},
		"code_challenge": {s256(verifier)}, "code_challenge_method": {"S256"}}
	if f.launch != "" {
		q.Set("launch", f.launch)
	}
	req, _ := http.NewRequest(http.MethodGet, s.issuer()+"/authorize?"+q.Encode(), nil)
	var out invOutcome
	for range 12 {
		if s.u.trusted && (req.URL.Path == "/auth/authorize" || req.URL.Path == "/auth/launcher") {
			req.SetBasicAuth(f.user.name, invPassword)
		}
		resp, err := hc.Do(req)
		if err != nil {
			tb.Fatalf("%s %s: %v", req.Method, req.URL, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusSeeOther || resp.StatusCode == http.StatusFound:
			loc, _ := resp.Location()
			if strings.HasPrefix(loc.String(), s.redirect) {
				out.redirect = loc.Query()
				s.redeem(tb, f, verifier, &out)
				switch {
				case out.tokStatus == 200:
					s.flows["token"]++
				default:
					s.flows["app error "+out.redirect.Get("error")]++
				}
				return out
			}
			req, _ = http.NewRequest(http.MethodGet, loc.String(), nil)
		case resp.StatusCode == http.StatusOK && len(pageForms(resp.Request.URL, string(body))) > 0:
			req = s.answerPage(f, &out, pageForms(resp.Request.URL, string(body)))
		default:
			out.pageCode = resp.StatusCode
			s.flows[fmt.Sprintf("page %d", resp.StatusCode)]++
			return out
		}
	}
	tb.Fatalf("flow %+v: too many steps", f)
	return out
}

// answerPage fills the page's last form: sign-in, patient picker (search
// first when it only offers a search) or consent.
func (s *invSite) answerPage(f invFlow, out *invOutcome, forms []pageForm) *http.Request {
	form := forms[len(forms)-1]
	v := url.Values{}
	var offered []string
	for _, in := range form.inputs {
		switch {
		case in.name == "scope" && in.typ == "checkbox":
			out.shown = append(out.shown, in.value)
			if in.checked && !in.disabled && !slices.Contains(f.untick, in.value) {
				v.Add("scope", in.value)
			}
		case in.name == "patient" && in.typ == "radio":
			offered = append(offered, in.value)
		case in.name == "decision" || in.typ == "submit":
		case in.typ == "hidden":
			v.Add(in.name, in.value)
		}
	}
	switch {
	case strings.HasSuffix(form.action, "/login"):
		v.Set("username", f.user.name)
		v.Set("password", invPassword)
	case form.method != "POST": // the picker's name search
		v.Set("name", "a")
		u, _ := url.Parse(form.action)
		u.RawQuery = v.Encode()
		req, _ := http.NewRequest(http.MethodGet, u.String(), nil)
		return req
	case strings.HasSuffix(form.action, "/select-patient"):
		out.picked = f.pickID
		if !f.pickForged && len(offered) > 0 {
			out.picked = offered[f.pickIndex%len(offered)]
		}
		v.Set("patient", out.picked)
	default:
		if out.shown == nil {
			out.shown = []string{}
		}
		for _, sc := range f.forge {
			v.Add("scope", sc)
		}
		v.Set("decision", "allow")
	}
	req, _ := http.NewRequest(http.MethodPost, form.action, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

// redeem exchanges the code of a flow's redirect, if any.
func (s *invSite) redeem(tb rapid.TB, f invFlow, verifier string, out *invOutcome) {
	code := out.redirect.Get("code")
	if code == "" {
		return
	}
	out.tokStatus, out.token = s.oauthPost(tb, "token", f.client, url.Values{"grant_type": {"authorization_code"},
		"code": {code}, "redirect_uri": {s.redirect}, "code_verifier": {verifier}})
}

// launcherLaunch opens the launcher page as the flow's user (signing in
// first), posts the flow's app with a patient (an offered one, or a
// forged one, as the picker choices say), and returns the launch id of
// the redirect to the app's launch URL ("" when the launcher refused) and
// the patient posted. The flow continues in the same browser session.
func (s *invSite) launcherLaunch(tb rapid.TB, f *invFlow) (string, string) {
	tb.Helper()
	f.jar, _ = cookiejar.New(nil)
	hc := &http.Client{Jar: f.jar, Timeout: 20 * time.Second, CheckRedirect: invHTTP.CheckRedirect}
	req, _ := http.NewRequest(http.MethodGet, s.issuer()+"/launcher", nil)
	posted := ""
	for range 8 {
		if s.u.trusted && req.URL.Path == "/auth/launcher" {
			req.SetBasicAuth(f.user.name, invPassword)
		}
		resp, err := hc.Do(req)
		if err != nil {
			tb.Fatalf("%s %s: %v", req.Method, req.URL, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		loc, _ := resp.Location()
		forms := pageForms(resp.Request.URL, string(body))
		switch {
		case loc != nil && loc.Query().Get("launch") != "":
			s.flows["launcher: launched"]++
			return loc.Query().Get("launch"), posted
		case loc != nil:
			req, _ = http.NewRequest(http.MethodGet, loc.String(), nil)
		case resp.StatusCode != http.StatusOK || len(forms) == 0:
			s.flows[fmt.Sprintf("launcher: page %d", resp.StatusCode)]++
			return "", posted
		default:
			form := forms[len(forms)-1]
			v := url.Values{}
			var offered []string
			for _, in := range form.inputs {
				switch {
				case in.name == "patient":
					offered = append(offered, in.value)
				case in.typ == "hidden":
					v.Add(in.name, in.value)
				}
			}
			if strings.HasSuffix(form.action, "/login") {
				v.Set("username", f.user.name)
				v.Set("password", invPassword)
			} else {
				posted = f.pickID
				if !f.pickForged && len(offered) > 0 {
					posted = offered[f.pickIndex%len(offered)]
				}
				v.Set("client_id", f.client.id)
				v.Set("patient", posted)
			}
			req, _ = http.NewRequest(http.MethodPost, form.action, strings.NewReader(v.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	tb.Fatalf("launcher for %s: too many steps", f.user.name)
	return "", posted
}
