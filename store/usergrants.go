package store

import (
	"context"
	"errors"
	"slices"
	"sort"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// UserGrant is what a user has authorized one client to do: the live
// refresh-token families issued to the client for the user, and the
// consent remembered for it. The management page lists them.
type UserGrant struct {
	ClientID string
	// Families are the ids of the live refresh-token families, and Scope
	// the scope of the most recent one.
	Families []string
	Scope    string
	// IssuedAt is when the newest refresh token was issued (the last
	// refresh), AuthTime when the user last authorized the client.
	IssuedAt time.Time
	AuthTime time.Time
	// Remembered is the remembered consent's scopes, nil without one.
	Remembered []string
	// Patients are the patients in context of the live families, sorted,
	// each once (none for families without a patient).
	Patients []string
}

// AddFamily counts a live, unused, unrevoked refresh token of the grant's
// client into the grant: its family, its patient, and the newest scope,
// issue and authorization times. Both stores build UserGrants with it.
func (g *UserGrant) AddFamily(rec *RefreshToken) {
	g.Families = append(g.Families, rec.FamilyID)
	if p := rec.Context.Patient; p != "" {
		if i, found := slices.BinarySearch(g.Patients, p); !found {
			g.Patients = slices.Insert(g.Patients, i, p)
		}
	}
	if rec.IssuedAt.After(g.IssuedAt) {
		g.IssuedAt, g.Scope = rec.IssuedAt, rec.Scope
	}
	if rec.AuthTime.After(g.AuthTime) {
		g.AuthTime = rec.AuthTime
	}
}

// UserGrants implements Store. It reads every refresh token and consent,
// which is fine for a page a user opens now and then; nothing on a hot
// path calls it.
func (d *DB) UserGrants(_ context.Context, user string) ([]UserGrant, error) {
	by := map[string]*UserGrant{}
	grant := func(client string) *UserGrant {
		g := by[client]
		if g == nil {
			g = &UserGrant{ClientID: client}
			by[client] = g
		}
		return g
	}
	err := d.scan(kindRefresh, "", func(_ string, b []byte) error {
		var rec RefreshToken
		if _, err := d.decode(b, &rec); err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			return err
		}
		if rec.Subject != user || rec.Used {
			return nil
		}
		var revoked bool
		if err := d.db.View(func(txn *badger.Txn) (err error) {
			revoked, err = d.refreshRevoked(txn, &rec)
			return err
		}); err != nil || revoked {
			return err
		}
		grant(rec.ClientID).AddFamily(&rec)
		return nil
	})
	if err != nil {
		return nil, err
	}
	consents, err := list[Consent](d, kindConsent)
	if err != nil {
		return nil, err
	}
	for _, c := range consents {
		if c.User == user {
			g := grant(c.ClientID)
			g.Remembered = c.Scopes
			if c.GrantedAt.After(g.AuthTime) {
				g.AuthTime = c.GrantedAt
			}
		}
	}
	out := make([]UserGrant, 0, len(by))
	for _, g := range by {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ClientID < out[j].ClientID })
	return out, nil
}

// DeleteConsent implements Store.
func (d *DB) DeleteConsent(_ context.Context, user, clientID string) error {
	return d.del(kindConsent, consentID(user, clientID))
}
