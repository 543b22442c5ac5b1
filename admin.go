package smartauth

import (
	"context"
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/smartcaddy/smartauth/adminapi"
	"github.com/smartcaddy/smartauth/internal/audit"
	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/store"
)

// This file makes a provisioned handler reachable through Caddy's admin
// API (package adminapi, the admin.api.smart_auth module): Provision in
// smartauth.go calls registerAdmin, Cleanup unregisterAdmin.

// registerAdmin registers the running handler with the admin API, by
// issuer; during a config reload the newest handler of an issuer answers.
// config identifies the Caddy config (configIdentity); raw is the store as opened (to tell Badger from PostgreSQL), db the one
// the handlers use (timed: internal/metrics).
func (s *SmartAuth) registerAdmin(config any, raw, db store.Store, ring *keys.Ring, clients map[string]*store.Client, trail *audit.Trail) {
	kind, dir := "postgres", ""
	if bdb, ok := raw.(*store.DB); ok {
		kind, dir = "badger", bdb.Dir()
	}
	users := make(map[string]bool, len(s.Users))
	for _, u := range s.Users {
		users[u.Name] = true
	}
	srv := s.server
	s.adminUnregister = adminapi.Register(&adminapi.Target{
		Issuer:           s.Issuer,
		FHIRBase:         s.FHIRBase,
		Storage:          kind,
		StorageDir:       dir,
		Store:            db,
		Keys:             ring,
		Configured:       clients,
		Users:            func(name string) bool { return users[name] },
		RevocationPeriod: srv.RevocationPeriod(),
		Register: func(w http.ResponseWriter, r *http.Request) (any, error) {
			info, fault := srv.RegisterForOperator(w, r)
			if fault != nil {
				msg := fault.Code
				if fault.Description != "" {
					msg += ": " + fault.Description
				}
				return nil, caddy.APIError{HTTPStatus: fault.Status, Message: msg}
			}
			return info, nil
		},
		Health: func(ctx context.Context) (bool, any) {
			h := srv.Health(ctx)
			return h.Ready(), h
		},
		Logger: s.logger.Named("admin"),
		Audit:  trail,
		Config: config,
	})
}

// unregisterAdmin removes the handler from the admin API, once.
func (s *SmartAuth) unregisterAdmin() {
	if s.adminUnregister != nil {
		s.adminUnregister()
		s.adminUnregister = nil
	}
}
