package scopes

import "net/url"

// restrictedPerms are the only permissions a scope with a query restriction
// ever gives: the guard can check a request's search parameters, not the
// content of a resource being created, updated or deleted.
const restrictedPerms = Read | Search

// Permits tells whether the granted scopes allow a request on the FHIR
// API. The guard calls it once per interaction (or per batch entry).
//
//   - context is Patient, User or System, or "" for any context.
//   - resourceType is the request's resource type, or "*" for a
//     system-level interaction (whole-system search or history); only a
//     wildcard scope covers "*", while a wildcard scope covers every type.
//   - need is the set of permissions the interaction needs (Read for
//     read/vread/instance history, Search for search and type or system
//     history, Create, Update, Delete). All of need must be given; the
//     permissions may come from several scopes of one context (never
//     patient/ letters joined with user/ ones). An empty need is refused.
//   - params are the request's search parameters (query string and, for
//     POST _search, the form body).
//
// A scope with a query restriction counts only when params carry each of
// its (key, value) pairs, compared literally (see query.go), and then it
// gives only Read and Search, whatever its letters. So a restricted scope
// never allows a create, update or delete, and allows a read by id only
// if the guard passes the restriction in params (e.g. a read rewritten as
// a search with _id).
//
// Non-resource scopes in granted are ignored.
func Permits(granted []Scope, context Context, resourceType string, need Perms, params url.Values) bool {
	if need == 0 || resourceType == "" {
		return false
	}
	have := map[Context]Perms{}
	for _, s := range granted {
		if !s.IsResource() || (context != "" && s.Context != context) {
			continue
		}
		if s.ResourceType != "*" && s.ResourceType != resourceType {
			continue
		}
		p := s.Perms
		if len(s.Query) > 0 {
			if !includes(params, s.Query) {
				continue
			}
			p &= restrictedPerms
		}
		have[s.Context] |= p
		if have[s.Context].Has(need) {
			return true
		}
	}
	return false
}
