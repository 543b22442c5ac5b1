package smartauth

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeDocumentsEveryOption: every Caddyfile option the parser
// accepts is in README.md, in one of its Caddyfile examples (a ```caddy
// block, as `block { option … }` or at the top level of smart_auth) or
// named in backquotes; an option missing from README fails here, so that
// the reference cannot fall behind the parser.
func TestReadmeDocumentsEveryOption(t *testing.T) {
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	var blocks strings.Builder
	for _, m := range regexp.MustCompile("(?s)```caddy[a-z]*\n(.*?)```").FindAllStringSubmatch(readme, -1) {
		blocks.WriteString(m[1])
		blocks.WriteString("\n")
	}
	inBlocks := caddyfileOptions(blocks.String())
	parsed := parserOptions(parseParserSources(t))
	if len(parsed) < 40 {
		t.Fatalf("the parser's options were not found: %v", parsed.sorted())
	}
	for _, k := range parsed.sorted() {
		opt := k[strings.LastIndex(k, " ")+1:]
		if inBlocks[k] || strings.Contains(readme, "`"+opt+"`") || strings.Contains(readme, "**"+opt+"**") {
			continue
		}
		t.Errorf("README.md does not document the Caddyfile option %q", k)
	}
}
