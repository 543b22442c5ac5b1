package smartauth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// This file finds, at provisioning, routes that keep requests from the
// handler or from the FHIR server (issue 15 §3 and §5): smart_auth placed
// where its issuer's paths or the FHIR base's discovery never reach it
// (inside `handle /fhir/*`), and a route after it that proxies `/r4/*`
// but not the base `/r4` itself, so that a batch `POST /r4` or a system
// search `GET /r4?…` is allowed by the guard and then answered by Caddy
// with an empty 200 that reached no FHIR server.
//
// Caddy hands a module the lineage of modules being provisioned
// (caddy.Context.Modules): the http app, the subroutes around the
// handler, the handler. At that moment every route's matchers of those
// levels are provisioned (Caddy provisions a route list's matchers
// before its handlers) and the routes whose handlers are still being
// loaded keep their raw JSON; the route holding a module is the first of
// its list still loading whose raw handlers hold the module's own. Only
// path matchers are evaluated (a path is what can be told for sure);
// any other matcher is taken to match. What cannot be found is not
// warned about.

// routeLevel is one route list around the handler: the route holding it
// (or the subroute holding it) and the routes after that one.
type routeLevel struct {
	holder *caddyhttp.Route
	after  []caddyhttp.Route
}

// routeWarnings returns warnings about the routes around the handler in
// ctx's lineage; none when the lineage is not an http app's.
func (s *SmartAuth) routeWarnings(ctx caddy.Context) []string {
	levels := s.routeLevels(ctx.Modules())
	if len(levels) == 0 {
		return nil
	}
	issuer, err1 := url.Parse(s.Issuer)
	base, err2 := url.Parse(s.FHIRBase)
	if err1 != nil || err2 != nil {
		return nil
	}
	ip, bp := strings.TrimSuffix(issuer.Path, "/"), strings.TrimSuffix(base.Path, "/")
	var out []string
	for _, probe := range []string{ip + "/authorize", bp + "/.well-known/smart-configuration"} {
		for _, l := range levels {
			if !pathMatches(l.holder.MatcherSets, probe) {
				out = append(out, fmt.Sprintf("smart_auth never receives %s: a route around it matches other paths only "+
					"(put smart_auth where both the issuer's and the FHIR base's paths reach it, e.g. at the site's top level)", probe))
				break
			}
		}
	}
	// The routes after smart_auth in its own route list: do those
	// receiving {base}/… also receive {base} itself? (Handlers after
	// smart_auth in its own route receive whatever it does.)
	sub, root, beside := false, s.followedInRoute(levels[0].holder), false
	for i := range levels[0].after {
		r := &levels[0].after[i]
		if len(r.HandlersRaw) == 0 && len(r.Handlers) == 0 {
			continue
		}
		sub = sub || pathMatches(r.MatcherSets, bp+"/Patient")
		root = root || pathMatches(r.MatcherSets, bp)
		// A path matcher written for the base that also takes paths
		// beside it (`/r4*` takes /r4x): those are not under the base,
		// so the guard does not check them.
		beside = beside || (hasPathMatcher(r.MatcherSets) && pathMatches(r.MatcherSets, bp+"-unguarded"))
	}
	if beside && bp != "" {
		out = append(out, fmt.Sprintf("a route after smart_auth matches paths beside the FHIR base such as %s-unguarded (a pattern like %s*), "+
			"which the guard does not check, since they are not under %s/: match %s %s/* instead", bp, bp, bp, bp, bp))
	}
	if sub && !root && bp != "" {
		out = append(out, fmt.Sprintf("the routes after smart_auth receive %s/… but not the FHIR base %s itself: "+
			"a batch POST %s or a search GET %s?… passes the guard and gets Caddy's empty 200 instead of the FHIR server's answer; "+
			"route both, e.g. reverse_proxy %s %s/* <upstream>", bp, bp, bp, bp, bp, bp))
	}
	return out
}

// followedInRoute tells whether handlers follow smart_auth in its own
// route.
func (s *SmartAuth) followedInRoute(r *caddyhttp.Route) bool {
	for i, raw := range r.HandlersRaw {
		if s.names(raw, s) {
			return i < len(r.HandlersRaw)-1
		}
	}
	return false
}

// routeLevels finds, from the lineage (the http app first, the handler
// last), the route holding each module of the lineage, innermost first.
func (s *SmartAuth) routeLevels(lineage []caddy.Module) []routeLevel {
	if len(lineage) < 2 {
		return nil
	}
	var levels []routeLevel
	for i := len(lineage) - 2; i >= 0; i-- {
		child := lineage[i+1]
		var lists []caddyhttp.RouteList
		switch m := lineage[i].(type) {
		case *caddyhttp.App:
			for _, srv := range m.Servers {
				lists = append(lists, srv.Routes)
			}
		case *caddyhttp.Subroute:
			lists = append(lists, m.Routes)
		default:
			return levels
		}
		found := false
		for _, list := range lists {
			if l, ok := s.holding(list, child); ok {
				levels = append(levels, l)
				found = true
				break
			}
		}
		if !found {
			return nil
		}
	}
	return levels
}

// holding finds the route of list whose handlers are being loaded and
// hold child: the first with raw handlers left, if they name child.
func (s *SmartAuth) holding(list caddyhttp.RouteList, child caddy.Module) (routeLevel, bool) {
	for i := range list {
		r := &list[i]
		if len(r.HandlersRaw) == 0 {
			continue
		}
		for _, raw := range r.HandlersRaw {
			if s.names(raw, child) {
				return routeLevel{holder: r, after: list[i+1:]}, true
			}
		}
		return routeLevel{}, false
	}
	return routeLevel{}, false
}

// names tells whether a raw handler is child: a subroute for a subroute,
// this handler's own configuration (its issuer) for a smart_auth.
func (s *SmartAuth) names(raw json.RawMessage, child caddy.Module) bool {
	var h struct {
		Handler  string `json:"handler"`
		Issuer   string `json:"issuer"`
		FHIRBase string `json:"fhir_base"`
	}
	if json.Unmarshal(raw, &h) != nil {
		return false
	}
	switch child.(type) {
	case *caddyhttp.Subroute:
		return h.Handler == "subroute"
	case *SmartAuth:
		return h.Handler == "smart_auth" && h.Issuer == s.Issuer && h.FHIRBase == s.FHIRBase
	}
	return bytes.Contains(raw, []byte(`"handler"`))
}

// hasPathMatcher tells whether a matcher set of sets has a path matcher.
func hasPathMatcher(sets caddyhttp.MatcherSets) bool {
	for _, set := range sets {
		for _, m := range set {
			switch m.(type) {
			case caddyhttp.MatchPath, *caddyhttp.MatchPath:
				return true
			}
		}
	}
	return false
}

// pathMatches tells whether a request for path could match sets,
// evaluating path matchers only (no sets: everything matches).
func pathMatches(sets caddyhttp.MatcherSets, path string) bool {
	if len(sets) == 0 {
		return true
	}
	req := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: path}, Header: http.Header{}}
	repl := caddy.NewReplacer()
	req = req.WithContext(context.WithValue(context.Background(), caddy.ReplacerCtxKey, repl))
	for _, set := range sets {
		ok := true
		for _, m := range set {
			var p caddyhttp.MatchPath
			switch v := m.(type) {
			case caddyhttp.MatchPath:
				p = v
			case *caddyhttp.MatchPath:
				p = *v
			default:
				continue
			}
			if match, err := p.MatchWithError(req); err == nil && !match {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}
