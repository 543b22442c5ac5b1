// Package depcheck enforces the import rules between the module's packages
// (issue 11's design: the authorization server, registration and the guard
// never import one another; the shared packages never import them; store,
// keys and scopes import nothing under handlers/; oauth imports only the
// standard library).
//
// The rules are data: a table of Rule, each "packages matching From must not
// import, directly or through other packages, a package matching NotImport".
// A rule whose From matches no package (a package not written yet) holds
// vacuously. depcheck_test.go checks the module's real import graph, as
// `go list -deps -json` reports it, against Rules.
package depcheck

import (
	"fmt"
	"slices"
	"strings"
)

// Module is the module path the rules' patterns are relative to.
const Module = "github.com/smartcaddy/smartauth"

// Rule forbids imports: no package matching From may depend on a package
// matching NotImport (or, with StdOnly, on any package outside the standard
// library). Patterns are relative to Module: "handlers/authz" is that one
// package, "handlers/authz/..." also its sub-packages, "." the module's
// root package.
type Rule struct {
	// Name says which design rule this is, for the failure message.
	Name string
	// From are the patterns of the packages the rule constrains.
	From []string
	// NotImport are the patterns of the packages they must not depend on.
	NotImport []string
	// StdOnly forbids every package outside the standard library.
	StdOnly bool
	// OnlyModule, when set, is an allow-list: of the module's own
	// packages, only those matching one of these patterns may be
	// depended on (the constrained packages' own sub-packages always
	// may). Packages outside the module are not affected.
	OnlyModule []string
}

// Rules are the import rules of issue 11's design (rules 1 to 4), 1b: the
// child package authz/token never imports its parent authz, 5: the
// admin API (issue 14) sits beside the handlers, not in them, and 6: the
// metrics and the audit trail (issue 14) are leaves.
var Rules = []Rule{
	{Name: "1: authz does not import register or guard", From: []string{"handlers/authz/..."},
		NotImport: []string{"handlers/register/...", "handlers/guard/..."}},
	{Name: "1: register does not import authz or guard", From: []string{"handlers/register/..."},
		NotImport: []string{"handlers/authz/...", "handlers/guard/..."}},
	{Name: "1: guard does not import authz or register", From: []string{"handlers/guard/..."},
		NotImport: []string{"handlers/authz/...", "handlers/register/..."}},
	{Name: "1b: the token service (authz/token, the back channel) does not import its parent authz (the front channel)",
		From: []string{"handlers/authz/token/..."}, NotImport: []string{"handlers/authz"}},
	{Name: "2: authz, register and guard import only the shared packages, scopes, store and keys (not the router nor the module)",
		From:      []string{"handlers/authz/...", "handlers/register/...", "handlers/guard/..."},
		NotImport: []string{"handlers", ".", "smartcli/...", "cmd/...", "integration/..."},
		OnlyModule: []string{"handlers/oauth/...", "handlers/internal/...", "handlers/accesstoken/...", "handlers/users/...",
			"handlers/clients/...", "internal/metrics/...", "internal/audit/...", "scopes/...", "store/...", "keys/..."}},
	{Name: "3: the shared packages do not import authz, register, guard nor the router",
		From: []string{"handlers/oauth/...", "handlers/internal/...", "handlers/accesstoken/...", "handlers/users/...",
			"handlers/clients/...", "internal/..."},
		NotImport: []string{"handlers/authz/...", "handlers/register/...", "handlers/guard/...", "handlers", "."}},
	{Name: "3: oauth imports only the standard library", From: []string{"handlers/oauth/..."}, StdOnly: true},
	{Name: "4: store, keys and scopes import nothing under handlers/", From: []string{"store/...", "keys/...", "scopes/..."},
		NotImport: []string{"handlers/..."}},
	{Name: "5: the admin API (adminapi) imports only store, keys and the audit trail: the module hands it a Target, so it never reaches into the handlers",
		From: []string{"adminapi/..."}, NotImport: []string{"handlers/...", ".", "smartcli/...", "cmd/...", "integration/..."},
		OnlyModule: []string{"store/...", "keys/...", "internal/audit/..."}},
	{Name: "6: metrics and the audit trail (issue 14) are leaves every part may use: they import only store and keys",
		From: []string{"internal/metrics/...", "internal/audit/..."}, OnlyModule: []string{"store/...", "keys/..."}},
	{Name: "5: nothing below the module imports the admin API but the module and the command line",
		From:      []string{"handlers/...", "store/...", "keys/...", "scopes/..."},
		NotImport: []string{"adminapi/..."}},
}

