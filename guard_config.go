package smartauth

import (
	"errors"
	"fmt"
	"net/textproto"
	"regexp"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/smartcaddy/smartauth/handlers/guard"
	"github.com/smartcaddy/smartauth/scopes"
)

// GuardConfig configures the guard in front of the FHIR API. In a
// Caddyfile it is the `guard { … }` block of `smart_auth`:
//
//	guard {
//		cors_origins <origin>... | *
//		operation <$name> <ResourceType|*> <permissions>
//		allow_outside_compartment <ResourceType>...
//		header <Name> <value>
//		revocation_staleness <duration>|off
//	}
//
// Every option but revocation_staleness may be repeated; lists add up.
type GuardConfig struct {
	// CORSOrigins are the origins (scheme://host[:port]) browser apps may
	// call the FHIR API from; "*" allows any origin. Default: the origins
	// of the registered clients' redirect and launch URIs, including
	// dynamically registered ones. (`cors_origins`)
	CORSOrigins []string `json:"cors_origins,omitempty"`

	// Operations allow FHIR operations besides the built-in $everything
	// (Patient) and $export (system, Patient, Group). Any other operation
	// is refused. (`operation`)
	Operations []GuardOperation `json:"operations,omitempty"`

	// AllowOutsideCompartment lists resource types outside the FHIR R4
	// Patient compartment that patient/ scopes may reach when the scopes
	// name them (e.g. Medication, Organization, Practitioner, Location).
	// Default: none. (`allow_outside_compartment`)
	AllowOutsideCompartment []string `json:"allow_outside_compartment,omitempty"`

	// Headers are request headers set for the handlers after the guard
	// (reverse_proxy sends them upstream) once a request is allowed;
	// values may use placeholders such as {smart.patient}. They are
	// removed from every incoming request, so clients cannot forge them.
	// (`header`)
	Headers []GuardHeader `json:"headers,omitempty"`

	// RevocationStaleness bounds how long the guard serves tokens from its
	// cache without having read the store's revocation log: when the
	// store has been unreachable from this instance for longer, a cached
	// token is answered 503 with Retry-After (as a token the guard cannot
	// check), so that a revocation recorded through another instance
	// meanwhile is never ignored for longer than this. At least 1s.
	// Default 1m. "off" (JSON: a negative duration) serves cached tokens
	// until they expire. (`revocation_staleness`)
	RevocationStaleness caddy.Duration `json:"revocation_staleness,omitempty"`
}

// minRevocationStaleness is the smallest revocation_staleness: a few of
// the guard's revocation polls (every 250 ms), so that one slow read does
// not refuse cached tokens.
const minRevocationStaleness = time.Second

// GuardOperation allows a FHIR operation.
type GuardOperation struct {
	// Name is the operation with its "$", e.g. "$validate".
	Name string `json:"name"`
	// ResourceType is the type it may be invoked on (type or instance
	// level), or "*" for every type and the system level.
	ResourceType string `json:"resource_type"`
	// Permissions are the SMART v2 letters (an in-order subset of
	// "cruds") the token's scopes must give on that resource type ("*"
	// at the system level), e.g. "r" or "rs".
	Permissions string `json:"permissions"`
}

// GuardHeader is a request header the guard sets.
type GuardHeader struct {
	// Name is the header name.
	Name string `json:"name"`
	// Value is the value, with placeholders.
	Value string `json:"value"`
}

var (
	guardOperationRE = regexp.MustCompile(`^\$[A-Za-z][A-Za-z0-9\-_]{0,63}$`)
	guardTypeRE      = regexp.MustCompile(`^[A-Z][A-Za-z]{1,63}$`)
	guardHeaderRE    = regexp.MustCompile("^[!#$%&'*+\\-.^_`|~0-9A-Za-z]+$")
	guardPermsRE     = regexp.MustCompile(`^c?r?u?d?s?$`)
)

// guardReservedHeaders may not be set by the guard: they carry the
// request's own framing, host or credentials.
var guardReservedHeaders = map[string]bool{
	"Authorization": true, "Host": true, "Content-Length": true, "Content-Type": true,
	"Transfer-Encoding": true, "Connection": true, "Cookie": true, "Origin": true,
}

