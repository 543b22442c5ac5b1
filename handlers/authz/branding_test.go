package authz

import (
	"math"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
)

func TestContrast(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want float64
	}{
		{"#000000", "#ffffff", 21},
		{"#fff", "#ffffff", 1},
		{"#f59e0b", "#ffffff", 2.15}, // the old focus ring (issue 15)
		{"#1d4ed8", "#fff", 6.70},
		{"nope", "#fff", 0},
	} {
		if got := Contrast(c.a, c.b); math.Abs(got-c.want) > 0.01 {
			t.Errorf("Contrast(%s, %s) = %.2f, want %.2f", c.a, c.b, got, c.want)
		}
	}
}

func TestCheckBranding(t *testing.T) {
	for _, ok := range []Branding{{}, {Organization: "Clinic", Logo: "/branding/logo.svg", Accent: "#0f766e"}, {Accent: "#000"}} {
		if err := CheckBranding(ok); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
	for b, want := range map[Branding]string{
		{Logo: "https://cdn.example/logo.png"}: "path on this site",
		{Logo: "//cdn.example/logo.png"}:       "path on this site",
		{Logo: `/a"b`}:                         "path on this site",
		{Accent: "#f59e0b"}:                    "2.15:1",
		{Accent: "red"}:                        "hex colour",
		{Accent: "#1234567"}:                   "hex colour",
	} {
		if err := CheckBranding(b); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want an error with %q", b, err, want)
		}
	}
}

// TestPagesShowTheBranding renders a page with a branding: the name and
// logo are on it, the accent colour is in its style, and its CSP lets
// the same-origin logo load.
func TestPagesShowTheBranding(t *testing.T) {
	pr, err := newPageRenderer("", Branding{Organization: "Demo <Clinic>", Logo: "/branding/logo.svg", Accent: "#0f766e"}, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	pr.message(w, 200, "Hello", "A message.")
	body := w.Body.String()
	for _, want := range []string{`<img src="/branding/logo.svg" alt="">`, "<span>Demo &lt;Clinic&gt;</span>", "--accent:#0f766e", "<title>Hello · Demo &lt;Clinic&gt;</title>"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q:\n%s", want, body)
		}
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "img-src 'self'") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	if _, err := newPageRenderer("", Branding{Accent: "#ffff00"}, nil, zap.NewNop()); err == nil {
		t.Error("a page renderer with an unreadable accent colour was built")
	}
}

// TestPickerAndLauncherPreSelectNobody renders the picker and the launcher:
// with several patients none is checked, with one it is; a long list gets
// the filter box; every signed-in page offers "Not you? Sign out".
func TestPickerAndLauncherPreSelectNobody(t *testing.T) {
	pr, err := newPageRenderer("", Branding{}, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	patients := func(n int) []patientChoice {
		var out []patientChoice
		for i := range n {
			out = append(out, patientChoice{ID: "p" + string(rune('a'+i)), Label: "x", Known: true, Name: "Name " + string(rune('A'+i)), BirthDate: "1980-01-01"})
		}
		return out
	}
	render := func(page string, data any) string {
		w := httptest.NewRecorder()
		pr.render(w, 200, page, pageSecurity{}, data)
		if w.Code != 200 {
			t.Fatalf("%s: %d %s", page, w.Code, w.Body)
		}
		return w.Body.String()
	}
	for _, c := range []struct {
		n          int
		checked    int
		filterable bool
	}{{1, 1, false}, {3, 0, false}, {patientFilterThreshold + 1, 0, true}} {
		ps := patients(c.n)
		pick := render(pagePicker, pickerPage{ClientName: "App", User: "Dr. A", SignOut: "/auth/logout", Patients: ps, Total: c.n, Filterable: c.filterable})
		launch := render(pageLauncher, launcherPage{User: "Dr. A", SignOut: "/auth/logout", Manage: "/auth/manage", Apps: []launcherApp{{ID: "a", Name: "A"}, {ID: "b", Name: "B"}},
			Patients: ps, Total: c.n, Filterable: c.filterable})
		for name, body := range map[string]string{"picker": pick, "launcher": launch} {
			if got := strings.Count(body, `name="patient" value="`); got != c.n {
				t.Errorf("%s with %d patients lists %d", name, c.n, got)
			}
			if got := strings.Count(body, " checked>"); got != c.checked {
				t.Errorf("%s with %d patients checks %d, want %d", name, c.n, got, c.checked)
			}
			if got := strings.Contains(body, `name="filter"`); got != c.filterable {
				t.Errorf("%s with %d patients: filter box %v", name, c.n, got)
			}
			if !strings.Contains(body, `<a href="/auth/logout">Not you? Sign out</a>`) || !strings.Contains(body, "Name A</strong><span class=\"patient-meta\">, born 1980-01-01") {
				t.Errorf("%s lacks the sign-out link or the patient's name:\n%s", name, body)
			}
		}
		if !strings.Contains(launch, `href="/auth/manage"`) {
			t.Error("the launcher does not link to the management page")
		}
	}
	manage := render(pageManage, managePage{User: "Dr. A", SignOut: "/auth/logout", Launcher: "/auth/launcher"})
	if !strings.Contains(manage, `href="/auth/launcher"`) || !strings.Contains(manage, "Not you? Sign out") {
		t.Errorf("the management page lacks its links:\n%s", manage)
	}
}
