package depcheck

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// loadGraph runs `go list -deps -json` on every package of the module
// (test files excluded: the rules are about the code that ships) and
// returns the import graph it reports.
func loadGraph(t *testing.T) Graph {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed: %v", err)
	}
	cmd := exec.Command(goTool, "list", "-deps", "-json=ImportPath,Standard,Imports", Module+"/...")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	g := Graph{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p Package
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		g[p.ImportPath] = &p
	}
	return g
}

// TestModuleImportRules checks the module's import graph against Rules:
// the dependency direction of issue 11. Every rule must constrain at least
// one package: all the packages the design names exist, so a rule matching
// none is a renamed or misspelt package, not a rule that holds.
func TestModuleImportRules(t *testing.T) {
	g := loadGraph(t)
	// The graph is the module's: a broken `go list` must not make every
	// rule vacuous.
	for _, want := range []string{Module, Module + "/handlers", Module + "/store", Module + "/keys", Module + "/scopes", "net/http"} {
		if g[want] == nil {
			t.Fatalf("go list did not report %s", want)
		}
	}
	if !g["net/http"].Standard || g[Module].Standard || !slices.Contains(g[Module].Imports, Module+"/handlers") {
		t.Fatalf("go list's graph is not the module's: %+v", g[Module])
	}
	for _, r := range Rules {
		if pkgs := r.Constrained(g); len(pkgs) == 0 {
			t.Errorf("rule %s: constrains no package (a package was renamed or removed: update Rules)", r.Name)
		} else {
			t.Logf("rule %s: %d package(s): %s", r.Name, len(pkgs), strings.Join(pkgs, " "))
		}
	}
	for _, v := range Check(g, Rules) {
		t.Errorf("%s", v)
	}
}

// syntheticGraph builds a graph from "pkg: imp imp …" lines. "M" stands
// for Module ("M" the root package, "M/store" its store); other paths are
// as they are, standard when their first element has no dot.
func syntheticGraph(lines ...string) Graph {
	abs := func(p string) string {
		if p == "M" || strings.HasPrefix(p, "M/") {
			return Module + strings.TrimPrefix(p, "M")
		}
		return p
	}
	std := func(p string) bool {
		return p != "M" && !strings.HasPrefix(p, "M/") && !strings.Contains(strings.Split(p, "/")[0], ".")
	}
	g := Graph{}
	for _, l := range lines {
		from, imps, _ := strings.Cut(l, ":")
		p := &Package{ImportPath: abs(from), Standard: std(from)}
		for _, i := range strings.Fields(imps) {
			p.Imports = append(p.Imports, abs(i))
		}
		g[p.ImportPath] = p
	}
	return g
}

// relative writes an import chain with "M" for Module.
func relative(path []string) string {
	rel := make([]string, len(path))
	for i, p := range path {
		rel[i] = p
		if p == Module || strings.HasPrefix(p, Module+"/") {
			rel[i] = "M" + strings.TrimPrefix(p, Module)
		}
	}
	return strings.Join(rel, " → ")
}

