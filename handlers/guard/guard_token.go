package guard

import (
	"crypto/sha256"
	"errors"
	"net/http"
	"strings"
	"time"
	"unsafe"

	"github.com/lestrrat-go/jwx/v3/jwt"
	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/handlers/accesstoken"
	"github.com/smartcaddy/smartauth/handlers/oauth"
	"github.com/smartcaddy/smartauth/handlers/users"
	"github.com/smartcaddy/smartauth/scopes"
	"github.com/smartcaddy/smartauth/store"
)

// authenticate finds the request's access token and returns who it is
// for, at now (when the request came in): from the cache when the token was verified before (and no
// revocation has hit it since), else by a full check (signature, typ,
// iss, aud, exp, nbf, revocation), after which it is cached until exp.
func (g *Guard) authenticate(r *http.Request, now time.Time) (*principal, *oauth.Error) {
	raw, ok := oauth.BearerToken(r)
	if !ok {
		return nil, missingToken("an access token is required (Authorization: Bearer)")
	}
	// Hash the token in place (no copy): sha256 only reads its input.
	key := sha256.Sum256(unsafe.Slice(unsafe.StringData(raw), len(raw)))
	if p := g.gs.cached(key, now); p != nil {
		g.metrics.CacheHit()
		if g.gs.stale(now) {
			// Revocations made elsewhere may be unseen: the token cannot
			// be checked now (Options.RevocationStaleness).
			return nil, storeUnavailable()
		}
		return p, nil
	}
	g.metrics.CacheMiss()
	tok, err := g.verify(r.Context(), key, raw, now)
	switch {
	case errors.Is(err, accesstoken.ErrRevoked):
		return nil, invalidToken("the access token was revoked")
	case errors.Is(err, jwt.TokenExpiredError()):
		return nil, invalidToken("the access token is expired")
	case errors.Is(err, store.ErrUnavailable):
		g.logger.Error("guard: the token's revocation check failed", zap.Error(err))
		return nil, storeUnavailable()
	case err != nil:
		// Which check failed (unknown key, another issuer or audience, a
		// signature that does not verify, …), never a secret: an operator
		// tells a misconfiguration from an attack (accesstoken.Problem).
		return nil, invalidToken(accesstoken.Problem(err))
	}
	p, fault := g.newPrincipal(r, tok)
	if fault != nil {
		return nil, fault
	}
	if !g.gs.remember(key, p, now) {
		return nil, invalidToken("the access token was revoked")
	}
	return p, nil
}

// newPrincipal reads a verified token's claims and the bounds that apply
// to it: the configured user's scopes and the client's current scopes.
func (g *Guard) newPrincipal(r *http.Request, tok accesstoken.Claims) (*principal, *oauth.Error) {
	p := &principal{
		clientID:  tok.ClientID(),
		scope:     tok.Scope(),
		patient:   tok.Patient(),
		encounter: tok.Encounter(),
		fhirUser:  tok.FHIRUser(),
		family:    tok.Family(),
		sub:       tok.Subject(),
		jti:       tok.ID(),
	}
	p.iat, _ = tok.IssuedAt()
	p.exp, _ = tok.Expiration()
	if p.clientID == "" || p.sub == "" {
		return nil, invalidToken("the access token lacks client_id or sub")
	}
	// A token's exp is checked with leeway on verification; the cache
	// keeps it until exp plus the same leeway.
	p.exp = p.exp.Add(accesstoken.Skew)
	p.granted, _ = scopes.ParseAll(scopes.Split(p.scope))
	client, err := g.registry.Lookup(r.Context(), p.clientID)
	if errors.Is(err, store.ErrUnavailable) {
		g.logger.Error("guard: looking up the token's client failed", zap.Error(err))
		return nil, storeUnavailable()
	}
	if err != nil || client == nil {
		return nil, invalidToken("the access token's client is no longer registered")
	}
	if len(client.Scopes) > 0 {
		p.clientBound, _ = scopes.ParseAll(scopes.Split(strings.Join(client.Scopes, " ")))
		if p.clientBound == nil {
			p.clientBound = []scopes.Scope{}
		}
	}
	if p.sub != p.clientID {
		u := users.Lookup(g.users, g.federation, p.sub, users.FromToken(p.sub, p.fhirUser, g.base))
		if u == nil {
			return nil, invalidToken("the access token's user is no longer configured")
		}
		p.hasUser = true
		// The user's reach, from the current configuration, whatever
		// the token carries (users.Rule).
		rc := g.reach.Reach(u)
		p.userScopes = rc.UserScopes()
		switch own := rc.Own(); {
		case own != "":
			if p.patient != "" && p.patient != own {
				return nil, invalidToken("the access token's patient is not one its user may reach")
			}
			p.patient, p.confined = own, true
		case p.patient != "" && !rc.PatientAllowed(p.patient):
			return nil, invalidToken("the access token's patient is not one its user may reach")
		}
		if len(u.Scopes) > 0 {
			p.userBound, _ = scopes.ParseAll(scopes.Split(strings.Join(u.Scopes, " ")))
			if p.userBound == nil {
				p.userBound = []scopes.Scope{}
			}
		}
	}
	return p, nil
}
