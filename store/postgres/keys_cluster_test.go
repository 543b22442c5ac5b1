package postgres_test

// Key rings of several instances sharing one PostgreSQL database behave as
// one cluster ring (issue 12): one key per algorithm on a first start,
// successors published before they sign, one successor per rotation, and
// every instance's JWKS and verification in agreement. Each ring has its
// own *postgres.DB (its own pool), as separate processes would, so the
// keys package's process-wide lock (keyed by the store value) does not
// serialize them: only the database does.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/store"
)

// meeting forces the worst case for "instances write keys at once": once
// armed for n rings, each ring's Keys returns only when all n have read
// the key records (so all see the same state and all decide to write),
// and each ring's UpdateKeys transaction, after its own read, waits until
// all n are inside theirs, or until every ring not yet inside waits on the
// signing_keys lock (seen in pg_locks). A store that does not serialize
// UpdateKeys thus runs n overlapping transactions; one that does runs
// them one after the other, without a timeout either way.
type meeting struct {
	t       *testing.T
	dsn     string
	mu      sync.Mutex
	n       int
	read    int
	readAll chan struct{}
	inTx    int
	armed   bool
}

// arm makes the next round of n rings meet.
func (m *meeting) arm(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n, m.read, m.inTx, m.readAll, m.armed = n, 0, 0, make(chan struct{}), true
}

// disarm ends the round.
func (m *meeting) disarm() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.armed, m.readAll = false, nil
}

// afterRead blocks until all armed rings have read the key records.
func (m *meeting) afterRead() {
	m.mu.Lock()
	all := m.readAll
	if all == nil {
		m.mu.Unlock()
		return
	}
	if m.read++; m.read == m.n {
		close(all)
		m.readAll = nil
	}
	m.mu.Unlock()
	<-all
}