// TestCheckFindsViolations checks the checker on synthetic graphs: a
// violation of each kind is found with its import chain, a clean graph
// passes, and absent packages make their rules vacuous.
func TestCheckFindsViolations(t *testing.T) {
	clean := []string{
		"M: M/handlers M/store",
		"M/handlers: M/handlers/authz M/handlers/guard M/handlers/register M/handlers/oauth",
		"M/handlers/authz: M/handlers/authz/token M/handlers/clients M/handlers/accesstoken M/handlers/users M/handlers/oauth M/scopes M/store M/keys M/handlers/internal/throttle",
		"M/handlers/authz/token: M/handlers/clients M/handlers/accesstoken M/handlers/users M/handlers/oauth M/scopes M/store M/keys",
		"M/handlers/guard: M/handlers/accesstoken M/handlers/clients M/handlers/oauth M/scopes M/store",
		"M/handlers/register: M/handlers/clients M/handlers/oauth M/handlers/internal/throttle M/store",
		"M/handlers/clients: M/handlers/oauth M/store net/http",
		"M/handlers/accesstoken: M/store M/keys",
		"M/handlers/users: M/scopes",
		"M/handlers/oauth: net/http encoding/json",
		"M/handlers/internal/throttle: sync",
		"M/store: os", "M/keys: M/store", "M/scopes: strings",
		"net/http: io", "encoding/json: io", "io:", "os:", "sync:", "strings:",
	}
	if v := Check(syntheticGraph(clean...), Rules); len(v) != 0 {
		t.Fatalf("a clean graph has violations: %v", v)
	}
	for _, tc := range []struct {
		name  string
		edit  string // a line replacing the clean graph's line of the same package
		rule  string // the rule's name starts with it
		chain string // the import chain, "M" for Module
	}{
		{"guard imports authz", "M/handlers/guard: M/handlers/authz", "1: guard", "M/handlers/guard → M/handlers/authz"},
		{"authz reaches register through a shared package", "M/handlers/clients: M/handlers/register", "1: authz", "M/handlers/authz → M/handlers/clients → M/handlers/register"},
		{"register imports the router", "M/handlers/register: M/handlers", "1: register", "M/handlers/register → M/handlers → M/handlers/authz"},
		{"the token service imports its parent authz", "M/handlers/authz/token: M/handlers/oauth M/handlers/authz", "1b:", "M/handlers/authz/token → M/handlers/authz"},
		{"the token service imports guard", "M/handlers/authz/token: M/handlers/guard", "1: authz", "M/handlers/authz/token → M/handlers/guard"},
		{"guard imports the module root", "M/handlers/guard: M", "2:", "M/handlers/guard → M"},
		{"register imports a module package outside the allow-list", "M/handlers/register: M/handlers/clients M/internal/depcheck", "2:", "M/handlers/register → M/internal/depcheck"},
		{"users imports guard", "M/handlers/users: M/handlers/guard", "3: the shared", "M/handlers/users → M/handlers/guard"},
		{"throttle imports the router", "M/handlers/internal/throttle: M/handlers", "3: the shared", "M/handlers/internal/throttle → M/handlers"},
		{"oauth imports a module package", "M/handlers/oauth: net/http M/scopes", "3: oauth", "M/handlers/oauth → M/scopes"},
		{"oauth imports a third-party package", "M/handlers/oauth: golang.org/x/text", "3: oauth", "M/handlers/oauth → golang.org/x/text"},
		{"store imports handlers/oauth", "M/store: os M/handlers/oauth", "4:", "M/store → M/handlers/oauth"},
		{"keys reaches handlers through store", "M/store: M/handlers/clients", "4:", "M/keys → M/store → M/handlers/clients"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkg, _, _ := strings.Cut(tc.edit, ":")
			var lines []string
			for _, l := range clean {
				if from, _, _ := strings.Cut(l, ":"); from != pkg {
					lines = append(lines, l)
				}
			}
			lines = append(lines, tc.edit)
			var found []string
			for _, v := range Check(syntheticGraph(lines...), Rules) {
				chain := relative(v.Path)
				found = append(found, v.Rule.Name+" | "+chain)
				if strings.HasPrefix(v.Rule.Name, tc.rule) && chain == tc.chain {
					return
				}
			}
			t.Fatalf("no violation of rule %q with chain %q; found:\n%s", tc.rule, tc.chain, strings.Join(found, "\n"))
		})
	}
	// Packages that do not exist make their rules hold vacuously.
	if v := Check(syntheticGraph("M/store: os", "os:"), Rules); len(v) != 0 {
		t.Fatalf("violations in a graph without handlers: %v", v)
	}
	if n := len(Rules[0].Constrained(syntheticGraph("M/store: os"))); n != 0 {
		t.Fatalf("rule %s constrains %d packages of a graph without them", Rules[0].Name, n)
	}
}

// TestMatch checks the patterns: exact, with sub-packages, the root.
func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, path string
		want          bool
	}{
		{"handlers", Module + "/handlers", true},
		{"handlers", Module + "/handlers/oauth", false},
		{"handlers/...", Module + "/handlers", true},
		{"handlers/...", Module + "/handlers/oauth", true},
		{"handlers/...", Module + "/handlersx", false},
		{".", Module, true},
		{".", Module + "/store", false},
		{"store/...", "store", false},
	} {
		if got := Match(tc.pattern, tc.path); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.path, got, tc.want)
		}
	}
}
