package keys

import "time"

// Key states in a Status.
const (
	// StatePending is a published successor that does not sign yet.
	StatePending = "pending"
	// StateActive is the key that signs for its algorithm now.
	StateActive = "active"
	// StateRetiring is a key that no longer signs and stays published
	// until the tokens it signed have expired.
	StateRetiring = "retiring"
)

// KeyStatus describes one published key, without any key material.
type KeyStatus struct {
	KID string `json:"kid"`
	Alg string `json:"alg"`
	// State is StatePending, StateActive or StateRetiring.
	State string `json:"state"`
	// External tells that the key comes from an operator's PEM file.
	External bool `json:"external,omitempty"`
	// ActiveFrom is when the key started (or starts) signing.
	ActiveFrom time.Time `json:"active_from"`
	// RetiredAt is when it stopped signing; zero while it signs.
	RetiredAt time.Time `json:"retired_at,omitzero"`
	// PublishUntil is when it leaves the JWKS; zero while current.
	PublishUntil time.Time `json:"publish_until,omitzero"`
}

// Status is what the ring holds at one moment: every published key, and
// per algorithm when its generated key is next replaced.
type Status struct {
	At   time.Time   `json:"at"`
	Keys []KeyStatus `json:"keys"`
	// NextRotation is, per algorithm, when the next successor starts
	// signing: a pending successor's ActiveFrom, or when the active
	// generated key is due for rotation plus PublishAhead. Absent for
	// a key from a file and when automatic rotation is off with no
	// successor pending.
	NextRotation map[string]time.Time `json:"next_rotation,omitempty"`
	// RotationPeriod and PublishAhead are the ring's settings.
	RotationPeriod time.Duration `json:"-"`
	PublishAhead   time.Duration `json:"-"`
}

// Ready tells whether the ring can sign for every algorithm it must
// (RS256 and ES256) now.
func (r *Ring) Ready() bool {
	v := r.current()
	for _, alg := range algs {
		if v.signers[alg] == nil {
			return false
		}
	}
	return true
}

// Status describes the published keys as the ring sees them now, from its
// snapshot (no store read): kids, algorithms, states and times. It never
// includes key material.
func (r *Ring) Status() Status {
	v := r.current()
	now := r.now()
	st := Status{At: now, Keys: []KeyStatus{}, NextRotation: map[string]time.Time{},
		RotationPeriod: r.rotation, PublishAhead: r.ahead}
	for _, e := range v.set.entries {
		if !e.published(now) {
			continue
		}
		ks := KeyStatus{KID: e.kid, Alg: e.alg, ActiveFrom: e.activeFrom, RetiredAt: e.retiredAt, PublishUntil: e.publishUntil}
		fk := r.files[e.alg]
		ks.External = fk != nil && fk.kid == e.kid
		switch {
		case v.signers[e.alg] == e:
			ks.State = StateActive
		case e.activeFrom.After(now) && e.retiredAt.IsZero():
			ks.State = StatePending
		default:
			ks.State = StateRetiring
		}
		st.Keys = append(st.Keys, ks)
	}
	for _, alg := range algs {
		if r.files[alg] != nil {
			continue
		}
		for _, k := range st.Keys {
			if k.Alg == alg && k.State == StatePending {
				st.NextRotation[alg] = k.ActiveFrom
			}
		}
		if cur := v.signers[alg]; st.NextRotation[alg].IsZero() && cur != nil && r.rotation > 0 {
			st.NextRotation[alg] = cur.activeFrom.Add(r.rotation + r.ahead)
		}
		if st.NextRotation[alg].IsZero() {
			delete(st.NextRotation, alg)
		}
	}
	return st
}

// Rotatable tells whether Rotate can rotate alg: the ring generates its
// key (it does not come from a file).
func (r *Ring) Rotatable(alg string) bool {
	_, ok := jwaAlg(alg)
	return ok && r.files[alg] == nil
}

// Algorithms lists the algorithms the ring holds a key for, in order.
func Algorithms() []string { return append([]string(nil), algs...) }