// inUpdate blocks, inside an UpdateKeys transaction, until all armed
// rings are inside theirs or wait on the signing_keys lock.
func (m *meeting) inUpdate(c context.Context) {
	m.mu.Lock()
	if !m.armed {
		m.mu.Unlock()
		return
	}
	m.inTx++
	m.mu.Unlock()
	conn, err := pgx.Connect(c, m.dsn)
	if err != nil {
		m.t.Error(err)
		return
	}
	defer conn.Close(c)
	deadline := time.Now().Add(time.Minute) // only against a hang
	for {
		m.mu.Lock()
		inside, n := m.inTx, m.n
		m.mu.Unlock()
		if inside >= n {
			return
		}
		var blocked int
		if err := conn.QueryRow(c, `SELECT count(*) FROM pg_locks
			WHERE relation = 'signing_keys'::regclass AND NOT granted`).Scan(&blocked); err != nil {
			m.t.Error(err)
			return
		}
		if inside+blocked >= n {
			return
		}
		if time.Now().After(deadline) {
			m.t.Errorf("meeting: %d of %d rings in UpdateKeys and %d waiting on the lock after a minute", inside, n, blocked)
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// meetingStore is a ring's real PostgreSQL store that meets the other
// rings' (see meeting).
type meetingStore struct {
	keys.Storage
	m *meeting
}

// Keys reads the key records, then meets the other rings.
func (s *meetingStore) Keys(c context.Context) ([]*store.KeyRecord, error) {
	recs, err := s.Storage.Keys(c)
	s.m.afterRead()
	return recs, err
}

// UpdateKeys runs the real UpdateKeys, meeting the other rings inside
// the transaction before fn decides.
func (s *meetingStore) UpdateKeys(c context.Context, fn func([]*store.KeyRecord) ([]*store.KeyRecord, error)) error {
	return s.Storage.UpdateKeys(c, func(cur []*store.KeyRecord) ([]*store.KeyRecord, error) {
		s.m.inUpdate(c)
		return fn(cur)
	})
}

// Set sets the clock to t.
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// clusterOpts are the ring options every instance of a test shares.
func clusterOpts(st keys.Storage, c *clock, rotation time.Duration) keys.Options {
	return keys.Options{Store: st, Now: c.Now, RotationPeriod: rotation, PublishAhead: 5 * time.Minute, Retain: 2 * time.Hour}
}

// startRings starts n rings at once on dsn, each on its own store, meeting
// on their first read of the key records.
func startRings(t *testing.T, dsn string, c *clock, n int, rotation time.Duration) ([]*keys.Ring, *meeting) {
	t.Helper()
	m := &meeting{t: t, dsn: dsn}
	stores := make([]keys.Storage, n)
	for i := range stores {
		stores[i] = &meetingStore{Storage: openDSN(t, dsn, c), m: m}
	}
	rings := make([]*keys.Ring, n)
	m.arm(n)
	errs := race(n, func(i int) error {
		var err error
		rings[i], err = keys.New(ctx, clusterOpts(stores[i], c, rotation))
		return err
	})
	if got := count(errs); got["ok"] != n {
		t.Fatalf("starting %d rings at once: %v", n, got)
	}
	m.disarm()
	return rings, m
}

// jwksKIDs returns the kids in a ring's JWKS document, by algorithm.
func jwksKIDs(t *testing.T, r *keys.Ring) map[string][]string {
	t.Helper()
	var doc struct {
		Keys []struct {
			KID string `json:"kid"`
			Alg string `json:"alg"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(r.JWKS(), &doc); err != nil {
		t.Fatalf("JWKS: %v", err)
	}
	out := make(map[string][]string)
	for _, k := range doc.Keys {
		out[k.Alg] = append(out[k.Alg], k.KID)
	}
	for _, kids := range out {
		slices.Sort(kids)
	}
	return out
}

// storedKIDs returns the kids of the key records in the database, by
// algorithm.
func storedKIDs(t *testing.T, st keys.Storage) map[string][]string {
	t.Helper()
	recs, err := st.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string][]string)
	for _, k := range recs {
		out[k.Alg] = append(out[k.Alg], k.KID)
	}
	for _, kids := range out {
		slices.Sort(kids)
	}
	return out
}

// signKID signs a token valid for ttl with r's current alg key and returns
// it with the kid it names.
func signKID(t *testing.T, r *keys.Ring, c *clock, alg string, ttl time.Duration) ([]byte, string) {
	t.Helper()
	now := c.Now()
	tok, err := jwt.NewBuilder().Issuer("https://auth.example").Subject("alice").
		IssuedAt(now).Expiration(now.Add(ttl)).Build()
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.Sign(tok, alg, "")
	if err != nil {
		t.Fatalf("Sign %s: %v", alg, err)
	}
	msg, err := jws.Parse(out, jws.WithCompact())
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := msg.Signatures()[0].ProtectedHeaders().KeyID()
	return out, kid
}

// mustVerify fails the test unless r verifies tok.
func mustVerify(t *testing.T, r *keys.Ring, name string, tok []byte, what string) {
	t.Helper()
	if _, err := r.Verify(ctx, tok); err != nil {
		t.Errorf("ring %s does not verify %s: %v", name, what, err)
	}
}

// clusterAlgs are the algorithms every ring holds a key for.
var clusterAlgs = []string{keys.ES256, keys.RS256}

// TestKeyRingsStartTogetherOnEmptyDatabase: three rings started at once on
// an empty database make one key per algorithm and agree on it.
func TestKeyRingsStartTogetherOnEmptyDatabase(t *testing.T) {
	c := newClock()
	dsn := freshDSN(t)
	rings, _ := startRings(t, dsn, c, 3, 0)
	stored := storedKIDs(t, openDSN(t, dsn, c))
	for _, alg := range clusterAlgs {
		if len(stored[alg]) != 1 {
			t.Fatalf("%s: %d keys in the database after a concurrent first start, want 1: %v", alg, len(stored[alg]), stored)
		}
	}
	for i, r := range rings {
		if got := jwksKIDs(t, r); !equalKIDs(got, stored) {
			t.Errorf("ring %d JWKS %v, database %v", i, got, stored)
		}
		for _, alg := range clusterAlgs {
			tok, kid := signKID(t, r, c, alg, time.Hour)
			if kid != stored[alg][0] {
				t.Errorf("ring %d signs %s with %s, want the stored key %s", i, alg, kid, stored[alg][0])
			}
			for j, v := range rings {
				mustVerify(t, v, fmt.Sprint(j), tok, alg+" token of ring "+fmt.Sprint(i))
			}
		}
	}
}

// equalKIDs compares two kid sets by algorithm.
func equalKIDs(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for alg, kids := range a {
		if !slices.Equal(kids, b[alg]) {
			return false
		}
	}
	return true
}

// TestKeyRingRotationAcrossInstances: one ring rotates, forced or on its
// schedule, while the others serve (testRotationAcrossInstances).
func TestKeyRingRotationAcrossInstances(t *testing.T) {
	for _, how := range []string{"forced", "scheduled"} {
		t.Run(how, func(t *testing.T) { testRotationAcrossInstances(t, how == "forced") })
	}
}

// testRotationAcrossInstances: ring a rotates (Rotate, or its schedule)
// while b serves and refreshes and c serves without refreshing.
func testRotationAcrossInstances(t *testing.T, forced bool) {
	c := newClock()
	t0 := c.Now()
	dsn := freshDSN(t)
	rotation := time.Duration(0)
	if !forced {
		rotation = time.Hour
	}
	db := openDSN(t, dsn, c)
	rings := make(map[string]*keys.Ring)
	for _, name := range []string{"a", "b", "c"} {
		r, err := keys.New(ctx, clusterOpts(openDSN(t, dsn, c), c, rotation))
		if err != nil {
			t.Fatal(err)
		}
		rings[name] = r
	}
	a, b, cr := rings["a"], rings["b"], rings["c"]
	old := storedKIDs(t, db)
	oldTok := make(map[string][]byte)
	for _, alg := range clusterAlgs {
		oldTok["a "+alg], _ = signKID(t, a, c, alg, time.Hour)
		oldTok["b "+alg], _ = signKID(t, b, c, alg, time.Hour)
	}

	if forced {
		c.Advance(10 * time.Minute)
		for _, alg := range clusterAlgs {
			if err := a.Rotate(ctx, alg); err != nil {
				t.Fatal(err)
			}
		}
	} else {
		c.Advance(time.Hour)
		if err := a.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	rotatedAt := c.Now()
	signsFrom := rotatedAt.Add(5 * time.Minute)
	recs, err := db.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next := make(map[string]string)
	for _, k := range recs {
		if k.KID == old[k.Alg][0] {
			continue
		}
		if next[k.Alg] != "" {
			t.Fatalf("%s: two successors %s and %s", k.Alg, next[k.Alg], k.KID)
		}
		next[k.Alg] = k.KID
		if !k.ActiveFrom.Equal(signsFrom) {
			t.Errorf("%s successor signs from %v, want %v (rotation at %v + PublishAhead)", k.Alg, k.ActiveFrom, signsFrom, rotatedAt)
		}
	}
	if len(next) != 2 {
		t.Fatalf("successors after the rotation: %v", next)
	}

	// b refreshes (its maintenance) during PublishAhead: it publishes the
	// successors, and neither a nor b signs with them yet.
	c.Advance(time.Minute)
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*keys.Ring{"a": a, "b": b} {
		got := jwksKIDs(t, r)
		for _, alg := range clusterAlgs {
			if !slices.Contains(got[alg], next[alg]) || !slices.Contains(got[alg], old[alg][0]) {
				t.Errorf("ring %s JWKS %s kids %v during PublishAhead, want old %s and successor %s", name, alg, got[alg], old[alg][0], next[alg])
			}
			if _, kid := signKID(t, r, c, alg, time.Hour); kid != old[alg][0] {
				t.Errorf("ring %s signs %s with %s before the successor's ActiveFrom, want the old key", name, alg, kid)
			}
		}
	}

	// The successors sign from ActiveFrom on, on every ring, even before
	// a Refresh; b and c (which never refreshed: it reloads on the
	// unknown kid) verify a's new tokens.
	c.Set(signsFrom)
	newTok := make(map[string][]byte)
	for _, alg := range clusterAlgs {
		tok, kid := signKID(t, a, c, alg, time.Hour)
		if kid != next[alg] {
			t.Fatalf("a signs %s with %s at the successor's ActiveFrom, want %s", alg, kid, next[alg])
		}
		newTok[alg] = tok
		if _, kid := signKID(t, b, c, alg, time.Hour); kid != next[alg] {
			t.Errorf("b signs %s with %s at the successor's ActiveFrom, want %s", alg, kid, next[alg])
		}
	}
	for _, alg := range clusterAlgs {
		mustVerify(t, b, "b", newTok[alg], "a's "+alg+" token with the successor")
		mustVerify(t, cr, "c", newTok[alg], "a's "+alg+" token with the successor (after reloading)")
	}
	if got, want := jwksKIDs(t, cr), jwksKIDs(t, a); !equalKIDs(got, want) {
		t.Errorf("c's JWKS after reloading %v, a's %v", got, want)
	}

	// Tokens signed before the rotation verify everywhere until they
	// expire, the old keys staying published.
	c.Set(t0.Add(time.Hour - time.Second))
	for _, r := range []*keys.Ring{a, b} {
		if err := r.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for name, r := range rings {
		for what, tok := range oldTok {
			mustVerify(t, r, name, tok, "the pre-rotation token of "+what)
		}
	}

	// Past Retain after the retirement the old keys leave the database and
	// every refreshed ring's JWKS.
	stored, err := db.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range stored {
		if k.KID == old[k.Alg][0] && (!k.RetiredAt.Equal(signsFrom) || !k.PublishUntil.Equal(signsFrom.Add(2*time.Hour))) {
			t.Errorf("old %s key retired at %v until %v, want %v until +2h", k.Alg, k.RetiredAt, k.PublishUntil, signsFrom)
		}
	}
	c.Set(signsFrom.Add(2 * time.Hour))
	for _, r := range []*keys.Ring{b, a} {
		if err := r.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// (On the schedule, the successors are due for rotation by now too.)
	stored2 := storedKIDs(t, db)
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := jwksKIDs(t, b); !equalKIDs(got, stored2) {
		t.Errorf("b's JWKS after Retain: %v, database %v", got, stored2)
	}
	for _, alg := range clusterAlgs {
		if slices.Contains(stored2[alg], old[alg][0]) || !slices.Contains(stored2[alg], next[alg]) {
			t.Errorf("%s keys in the database after Retain: %v, want the successor %s and not the old key %s", alg, stored2[alg], next[alg], old[alg][0])
		}
		if forced && len(stored2[alg]) != 1 {
			t.Errorf("%s keys in the database after Retain: %v, want only the successor %s", alg, stored2[alg], next[alg])
		}
		if _, err := b.Verify(ctx, oldTok["a "+alg], jwt.WithValidate(false)); !errors.Is(err, keys.ErrUnknownKey) {
			t.Errorf("b verifies a %s token of a deleted key: %v", alg, err)
		}
	}
}

// TestKeyRingsRefreshAtRotationTimeMakeOneSuccessor: four rings refreshing
// at once (their Maintain) when rotation is due make one successor per
// algorithm, round after round, and all sign with it.
func TestKeyRingsRefreshAtRotationTimeMakeOneSuccessor(t *testing.T) {
	c := newClock()
	dsn := freshDSN(t)
	const n = 4
	rings, m := startRings(t, dsn, c, n, time.Hour)
	db := openDSN(t, dsn, c)
	for round := 1; round <= 2; round++ {
		before := storedKIDs(t, db)
		c.Advance(time.Hour) // every ring's current key is due
		m.arm(n)
		errs := race(n, func(i int) error { return rings[i].Refresh(ctx) })
		m.disarm()
		if got := count(errs); got["ok"] != n {
			t.Fatalf("round %d: %d concurrent refreshes: %v", round, n, got)
		}
		after := storedKIDs(t, db)
		for _, alg := range clusterAlgs {
			if added := len(after[alg]) - len(before[alg]); added != 1 {
				t.Errorf("round %d: %s: %d successors (before %v, after %v), want 1", round, alg, added, before[alg], after[alg])
			}
		}
		for i, r := range rings {
			if got := jwksKIDs(t, r); !equalKIDs(got, after) {
				t.Errorf("round %d: ring %d JWKS %v, database %v", round, i, got, after)
			}
		}
		c.Advance(5 * time.Minute) // the successors sign
		for _, alg := range clusterAlgs {
			_, want := signKID(t, rings[0], c, alg, time.Hour)
			for i, r := range rings {
				tok, kid := signKID(t, r, c, alg, time.Hour)
				if kid != want || slices.Contains(before[alg], kid) {
					t.Errorf("round %d: ring %d signs %s with %s, ring 0 with %s (old keys %v)", round, i, alg, kid, want, before[alg])
				}
				for j, v := range rings {
					mustVerify(t, v, fmt.Sprint(j), tok, alg+" token of ring "+fmt.Sprint(i))
				}
			}
		}
	}
}
