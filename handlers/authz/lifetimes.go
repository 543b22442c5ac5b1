package authz

import (
	"time"

	"github.com/smartcaddy/smartauth/handlers/authz/token"
)

// Lifetimes are how long issued artifacts live.
type Lifetimes struct {
	AccessToken  time.Duration
	RefreshToken time.Duration
	Code         time.Duration
	Launch       time.Duration
	Session      time.Duration
	// Backend is the access-token lifetime of the client_credentials
	// grant (SMART Backend Services: 5 minutes).
	Backend time.Duration
	// RefreshGrace, when positive, lets a client present a refresh token
	// again this long after it was rotated (its answer was lost) and get
	// a new successor instead of having the family revoked, as long as
	// the previous successor was not used (store.Rotation.Grace). Zero,
	// also by default: strict rotation.
	RefreshGrace time.Duration
}

// DefaultLifetimes apply to every lifetime the configuration leaves zero.
var DefaultLifetimes = Lifetimes{
	AccessToken:  time.Hour,
	RefreshToken: 90 * 24 * time.Hour,
	Code:         time.Minute,
	Launch:       5 * time.Minute,
	Session:      8 * time.Hour,
	Backend:      5 * time.Minute,
}

// WithDefaults fills zero lifetimes from DefaultLifetimes.
func (l Lifetimes) WithDefaults() Lifetimes {
	for _, f := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&l.AccessToken, DefaultLifetimes.AccessToken},
		{&l.RefreshToken, DefaultLifetimes.RefreshToken},
		{&l.Code, DefaultLifetimes.Code},
		{&l.Launch, DefaultLifetimes.Launch},
		{&l.Session, DefaultLifetimes.Session},
		{&l.Backend, DefaultLifetimes.Backend},
	} {
		if *f.v <= 0 {
			*f.v = f.def
		}
	}
	return l
}

// token is what the token service (package token) uses of the lifetimes.
func (l Lifetimes) token() token.Lifetimes {
	return token.Lifetimes{
		AccessToken:  l.AccessToken,
		RefreshToken: l.RefreshToken,
		Backend:      l.Backend,
		RefreshGrace: l.RefreshGrace,
	}
}