// Package is a node of the import graph: what `go list -json` says of a
// package.
type Package struct {
	ImportPath string
	Standard   bool
	Imports    []string
}

// Graph is an import graph by import path.
type Graph map[string]*Package

// Violation is a package that depends on a package a rule forbids it.
type Violation struct {
	Rule Rule
	// Path is the chain of imports from the constrained package to the
	// forbidden one, both included.
	Path []string
}

// String describes the violation with its import chain.
func (v Violation) String() string {
	return fmt.Sprintf("rule %s: %s", v.Rule.Name, strings.Join(v.Path, " → "))
}

// Match tells whether an import path matches a pattern relative to
// Module ("." is the module's root package; a trailing "/..." also matches
// sub-packages).
func Match(pattern, importPath string) bool {
	full := Module
	if pattern != "." {
		full = Module + "/" + strings.TrimSuffix(pattern, "/...")
	}
	if importPath == full {
		return true
	}
	return strings.HasSuffix(pattern, "/...") && strings.HasPrefix(importPath, full+"/")
}

// matchAny tells whether an import path matches one of the patterns.
func matchAny(patterns []string, importPath string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return Match(p, importPath) })
}

// forbids tells whether the rule forbids a package constrained as from
// to depend on pkg.
func (r Rule) forbids(from string, pkg *Package) bool {
	if (r.StdOnly && !pkg.Standard) || matchAny(r.NotImport, pkg.ImportPath) {
		return true
	}
	inModule := pkg.ImportPath == Module || strings.HasPrefix(pkg.ImportPath, Module+"/")
	own := strings.HasPrefix(pkg.ImportPath, from+"/")
	return r.OnlyModule != nil && inModule && !own && !matchAny(r.OnlyModule, pkg.ImportPath)
}

// Constrained lists, in order, the packages of g a rule constrains: none
// when the packages it names do not exist (yet).
func (r Rule) Constrained(g Graph) []string {
	var out []string
	for path := range g {
		if matchAny(r.From, path) {
			out = append(out, path)
		}
	}
	slices.Sort(out)
	return out
}

// Check returns the violations of rules in g, at most one per constrained
// package and rule (the first forbidden dependency found, with the shortest
// import chain to it). Imports missing from g are leaves.
func Check(g Graph, rules []Rule) []Violation {
	var out []Violation
	for _, r := range rules {
		for _, from := range r.Constrained(g) {
			if path := forbiddenPath(g, r, from); path != nil {
				out = append(out, Violation{Rule: r, Path: path})
			}
		}
	}
	return out
}

// forbiddenPath searches the dependencies of from breadth first, in import
// order, and returns the chain to the first package the rule forbids, or
// nil.
func forbiddenPath(g Graph, r Rule, from string) []string {
	parent := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		p := g[cur]
		if p == nil {
			continue
		}
		for _, imp := range p.Imports {
			if _, seen := parent[imp]; seen {
				continue
			}
			parent[imp] = cur
			dep := g[imp]
			if dep == nil {
				// Not in the graph: a leaf; "C" is cgo's pseudo-package.
				dep = &Package{ImportPath: imp, Standard: imp == "C"}
			}
			if r.forbids(from, dep) {
				var path []string
				for at := imp; at != ""; at = parent[at] {
					path = append(path, at)
				}
				slices.Reverse(path)
				return path
			}
			queue = append(queue, imp)
		}
	}
	return nil
}
