package integration

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// TestReadmeSeveralInstancesCaddyfiles: the two Caddyfiles of the README's
// "Running several instances" (the load balancer and an instance) adapt
// without an error or a warning, once the "…" lines (the elided clients
// and users) are left out; so the example an operator copies is valid.
func TestReadmeSeveralInstancesCaddyfiles(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start := strings.Index(text, "### Running several instances")
	if start < 0 {
		t.Fatal(`README.md has no "### Running several instances" section`)
	}
	section := text[start:]
	if end := regexp.MustCompile("\n##+ ").FindStringIndex(section[4:]); end != nil {
		section = section[:end[0]+4]
	}
	blocks := regexp.MustCompile("(?s)```caddy\n(.*?)```").FindAllStringSubmatch(section, -1)
	if len(blocks) != 2 {
		t.Fatalf("the section has %d Caddyfile blocks, want 2 (load balancer, instance)", len(blocks))
	}
	for i, b := range blocks {
		var kept []string
		for _, line := range strings.Split(b[1], "\n") {
			if !strings.Contains(line, "…") {
				kept = append(kept, line)
			}
		}
		src := strings.Join(kept, "\n")
		js, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "README"})
		if err != nil {
			t.Fatalf("block %d does not adapt: %v\n%s", i+1, err, src)
		}
		for _, w := range warnings {
			if !strings.Contains(w.Message, "formatted") {
				t.Errorf("block %d: warning at line %d: %s", i+1, w.Line, w.Message)
			}
		}
		want := []string{`"reverse_proxy"`, `"smart_auth"`}[i]
		if !strings.Contains(string(js), want) {
			t.Errorf("block %d adapts without a %s handler:\n%s", i+1, want, js)
		}
	}
}
