package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Window sizes the page checks run at: a desktop window and a phone.
const (
	desktopWidth, desktopHeight = 1000, 900
	mobileWidth, mobileHeight   = 375, 740
)

// browserTab is one headless Chromium tab of a test, with the test's
// screenshot directory.
type browserTab struct {
	t   *testing.T
	ctx context.Context
}

// newBrowserTab starts headless Chromium (chromiumPath) with a fresh
// profile at desktop size; it is closed when the test ends.
func newBrowserTab(t *testing.T) *browserTab {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(desktopWidth, desktopHeight),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 120*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelTab(); cancelAlloc() })
	if err := os.MkdirAll("screenshots", 0o755); err != nil {
		t.Fatal(err)
	}
	return &browserTab{t: t, ctx: ctx}
}

// step runs browser actions and fails the test, naming what, when one
// fails.
func (b *browserTab) step(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// text is the text content of the first element sel matches.
func (b *browserTab) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.TextContent(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// eval evaluates a JavaScript expression that yields an int.
func (b *browserTab) evalInt(expr string) int {
	b.t.Helper()
	n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](expr))
	if err != nil {
		b.t.Fatalf("%s: %v", expr, err)
	}
	return n
}

// shot saves a full-page PNG screenshot as screenshots/name.png.
func (b *browserTab) shot(name string) {
	b.t.Helper()
	img, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join("screenshots", name+".png"), img, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// axeSource is axe-core's browser build, pinned in interop/package.json.
func axeSource(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "interop", "node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		t.Fatalf("axe-core is not installed: run `npm ci --prefix interop` (.ci/run does): %v", err)
	}
	return string(b)
}

// checkPage runs axe-core on the current page at desktop and at mobile
// width, fails the test for every violation, and saves a screenshot at
// each width (screenshots/name.png and name-mobile.png).
func (b *browserTab) checkPage(name string) {
	b.t.Helper()
	src := axeSource(b.t)
	for _, size := range []struct {
		suffix string
		w, h   int64
	}{{"", desktopWidth, desktopHeight}, {"-mobile", mobileWidth, mobileHeight}} {
		b.step("resize for "+name, chromedp.EmulateViewport(size.w, size.h))
		if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](src+";true")); err != nil {
			b.t.Fatalf("loading axe-core into %s: %v", name, err)
		}
		found, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`axe.run(document, {resultTypes: ["violations"]}).then(r =>
			r.violations.map(v => v.id + " (" + v.impact + "): " + v.help + " at " + v.nodes.map(n => n.target.join(" ")).join(", ")))`,
			chromedp.EvalAwaitPromise))
		if err != nil {
			b.t.Fatalf("axe-core on %s: %v", name, err)
		}
		if len(found) > 0 {
			b.t.Errorf("axe-core: %d violation(s) on %s at width %d:\n%s", len(found), name, size.w, strings.Join(found, "\n"))
		}
		b.shot(name + size.suffix)
	}
	b.step("restore the window of "+name, chromedp.EmulateViewport(desktopWidth, desktopHeight))
}

// focusContrastJS is the WCAG contrast ratio between the focused element's
// outline colour and white (the pages' background around the ring), or
// -1 when the focused element draws no solid outline.
const focusContrastJS = `(() => {
	const st = getComputedStyle(document.activeElement);
	if (document.activeElement === document.body || st.outlineStyle !== "solid" || parseFloat(st.outlineWidth) < 2) return -1;
	const lum = (rgb) => {
		const [r, g, b] = rgb.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number).map(v => {
			v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
		});
		return 0.2126 * r + 0.7152 * g + 0.0722 * b;
	};
	const a = lum(st.outlineColor), w = 1;
	return (Math.max(a, w) + 0.05) / (Math.min(a, w) + 0.05);
})()`

// checkFocusRing moves the keyboard focus to the page's first focusable
// element with Tab and fails the test unless it draws a solid outline of
// at least 2px with a contrast of 3:1 or more against white (WCAG 2.2
// AA, non-text contrast).
func (b *browserTab) checkFocusRing(name string) {
	b.t.Helper()
	b.step("tab into "+name, chromedp.KeyEvent("\t"))
	ratio, err := chromedp.Run(b.ctx, chromedp.Evaluate[float64](focusContrastJS))
	if err != nil {
		b.t.Fatalf("focus ring of %s: %v", name, err)
	}
	if ratio < 3 {
		b.t.Errorf("the focus indicator on %s has a contrast of %.2f:1 against white (-1: no solid outline); WCAG 2.2 AA needs 3:1", name, ratio)
	}
}

// catchAppCode listens at an app's redirect URI (a loopback http URL) and
// passes on the query of the first request to reach it: the code, as the
// app would receive it. The page it answers has id app-received.
func catchAppCode(t *testing.T, redirectURI string) <-chan url.Values {
	t.Helper()
	redirect, _ := url.Parse(redirectURI)
	got := make(chan url.Values, 1)
	l, err := net.Listen("tcp4", "127.0.0.1:"+redirect.Port())
	if err != nil {
		t.Fatal(err)
	}
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.URL.Query():
		default:
		}
		fmt.Fprint(w, "<!doctype html><title>App</title><p id=app-received>The app received its code.")
	})}
	go func() { _ = app.Serve(l) }()
	t.Cleanup(func() { _ = app.Close() })
	return got
}