// parseGuard reads a `guard { … }` block.
func parseGuard(d *caddyfile.Dispenser) (*GuardConfig, error) {
	g := &GuardConfig{}
	if d.NextArg() {
		return nil, d.Errf("guard: takes a block, not %q", d.Val())
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		args := d.RemainingArgs()
		var err error
		switch opt {
		case "cors_origins":
			if len(args) == 0 {
				return nil, d.Errf("guard: cors_origins: at least one origin (or *) is required")
			}
			g.CORSOrigins = append(g.CORSOrigins, args...)
			err = g.checkOrigins()
		case "operation":
			if len(args) != 3 {
				return nil, d.Errf("guard: operation: want <$name> <ResourceType|*> <permissions>")
			}
			op := GuardOperation{Name: args[0], ResourceType: args[1], Permissions: args[2]}
			g.Operations = append(g.Operations, op)
			err = op.check()
		case "allow_outside_compartment":
			if len(args) == 0 {
				return nil, d.Errf("guard: allow_outside_compartment: at least one resource type is required")
			}
			g.AllowOutsideCompartment = append(g.AllowOutsideCompartment, args...)
			err = g.checkOutside()
		case "header":
			if len(args) != 2 {
				return nil, d.Errf("guard: header: want <Name> <value>")
			}
			h := GuardHeader{Name: args[0], Value: args[1]}
			g.Headers = append(g.Headers, h)
			err = h.check()
		case "revocation_staleness":
			if len(args) != 1 {
				return nil, d.Errf("guard: revocation_staleness: want <duration> or off")
			}
			if args[0] == "off" {
				g.RevocationStaleness = -1
				break
			}
			dur, perr := caddy.ParseDuration(args[0])
			if perr != nil {
				return nil, d.Errf("guard: revocation_staleness: %v", perr)
			}
			g.RevocationStaleness = caddy.Duration(dur)
			err = g.checkStaleness()
		default:
			return nil, d.Errf("guard: unrecognized subdirective '%s'", opt)
		}
		if err != nil {
			return nil, d.Errf("guard: %s: %v", opt, err)
		}
	}
	return g, nil
}

// validate checks a guard configuration; nil is valid (the defaults).
func (g *GuardConfig) validate() error {
	if g == nil {
		return nil
	}
	if err := g.checkOrigins(); err != nil {
		return fmt.Errorf("cors_origins: %w", err)
	}
	for _, op := range g.Operations {
		if err := op.check(); err != nil {
			return fmt.Errorf("operation: %w", err)
		}
	}
	if err := g.checkOutside(); err != nil {
		return fmt.Errorf("allow_outside_compartment: %w", err)
	}
	for _, h := range g.Headers {
		if err := h.check(); err != nil {
			return fmt.Errorf("header: %w", err)
		}
	}
	if err := g.checkStaleness(); err != nil {
		return fmt.Errorf("revocation_staleness: %w", err)
	}
	return nil
}

// checkStaleness checks revocation_staleness: unset, off (negative) or at
// least minRevocationStaleness.
func (g *GuardConfig) checkStaleness() error {
	if d := time.Duration(g.RevocationStaleness); d > 0 && d < minRevocationStaleness {
		return fmt.Errorf("%s: must be at least %s (or off)", d, minRevocationStaleness)
	}
	return nil
}

func (g *GuardConfig) checkOrigins() error {
	for _, o := range g.CORSOrigins {
		if o == "*" {
			continue
		}
		if err := checkOrigin(o); err != nil {
			return err
		}
	}
	return nil
}

func (g *GuardConfig) checkOutside() error {
	for _, t := range g.AllowOutsideCompartment {
		if !guardTypeRE.MatchString(t) {
			return fmt.Errorf("%q is not a FHIR resource type", t)
		}
		if t == "Patient" {
			return errors.New("the Patient type is the compartment itself")
		}
	}
	return nil
}

func (op GuardOperation) check() error {
	switch {
	case !guardOperationRE.MatchString(op.Name):
		return fmt.Errorf("%q is not an operation name ($name)", op.Name)
	case op.Name == "$everything" || op.Name == "$export":
		return fmt.Errorf("%s is built in and cannot be configured", op.Name)
	case op.ResourceType != "*" && !guardTypeRE.MatchString(op.ResourceType):
		return fmt.Errorf("%q is not a FHIR resource type or *", op.ResourceType)
	case op.Permissions == "" || !guardPermsRE.MatchString(op.Permissions):
		return fmt.Errorf("%q: permissions are SMART v2 letters in the order c r u d s", op.Permissions)
	}
	return nil
}

func (h GuardHeader) check() error {
	switch {
	case !guardHeaderRE.MatchString(h.Name):
		return fmt.Errorf("%q is not a header name", h.Name)
	case guardReservedHeaders[textproto.CanonicalMIMEHeaderKey(h.Name)]:
		return fmt.Errorf("%s cannot be set by the guard", h.Name)
	case strings.TrimSpace(h.Value) == "":
		return errors.New("a value is required")
	}
	return nil
}

// options converts the configuration for the guard (guard.Options).
func (g *GuardConfig) options() (guard.Options, error) {
	if g == nil {
		return guard.Options{}, nil
	}
	o := guard.Options{
		CORSOrigins:         g.CORSOrigins,
		OutsideCompartment:  g.AllowOutsideCompartment,
		RevocationStaleness: time.Duration(g.RevocationStaleness),
	}
	for _, op := range g.Operations {
		sc, err := scopes.Parse("system/Basic." + op.Permissions)
		if err != nil {
			return o, fmt.Errorf("operation %s: %w", op.Name, err)
		}
		o.Operations = append(o.Operations, guard.OperationRule{Name: op.Name, ResourceType: op.ResourceType, Perms: sc.Perms})
	}
	for _, h := range g.Headers {
		o.Headers = append(o.Headers, guard.HeaderRule{Name: textproto.CanonicalMIMEHeaderKey(h.Name), Value: h.Value})
	}
	return o, nil
}
