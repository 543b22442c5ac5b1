package users

import (
	"strings"

	"github.com/smartcaddy/smartauth/scopes"
	"github.com/smartcaddy/smartauth/store"
)

// Users an identity provider signs in come in two kinds. One whose claim
// names a configured user IS that user: the configured entry decides
// everything, as for password sign-in. One without a configured entry,
// accepted only when the operator allows it for the provider
// (Provider.AcceptUnlisted), is named "<provider>|<id>" (FederatedSubject)
// and built here from the profile recorded at sign-in
// (store.FederatedUser, on the session, the code and the refresh tokens;
// the guard and userinfo rebuild it from the access token) under the
// provider's CURRENT configuration: the reach rule (Rule) then treats it
// exactly like a configured user with the same fhir_user and scopes and
// no patients list. Claims only ever narrow: the user's scope bound is
// the operator's bound for the provider, narrowed by the claims
// (NarrowScopes); without an operator bound no user/ scope is reachable
// (as for a configured user without one).

// FederatedSeparator separates the provider's name from the user's id in
// the subject of a user without a configured entry. Configured user names
// must not start with "<provider>|" (the module checks it).
const FederatedSeparator = "|"

// Provider is the operator's policy for the users of one identity
// provider that have no configured entry.
type Provider struct {
	// AcceptUnlisted lets users without a configured entry sign in.
	AcceptUnlisted bool
	// Scopes is the operator's bound on those users: patient/ and user/
	// resource scopes. Empty: no bound on patient/ scopes and no user/
	// scopes at all.
	Scopes []string
}

// Federation resolves the users of the identity providers that have no
// configured entry. A nil Federation resolves nobody. It is immutable.
type Federation struct {
	providers map[string]Provider
}

// NewFederation builds the federation of the configured providers, by
// name.
func NewFederation(providers map[string]Provider) *Federation {
	return &Federation{providers: providers}
}

// Lookup finds the user a subject names: the configured user of that
// name, else a provider's user without a configured entry (Find). nil
// when neither exists (any more).
func Lookup(configured map[string]*User, f *Federation, subject string, p *store.FederatedUser) *User {
	if u := configured[subject]; u != nil {
		return u
	}
	return f.Find(subject, p)
}

// FromToken rebuilds the profile of a federated subject from what an
// access token this server signed says of it (its fhirUser claim, made
// relative to the FHIR base fhirBase): the scopes were narrowed when the
// token was granted, so the operator's bound applies. nil for a subject
// that is not federated.
func FromToken(subject, fhirUser, fhirBase string) *store.FederatedUser {
	provider, _, ok := strings.Cut(subject, FederatedSeparator)
	if !ok || provider == "" {
		return nil
	}
	base := strings.TrimSuffix(fhirBase, "/") + "/"
	if rel, found := strings.CutPrefix(fhirUser, base); found {
		fhirUser = rel
	}
	return &store.FederatedUser{Provider: provider, FHIRUser: fhirUser}
}

// FederatedSubject is the subject of a provider's user without a
// configured entry.
func FederatedSubject(provider, id string) string {
	return provider + FederatedSeparator + id
}

// Find returns the user a federated subject names, built from its
// recorded profile, or nil: the subject is not of the profile's
// provider, the provider is no longer configured or no longer accepts
// unlisted users, or there is no profile.
func (f *Federation) Find(subject string, p *store.FederatedUser) *User {
	if f == nil || p == nil || !strings.HasPrefix(subject, p.Provider+FederatedSeparator) {
		return nil
	}
	pol, ok := f.providers[p.Provider]
	if !ok || !pol.AcceptUnlisted {
		return nil
	}
	bound := pol.Scopes
	if p.Scopes != nil {
		// Narrowed again under the current bound: an operator who
		// narrowed the provider's bound since narrows every user.
		bound = NarrowScopes(pol.Scopes, p.Scopes)
		if len(bound) == 0 {
			return nil
		}
	}
	return &User{Name: subject, FHIRUser: p.FHIRUser, DisplayName: p.DisplayName, Scopes: bound}
}

// NarrowScopes narrows the operator's bound (operator; empty for none) by
// the bound a provider's claims give (claimed): the claimed scopes the
// operator's bound covers. Without an operator bound, claimed patient/
// scopes are kept and user/ scopes dropped, since user/ scopes need the
// operator's explicit grant. Anything else (unknown scopes, system/
// scopes) is dropped. The result may be empty: then nothing is left.
func NarrowScopes(operator, claimed []string) []string {
	out := []string{}
	for _, s := range claimed {
		sc, err := scopes.Parse(s)
		if err != nil || !sc.IsResource() || sc.Context == scopes.System {
			continue
		}
		if len(operator) == 0 {
			if sc.Context == scopes.Patient {
				out = append(out, s)
			}
			continue
		}
		if scopes.Covers(operator, []string{s}) {
			out = append(out, s)
		}
	}
	return out
}
