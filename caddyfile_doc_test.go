package smartauth

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// parserBlocks maps each function of the Caddyfile parser to the block it
// parses: the options of a block are the strings its parser compares the
// option (or argument) token with.
var parserBlocks = map[string]string{
	"UnmarshalCaddyfile":    "smart_auth",
	"parseClient":           "client",
	"parseUser":             "user",
	"parseGuard":            "guard",
	"parseRegistration":     "registration",
	"parseIdentityProvider": "identity_provider",
	"parsePages":            "pages",
}

// parserSources are the files that hold the functions of parserBlocks.
var parserSources = []string{"caddyfile.go", "caddyfile_blocks.go", "guard_config.go", "registration_config.go", "identity_provider_config.go", "pages_config.go"}

// optionSet is a set of "block option" pairs, e.g. "client jwks_uri".
type optionSet map[string]bool

// sorted lists the set's pairs in order.
func (s optionSet) sorted() []string {
	out := make([]string, 0, len(s))
	for k := range s {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// missingFrom lists the pairs of s that other lacks.
func (s optionSet) missingFrom(other optionSet) []string {
	var out []string
	for _, k := range s.sorted() {
		if !other[k] {
			out = append(out, k)
		}
	}
	return out
}

// parserOptions reads the parser's source and collects, per block, the
// string literals of `case` clauses of a switch on `opt` and of `opt ==`,
// `opt !=`, `arg ==` and `arg !=` comparisons: the options (and the
// argument `open` of registration) the parser accepts.
func parserOptions(files map[string]*ast.File) optionSet {
	set := optionSet{}
	tokenName := func(e ast.Expr) bool {
		id, ok := e.(*ast.Ident)
		return ok && (id.Name == "opt" || id.Name == "arg")
	}
	add := func(block string, e ast.Expr) {
		lit, ok := e.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return
		}
		if v, err := strconv.Unquote(lit.Value); err == nil {
			set[block+" "+v] = true
		}
	}
	for _, f := range files {
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			block, ok := parserBlocks[fn.Name.Name]
			if !ok {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.SwitchStmt:
					if n.Tag == nil || !tokenName(n.Tag) {
						return true
					}
					for _, st := range n.Body.List {
						for _, e := range st.(*ast.CaseClause).List {
							add(block, e)
						}
					}
				case *ast.BinaryExpr:
					if n.Op != token.EQL && n.Op != token.NEQ {
						return true
					}
					if tokenName(n.X) {
						add(block, n.Y)
					} else if tokenName(n.Y) {
						add(block, n.X)
					}
				}
				return true
			})
		}
	}
	return set
}

// caddyfileOptions scans Caddyfile text (a golden file's Caddyfile, or the
// syntax block of a doc comment) line by line and collects "block option"
// pairs: the first word of each line inside a smart_auth, client, user,
// guard or registration block, and the word open after registration.
// Lines starting with # are comments.
func caddyfileOptions(text string) optionSet {
	set := optionSet{}
	var stack []string
	for line := range strings.SplitSeq(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if f[0] == "}" {
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		if len(stack) > 0 {
			if block := stack[len(stack)-1]; slices.Contains(slices.Collect(maps.Values(parserBlocks)), block) {
				set[block+" "+f[0]] = true
			}
		}
		if f[0] == "registration" {
			for _, a := range f[1:] {
				if a = strings.Trim(a, "[]"); a == "open" {
					set["registration open"] = true
				}
			}
		}
		if f[len(f)-1] == "{" {
			stack = append(stack, f[0])
		}
	}
	return set
}

// parseParserSources parses the parser's files with their comments.
func parseParserSources(t *testing.T) map[string]*ast.File {
	t.Helper()
	fset := token.NewFileSet()
	files := map[string]*ast.File{}
	for _, name := range parserSources {
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = f
	}
	return files
}

// syntaxComment returns the doc comment of UnmarshalCaddyfile.
func syntaxComment(t *testing.T, files map[string]*ast.File) string {
	t.Helper()
	for _, f := range files {
		for _, decl := range f.Decls {
			if fn, ok := decl.(*ast.FuncDecl); ok && fn.Name.Name == "UnmarshalCaddyfile" && fn.Doc != nil {
				return fn.Doc.Text()
			}
		}
	}
	t.Fatal("UnmarshalCaddyfile has no doc comment")
	return ""
}

// TestCaddyfileSyntaxCommentListsEveryOption fails when the syntax block in
// UnmarshalCaddyfile's doc comment lacks an option (or a sub-option of
// client, user, guard or registration) that the parser accepts, or lists
// one the parser does not know.
func TestCaddyfileSyntaxCommentListsEveryOption(t *testing.T) {
	files := parseParserSources(t)
	parsed := parserOptions(files)
	if len(parsed) < 40 || !parsed["smart_auth issuer"] || !parsed["client jwks_uri"] || !parsed["registration open"] {
		t.Fatalf("the parser's options were not found (did the parser functions move?): %v", parsed.sorted())
	}
	documented := caddyfileOptions(syntaxComment(t, files))
	for _, k := range parsed.missingFrom(documented) {
		t.Errorf("the parser accepts %q, the syntax comment of UnmarshalCaddyfile does not list it", k)
	}
	for _, k := range documented.missingFrom(parsed) {
		t.Errorf("the syntax comment of UnmarshalCaddyfile lists %q, the parser does not accept it", k)
	}
}

// TestCaddyfileSyntaxCheckFindsAMissingOption checks the check itself: a
// syntax block without one of the parser's options is caught, in the right
// block.
func TestCaddyfileSyntaxCheckFindsAMissingOption(t *testing.T) {
	files := parseParserSources(t)
	parsed := parserOptions(files)
	doc := syntaxComment(t, files)
	cut := strings.Replace(doc, "\t\t\tjwks_uri", "\t\t\t# jwks_uri", 1)
	if cut == doc {
		t.Fatal("the syntax comment has no client jwks_uri line")
	}
	if got := parsed.missingFrom(caddyfileOptions(cut)); !slices.Equal(got, []string{"client jwks_uri"}) {
		t.Fatalf("missing %v, want [client jwks_uri]", got)
	}
	// An option in the wrong block does not count.
	moved := "smart_auth {\n scopes a\n client c {\n issuer x\n }\n}"
	if got := caddyfileOptions(moved).sorted(); !slices.Equal(got, []string{"client issuer", "smart_auth client", "smart_auth scopes"}) {
		t.Fatalf("options of %q: %v", moved, got)
	}
}

// TestCaddyfileGoldensUseEveryOption fails when no golden adapter test
// (integration/testdata/caddyfile_adapt/*.caddyfiletest) uses an option the
// parser accepts.
func TestCaddyfileGoldensUseEveryOption(t *testing.T) {
	parsed := parserOptions(parseParserSources(t))
	paths, err := filepath.Glob(filepath.Join("integration", "testdata", "caddyfile_adapt", "*.caddyfiletest"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	used := optionSet{}
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		caddyfile, _, _ := strings.Cut(string(raw), "\n----------\n")
		for k := range caddyfileOptions(caddyfile) {
			used[k] = true
		}
	}
	for _, k := range parsed.missingFrom(used) {
		t.Errorf("no golden file in integration/testdata/caddyfile_adapt uses %q", k)
	}
}
