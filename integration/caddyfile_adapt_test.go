package integration

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// update rewrites the expected JSON of the golden adapter tests from what
// the adapter answers now: go test ./integration -run CaddyfileAdapt -update.
// Review the diff before committing it.
var update = flag.Bool("update", false, "rewrite the expected JSON of testdata/caddyfile_adapt/*.caddyfiletest")

// goldenDir holds the golden adapter tests, in the format of Caddy's
// caddytest/integration/caddyfile_adapt: a Caddyfile, a line of ten
// dashes, then the adapted JSON (or, for a Caddyfile the adapter must
// refuse, a part of the error message).
const goldenDir = "testdata/caddyfile_adapt"

// goldenSeparator separates the Caddyfile from the expected output.
const goldenSeparator = "----------"

// exampleGolden is the golden file whose Caddyfile is ../example.Caddyfile,
// verbatim: the test fails when the two drift apart, and -update copies the
// example in.
const exampleGolden = "example.caddyfiletest"

// golden is one parsed golden file.
type golden struct {
	caddyfile string // the input, with a final newline
	expected  string // the adapted JSON, or a part of the error
}

// readGolden splits a golden file at its separator line.
func readGolden(raw string) (golden, error) {
	raw = strings.ReplaceAll(raw, "\r\n", "\n")
	before, after, ok := strings.Cut(raw, "\n"+goldenSeparator+"\n")
	if !ok {
		return golden{}, fmt.Errorf("no line %q between the Caddyfile and the expected output", goldenSeparator)
	}
	return golden{caddyfile: strings.TrimSpace(before) + "\n", expected: strings.TrimSpace(after)}, nil
}

// String is the golden file's text.
func (g golden) String() string {
	return g.caddyfile + goldenSeparator + "\n" + g.expected + "\n"
}

// adaptCaddyfile runs Caddy's Caddyfile adapter and indents its JSON with
// tabs, as Caddy's golden files are.
func adaptCaddyfile(t *testing.T, name, caddyfile string) (string, error) {
	t.Helper()
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	for _, w := range warnings {
		t.Logf("warning: %s:%d: %s: %s", name, w.Line, w.Directive, w.Message)
	}
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, out, "", "\t"); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// normalizeJSON re-indents JSON with tabs, so that golden files compare
// equal whatever their indentation.
func normalizeJSON(s string) (string, error) {
	var buf bytes.Buffer
	if err := json.Indent(&buf, []byte(s), "", "\t"); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// firstDifference describes the first line where two texts differ, with
// a few lines of context.
func firstDifference(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	i := 0
	for i < len(w) && i < len(g) && w[i] == g[i] {
		i++
	}
	from := max(0, i-3)
	var b strings.Builder
	fmt.Fprintf(&b, "first difference at line %d of the JSON:\n", i+1)
	for j := from; j < i; j++ {
		fmt.Fprintf(&b, "  %s\n", w[j])
	}
	for j := i; j < min(len(w), i+3); j++ {
		fmt.Fprintf(&b, "- %s\n", w[j])
	}
	for j := i; j < min(len(g), i+3); j++ {
		fmt.Fprintf(&b, "+ %s\n", g[j])
	}
	return b.String()
}

// TestCaddyfileAdapt adapts the Caddyfile of every golden file in
// testdata/caddyfile_adapt and compares the JSON (or the error) with the
// file's expected part, as Caddy's own TestCaddyfileAdaptToJSON does.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.caddyfiletest"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files in %s: %v", goldenDir, err)
	}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			g, err := readGolden(string(raw))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if name == exampleGolden {
				example, err := os.ReadFile(filepath.Join("..", "example.Caddyfile"))
				if err != nil {
					t.Fatal(err)
				}
				if want := strings.TrimSpace(string(example)) + "\n"; g.caddyfile != want {
					if !*update {
						t.Fatalf("the Caddyfile of %s is not ../example.Caddyfile (run with -update to copy it in)", name)
					}
					g.caddyfile = want
				}
			}
			got, adaptErr := adaptCaddyfile(t, name, g.caddyfile)
			if !strings.HasPrefix(g.expected, "{") {
				// A Caddyfile the adapter must refuse.
				if adaptErr == nil {
					t.Fatalf("adapted without an error; want one containing %q", g.expected)
				}
				if !strings.Contains(adaptErr.Error(), g.expected) {
					t.Fatalf("error %q\nwant it to contain %q", adaptErr, g.expected)
				}
				return
			}
			if adaptErr != nil {
				t.Fatalf("adapting: %v", adaptErr)
			}
			want, err := normalizeJSON(g.expected)
			if err != nil && !*update {
				t.Fatalf("the expected JSON is not JSON: %v", err)
			}
			if *update {
				if got != want || g.String() != string(raw) {
					g.expected = got
					if err := os.WriteFile(file, []byte(g.String()), 0o644); err != nil {
						t.Fatal(err)
					}
					t.Logf("rewrote %s", file)
				}
				return
			}
			if got != want {
				t.Errorf("the adapted JSON differs from %s (run with -update to rewrite it, then review the diff)\n%s", file, firstDifference(want, got))
			}
		})
	}
}

// TestGoldenFilesHoldNoSecrets checks that the golden files give secrets
// only as placeholders or hashes: no clear text client secret or initial
// access token.
func TestGoldenFilesHoldNoSecrets(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.caddyfiletest"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files in %s: %v", goldenDir, err)
	}
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		g, err := readGolden(string(raw))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for n, line := range strings.Split(g.caddyfile, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || (f[0] != "secret" && f[0] != "initial_access_token") {
				continue
			}
			if !strings.HasPrefix(f[1], "{env.") && !strings.HasPrefix(f[1], "{file.") {
				t.Errorf("%s:%d: %s is given in clear; use a placeholder ({env.X}, {file.path}) or its hash", file, n+1, f[0])
			}
		}
	}
}

// TestReadGolden checks the golden file reader on a well-formed file and
// on one without the separator line.
func TestReadGolden(t *testing.T) {
	g, err := readGolden("a {\n}\r\n----------\r\n{\"x\": 1}\n")
	if err != nil || g.caddyfile != "a {\n}\n" || g.expected != `{"x": 1}` {
		t.Fatalf("%+v %v", g, err)
	}
	if g.String() != "a {\n}\n----------\n{\"x\": 1}\n" {
		t.Fatalf("String: %q", g.String())
	}
	if _, err := readGolden("a {\n}\n---------\n{}"); err == nil {
		t.Fatal("a file without the separator line was accepted")
	}
}
