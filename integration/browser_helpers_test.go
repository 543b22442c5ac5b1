package integration

import (
	"context"
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
