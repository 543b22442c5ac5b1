package store

import "time"

// The rules in this file are shared by the stores (Badger here, and
// store/postgres), so that both decide revocations and rotations alike.

// RevocationUntil is the Until a revocation requested at now to last
// until until is recorded with. One whose until has passed is still
// recorded for a minute, so that a cache polling the log sees it. Until is
// rounded up to a whole second, so that revocations of one identifier
// racing each other (fifty replays of a code, each revoking its family
// until now + the tokens' lifetime) usually name the same instant: all but
// the first then find it recorded and write nothing.
func RevocationUntil(until, now time.Time) time.Time {
	if !until.After(now) {
		until = now.Add(time.Minute)
	}
	if r := until.Truncate(time.Second); r.Before(until) {
		until = r.Add(time.Second)
	}
	return until
}

// MergeRevocation merges a revocation of kind made at now until until
// (already passed through RevocationUntil) with the identifier's live
// revocation prev (nil without one). A second revocation never covers less
// than the first: it keeps the later Until and the later At (a clock
// stepped back must not make revoked tokens valid again). write is false
// when prev already covers at least as much: only the At of a kind that
// revokes by issue time (RevokedClient, RevokedUser) means something
// (which tokens it covers), so a later one must be recorded.
func MergeRevocation(prev *Revocation, kind RevocationKind, now, until time.Time) (at, merged time.Time, write bool) {
	if prev == nil {
		return now, until, true
	}
	if !prev.Until.Before(until) && (!kind.ByIssueTime() || !prev.At.Before(now)) {
		return prev.At, prev.Until, false
	}
	at, merged = now, until
	if prev.Until.After(merged) {
		merged = prev.Until
	}
	if prev.At.After(at) {
		at = prev.At
	}
	return at, merged, true
}

// InGrace tells whether presenting again, at now, the already rotated
// token old is a grace retry rather than reuse (see Rotation.Grace): grace
// is on, old was first rotated less than Grace ago and names its
// successor. The successor must also be live and unused, which the store
// checks.
func (r Rotation) InGrace(old *RefreshToken, now time.Time) bool {
	return r.Grace > 0 && old.Successor != "" && !old.UsedAt.IsZero() && now.Before(old.UsedAt.Add(r.Grace))
}

// ReusedFamilyUntil is how long the family of a reused refresh token is
// revoked: its newest member was issued no later than now with the
// rotation's ttl, so until now+ttl, or the reused token's own expiry exp
// if that is later.
func ReusedFamilyUntil(exp time.Time, ttl time.Duration, now time.Time) time.Time {
	until := now.Add(ttl)
	if exp.After(until) {
		until = exp
	}
	return until
}
