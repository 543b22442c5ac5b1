package guard

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/scopes"
)

// FHIR REST interactions the guard knows (FHIR R4 http.html), by the name
// used in audit entries.
const (
	ixCapabilities  = "capabilities"
	ixRead          = "read"
	ixVRead         = "vread"
	ixUpdate        = "update"
	ixPatch         = "patch"
	ixDelete        = "delete"
	ixHistoryInst   = "history-instance"
	ixHistoryType   = "history-type"
	ixHistorySystem = "history-system"
	ixCreate        = "create"
	ixSearchType    = "search-type"
	ixSearchSystem  = "search-system"
	ixSearchCompart = "search-compartment"
	ixCondCreate    = "conditional-create"
	ixCondUpdate    = "conditional-update"
	ixCondPatch     = "conditional-patch"
	ixCondDelete    = "conditional-delete"
	ixBatch         = "batch"
	ixOperation     = "operation"
)

// interaction is one FHIR REST interaction asked for by a request or a
// bundle entry.
type interaction struct {
	name   string
	method string // GET for HEAD
	// resourceType is the type acted on ("" at the system level); for a
	// compartment search Patient/{id}/Type it is Type.
	resourceType string
	id, version  string
	// op is the operation's name with its "$"; level is "system", "type"
	// or "instance" for operations.
	op    string
	level string
	// compartment is the patient id of a compartment search.
	compartment string
	// need is the scope permissions the interaction needs.
	need scopes.Perms
	// params are the search parameters (query, and form body of POST
	// _search); ifNoneExist holds those of a conditional create.
	params      url.Values
	ifNoneExist url.Values
}

// Syntax of the path segments the guard lets through. Anything else is
// refused with 400, so that the upstream never sees a path the guard read
// differently (encoded slashes, dot segments, matrix parameters).
var (
	resourceTypeRE = regexp.MustCompile(`^[A-Z][A-Za-z]{1,63}$`)
	idRE           = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
	operationRE    = regexp.MustCompile(`^\$[A-Za-z][A-Za-z0-9\-_]{0,63}$`)
)

// validID tells whether s is a FHIR id (and not a dot segment).
func validID(s string) bool { return s != "." && s != ".." && idRE.MatchString(s) }

// parseRequestInteraction reads the interaction of a request under the
// FHIR base; rel is its path relative to the base, rp its parameters as
// refuseOverride parsed them.
func parseRequestInteraction(r *http.Request, rel string, rp requestParams) (*interaction, *oauth.Error) {
	if r.URL.RawPath != "" && r.URL.RawPath != r.URL.Path {
		return nil, badRequest("the request path must not use percent-encoding")
	}
	return parseInteraction(r.Method, rel, rp.query, rp.ifNoneExist)
}

