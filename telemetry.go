package smartauth

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/internal/audit"
	"github.com/smartcaddy/smartauth/internal/metrics"
	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/store"
)

// This file wires the metrics (internal/metrics) and the audit trail
// (internal/audit) into a provisioned handler: Provision in smartauth.go
// calls provisionTelemetry and watchKeys, Cleanup cleanupTelemetry.

// AuditEventsConfig writes the audit trail (token issuance and refusals,
// sign-ins, consents, revocations, registrations, admin actions) also as
// FHIR R4 AuditEvent resources, besides the log entries, for sites that
// keep their audit trail in FHIR. Give File or FHIR, not both. Events are
// queued (bounded) and written by one goroutine: a slow or failing sink
// never delays a request; what it cannot take is dropped and counted in
// smart_auth_audit_events_dropped_total.
type AuditEventsConfig struct {
	// File is a file the AuditEvents are appended to, one JSON object a
	// line (created with mode 0600 when absent). Placeholders such as
	// {env.*} are resolved.
	File string `json:"file,omitempty"`
	// FHIR is the base URL of a FHIR R4 server: each AuditEvent is POSTed
	// to {FHIR}/AuditEvent, without credentials (give the FHIR server's
	// internal address, as reverse_proxy uses it, or a proxy that accepts
	// them from this host). An http(s) URL without query or user info.
	FHIR string `json:"fhir,omitempty"`
}

// validate checks that one sink is named, and the URL.
func (c *AuditEventsConfig) validate() error {
	if c == nil {
		return nil
	}
	switch {
	case c.File == "" && c.FHIR == "":
		return errors.New("give file or fhir")
	case c.File != "" && c.FHIR != "":
		return errors.New("give file or fhir, not both")
	case c.FHIR != "":
		if _, err := checkUpstreamURL(c.FHIR); err != nil {
			return fmt.Errorf("fhir: %w", err)
		}
	}
	return nil
}

// parseAuditEvents reads `audit_events file <path>` or `audit_events fhir
// <url>`.
func parseAuditEvents(d *caddyfile.Dispenser) (*AuditEventsConfig, error) {
	args := d.RemainingArgs()
	if len(args) != 2 {
		return nil, d.Err("audit_events: expected file <path> or fhir <url>")
	}
	c := &AuditEventsConfig{}
	switch kind := args[0]; kind {
	case audit.SinkFile:
		c.File = args[1]
	case audit.SinkFHIR:
		c.FHIR = args[1]
	default:
		return nil, d.Errf("audit_events: %q: expected file or fhir", kind)
	}
	if err := c.validate(); err != nil {
		return nil, d.Errf("audit_events: %v", err)
	}
	return c, nil
}

// provisionTelemetry registers the metrics in Caddy's registry (the same
// process-wide collectors for every config: counts go on across
// reloads), times the store's operations, and opens the AuditEvent sink,
// if configured. It returns the store to use and the audit trail.
func (s *SmartAuth) provisionTelemetry(ctx caddy.Context, db store.Store) (store.Store, *audit.Trail, error) {
	set := metrics.Default()
	if reg := ctx.GetMetricsRegistry(); reg != nil { // nil outside a loaded config
		if err := set.Register(reg); err != nil {
			return nil, nil, fmt.Errorf("registering the metrics: %w", err)
		}
	}
	var sink audit.Sink
	if c := s.AuditEvents; c != nil {
		o := audit.WriterOptions{Kind: audit.SinkFHIR, Target: c.FHIR, Logger: s.logger.Named("audit"), Dropped: set.AuditDropped}
		if c.File != "" {
			path, err := caddy.NewReplacer().ReplaceOrErr(c.File, true, true)
			if err != nil {
				return nil, nil, fmt.Errorf("audit_events file: %w", err)
			}
			o.Kind, o.Target = audit.SinkFile, filepath.Clean(path)
		}
		w, err := audit.NewWriter(o)
		if err != nil {
			return nil, nil, err
		}
		s.auditSink, sink = w, w
		s.logger.Info("audit trail also written as FHIR AuditEvents", zap.String("sink", o.Kind))
	}
	return set.InstrumentStore(db), audit.New(s.logger, s.Issuer, sink), nil
}

// watchKeys reports the key ring in the signing-key metrics until
// Cleanup.
func (s *SmartAuth) watchKeys(ring *keys.Ring) {
	s.releaseKeys = metrics.Default().KeyRing(s.Issuer, ring)
}

// cleanupTelemetry stops reporting the key ring and closes the AuditEvent
// sink (writing what is queued). Safe after a failed Provision.
func (s *SmartAuth) cleanupTelemetry() {
	if s.releaseKeys != nil {
		s.releaseKeys()
		s.releaseKeys = nil
	}
	if s.auditSink != nil {
		_ = s.auditSink.Close()
		s.auditSink = nil
	}
}
