package guard

import (
	"net/url"

	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/scopes"
)

// Scope contexts, tried in this order: system/ and user/ scopes reach
// everything their bounds allow; patient/ scopes only the context
// patient's compartment.
var scopeContexts = [...]scopes.Context{scopes.System, scopes.User, scopes.Patient}

// decide finds the first scope context whose granted scopes (within their
// bounds) permit an interaction, or refuses with insufficient_scope. It
// answers scopes.Patient whenever the patient compartment's rules apply:
// for patient/ scopes, and for user/ scopes of a user confined to their
// own record (a Patient user, users.Rule).
func (g *Guard) decide(p *principal, in *interaction) (scopes.Context, *oauth.Error) {
	need, rtype, contexts, fault := g.interactionNeed(in)
	if fault != nil {
		return "", fault
	}
	for _, ctx := range contexts {
		if permits(p, ctx, rtype, need, in.params) {
			if p.confined {
				return scopes.Patient, nil
			}
			return ctx, nil
		}
	}
	ctx := scopes.System
	switch {
	case p.patient != "" && contexts[len(contexts)-1] == scopes.Patient:
		ctx = scopes.Patient
	case p.hasUser:
		ctx = scopes.User
	}
	want := string(ctx) + "/" + rtype + "." + need.String()
	return "", forbidden(want, "the token's scopes do not permit "+describeInteraction(in)+" (needs "+want+")")
}

// describeInteraction names an interaction for messages and logs.
func describeInteraction(in *interaction) string {
	d := in.name
	if in.op != "" {
		d += " " + in.op
	}
	if in.resourceType != "" {
		d += " on " + in.resourceType
	}
	return d
}

// interactionNeed returns what an interaction needs: permissions, the
// resource type the scopes must name ("*" for the system level), and the
// scope contexts that may allow it.
func (g *Guard) interactionNeed(in *interaction) (scopes.Perms, string, []scopes.Context, *oauth.Error) {
	rtype := in.resourceType
	if rtype == "" {
		rtype = "*"
	}
	all := scopeContexts[:]
	if in.name != ixOperation {
		return in.need, rtype, all, nil
	}
	everything := scopes.Read | scopes.Search
	switch {
	case in.op == "$everything" && in.resourceType == "Patient" && in.level == "instance":
		return everything, "*", all, nil
	case in.op == "$everything" && in.resourceType == "Patient" && in.level == "type",
		in.op == "$export" && (in.level == "system" ||
			in.level == "type" && in.resourceType == "Patient" ||
			in.level == "instance" && in.resourceType == "Group"):
		return everything, "*", all[:2], nil
	}
	for _, rule := range g.opts.Operations {
		if rule.Name == in.op && (rule.ResourceType == "*" || rule.ResourceType == in.resourceType) {
			return rule.Perms, rtype, all, nil
		}
	}
	return 0, rtype, nil, forbidden("", "the operation "+in.op+" is not allowed by the guard's configuration")
}

// permits tells whether p's scopes of one context permit need on rtype:
// the granted scopes, and the bound of that context. A patient/ scope
// needs a patient in context; a user/ scope a user whose reach allows
// user/ scopes; a system/ scope a token without a user (whatever a token
// with a user carries, system/ scopes never count for it). The user's
// configured scopes bound user/ and patient/ scopes, the client's
// configured scopes bound system/ scopes.
func permits(p *principal, ctx scopes.Context, rtype string, need scopes.Perms, params url.Values) bool {
	switch ctx {
	case scopes.Patient:
		if p.patient == "" {
			return false
		}
	case scopes.User:
		if !p.hasUser || !p.userScopes {
			return false
		}
	case scopes.System:
		if p.hasUser {
			return false
		}
	}
	if !scopes.Permits(p.granted, ctx, rtype, need, params) {
		return false
	}
	switch ctx {
	case scopes.System:
		return p.clientBound == nil || scopes.Permits(p.clientBound, ctx, rtype, need, params)
	default:
		return p.userBound == nil || scopes.Permits(p.userBound, ctx, rtype, need, params)
	}
}