// parseInteraction maps a method and a path relative to the FHIR base to
// an interaction and the scope permissions it needs (SMART scopes §5.2):
// r for read, vread and instance history; s for searches and type or
// system history; c for create; u for update and patch; d for delete.
// Conditional interactions also need s (they search): conditional create
// c+s, conditional update c+u+s (it may create), conditional patch u+s,
// conditional delete d+s. Operations get their needs from opNeed.
func parseInteraction(method, rel string, params, ifNoneExist url.Values) (*interaction, *oauth.Error) {
	if method == http.MethodHead {
		method = http.MethodGet
	}
	var segs []string
	if rel != "" {
		segs = strings.Split(rel, "/")
	}
	in := &interaction{params: params, method: method}
	if params == nil {
		in.params = url.Values{}
	}
	for _, sg := range segs {
		if sg == "" {
			return nil, badRequest("the request path has an empty segment")
		}
	}
	switch {
	case len(segs) == 0:
		switch method {
		case http.MethodGet:
			in.name, in.need = ixSearchSystem, scopes.Search
		case http.MethodPost:
			in.name = ixBatch
		default:
			return nil, unsupported(method)
		}
		return in, nil
	case segs[0] == "metadata" && len(segs) == 1:
		if method != http.MethodGet {
			return nil, unsupported(method)
		}
		in.name = ixCapabilities
		return in, nil
	case segs[0] == "_history" && len(segs) == 1:
		if method != http.MethodGet {
			return nil, unsupported(method)
		}
		in.name, in.need = ixHistorySystem, scopes.Search
		return in, nil
	case segs[0] == "_search" && len(segs) == 1:
		if method != http.MethodPost {
			return nil, unsupported(method)
		}
		in.name, in.need = ixSearchSystem, scopes.Search
		return in, nil
	case strings.HasPrefix(segs[0], "$") && len(segs) == 1:
		if !operationRE.MatchString(segs[0]) {
			return nil, badRequest("malformed operation name")
		}
		in.name, in.op, in.level = ixOperation, segs[0], "system"
		return in, nil
	}
	if !resourceTypeRE.MatchString(segs[0]) {
		return nil, badRequest("unknown path: not a resource type")
	}
	in.resourceType = segs[0]
	if len(segs) == 1 {
		return typeLevel(in, method, ifNoneExist)
	}
	switch s1 := segs[1]; {
	case len(segs) == 2 && s1 == "_search":
		if method != http.MethodPost {
			return nil, unsupported(method)
		}
		in.name, in.need = ixSearchType, scopes.Search
		return in, nil
	case len(segs) == 2 && s1 == "_history":
		if method != http.MethodGet {
			return nil, unsupported(method)
		}
		in.name, in.need = ixHistoryType, scopes.Search
		return in, nil
	case len(segs) == 2 && strings.HasPrefix(s1, "$"):
		if !operationRE.MatchString(s1) {
			return nil, badRequest("malformed operation name")
		}
		in.name, in.op, in.level = ixOperation, s1, "type"
		return in, nil
	case !validID(s1):
		return nil, badRequest("malformed resource id")
	}
	in.id = segs[1]
	if len(segs) == 2 {
		return instanceLevel(in, method)
	}
	switch s2 := segs[2]; {
	case len(segs) == 3 && s2 == "_history" && method == http.MethodGet:
		in.name, in.need = ixHistoryInst, scopes.Read
	case len(segs) == 4 && s2 == "_history" && method == http.MethodGet && validID(segs[3]):
		in.name, in.need, in.version = ixVRead, scopes.Read, segs[3]
	case len(segs) == 3 && strings.HasPrefix(s2, "$") && operationRE.MatchString(s2):
		in.name, in.op, in.level = ixOperation, s2, "instance"
	case len(segs) == 3 && in.resourceType == "Patient" && resourceTypeRE.MatchString(s2) && method == http.MethodGet:
		in.name, in.need, in.compartment = ixSearchCompart, scopes.Search, in.id
		in.resourceType, in.id = s2, ""
	case s2 == "_history" && len(segs) <= 4:
		return nil, unsupported(method)
	default:
		return nil, badRequest("unknown path")
	}
	return in, nil
}

// typeLevel handles [base]/Type: search, create, conditional interactions.
func typeLevel(in *interaction, method string, ifNoneExist url.Values) (*interaction, *oauth.Error) {
	conditional := len(in.params) > 0
	switch method {
	case http.MethodGet:
		in.name, in.need = ixSearchType, scopes.Search
	case http.MethodPost:
		in.name, in.need = ixCreate, scopes.Create
		if ifNoneExist != nil {
			in.name, in.need, in.ifNoneExist = ixCondCreate, scopes.Create|scopes.Search, ifNoneExist
		}
	case http.MethodPut:
		if !conditional {
			return nil, badRequest("an update needs a resource id or search parameters")
		}
		in.name, in.need = ixCondUpdate, scopes.Create|scopes.Update|scopes.Search
	case http.MethodPatch:
		if !conditional {
			return nil, badRequest("a patch needs a resource id or search parameters")
		}
		in.name, in.need = ixCondPatch, scopes.Update|scopes.Search
	case http.MethodDelete:
		if !conditional {
			return nil, badRequest("a delete needs a resource id or search parameters")
		}
		in.name, in.need = ixCondDelete, scopes.Delete|scopes.Search
	default:
		return nil, unsupported(method)
	}
	return in, nil
}

// instanceLevel handles [base]/Type/id: read, update, patch, delete.
func instanceLevel(in *interaction, method string) (*interaction, *oauth.Error) {
	switch method {
	case http.MethodGet:
		in.name, in.need = ixRead, scopes.Read
	case http.MethodPut:
		in.name, in.need = ixUpdate, scopes.Update
	case http.MethodPatch:
		in.name, in.need = ixPatch, scopes.Update
	case http.MethodDelete:
		in.name, in.need = ixDelete, scopes.Delete
	default:
		return nil, unsupported(method)
	}
	return in, nil
}

// unsupported refuses a method the path does not take (405). It is built
// only on refusal, not for every request.
func unsupported(method string) *oauth.Error {
	return &oauth.Error{Status: http.StatusMethodNotAllowed, Description: method + " is not supported on this path"}
}
