package integration

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The key subtest cannot wait for rotations in real time: a successor is
// published keyPublishAhead (5 minutes, smartauth.go) before it signs, and
// each instance refreshes its ring every keys.MaintainInterval (a
// minute). It moves time instead: it shifts every timestamp of the key
// records in the database back by the publish-ahead time (as if the
// cluster's clock had jumped that far), and stands in for each instance's
// Maintain tick by showing its guard a token with an unknown, plausible
// kid, which makes the ring reload (and rotate what is due) at most once a
// second. Everything else is the product's own behaviour.

// multiKeyPublishAhead mirrors keyPublishAhead in smartauth.go.
const multiKeyPublishAhead = 5 * time.Minute

// keyRotationRounds is how many rotations the key subtest makes.
const keyRotationRounds = 3

// mintedToken is an access token one instance issued, with its kid.
type mintedToken struct {
	access, kid string
	by          int
}

// keyRotation rotates the keys several times while both instances issue
// and verify tokens.
func (m *instances) keyRotation() {
	t := m.t
	var tokens []mintedToken
	mint := func(i int) mintedToken {
		tok := m.mustBackendToken(i)
		mt := mintedToken{tok, tokenKID(t, tok), i}
		tokens = append(tokens, mt)
		return mt
	}
	// Every token either instance issued verifies on both guards, and its
	// kid is in both JWKS.
	checkAll := func(when string) {
		t.Helper()
		jwks := [2][]string{jwksKIDs(t, m.base[0]+"/auth/jwks"), jwksKIDs(t, m.base[1]+"/auth/jwks")}
		for _, tok := range tokens {
			for i := range 2 {
				if !slices.Contains(jwks[i], tok.kid) {
					t.Errorf("%s: %s's JWKS %v lacks kid %s of a token %s issued", when, instanceNames[i], jwks[i], tok.kid, instanceNames[tok.by])
				}
				m.mustRead(i, tok.access, fmt.Sprintf("%s: a token %s signed with %s", when, instanceNames[tok.by], tok.kid))
			}
		}
	}

	// The first reload after key_rotation makes successors (published,
	// not signing yet); the other instance learns them at its own reload.
	m.nudgeUntil(0, "A makes successors", func(db keyState, kids []string) bool {
		return len(db.pending()) == 2 && sameSet(kids, db.published())
	})
	m.nudgeUntil(1, "B loads them", func(db keyState, kids []string) bool { return sameSet(kids, db.published()) })
	for i := range 2 {
		if tok := mint(i); tok.kid != readKeys(t, m.dsn).current("ES256") {
			t.Fatalf("%s signs with %s, not the current key", instanceNames[i], tok.kid)
		}
	}
	checkAll("before any rotation")

	for r := 1; r <= keyRotationRounds; r++ {
		shiftKeys(t, m.dsn, multiKeyPublishAhead+2*time.Second)
		m.nudgeUntil(0, fmt.Sprintf("rotation %d: A starts the successors and makes the next", r),
			func(db keyState, kids []string) bool { return len(db.pending()) == 2 && sameSet(kids, db.published()) })
		db := readKeys(t, m.dsn)
		if tok := mint(0); tok.kid != db.current("ES256") {
			t.Fatalf("rotation %d: A signs with %s, not the successor %s", r, tok.kid, db.current("ES256"))
		}
		// B has not reloaded since: it still publishes A's new key,
		// since it was published ahead, and may still sign with the old.
		if kids := jwksKIDs(t, m.base[1]+"/auth/jwks"); !slices.Contains(kids, db.current("ES256")) {
			t.Errorf("rotation %d: before its reload, B's JWKS %v lacks the key A signs with now", r, kids)
		}
		t.Logf("rotation %d: before its reload B signs with %s (A with %s)", r, mint(1).kid, db.current("ES256"))
		checkAll(fmt.Sprintf("rotation %d, B not reloaded", r))
		m.nudgeUntil(1, fmt.Sprintf("rotation %d: B loads the keys", r), func(db keyState, kids []string) bool {
			return sameSet(kids, db.published())
		})
		if a, b := jwksKIDs(t, m.base[0]+"/auth/jwks"), jwksKIDs(t, m.base[1]+"/auth/jwks"); !sameSet(a, b) {
			t.Errorf("rotation %d: the JWKS differ after both reloaded: A %v, B %v", r, a, b)
		}
		if tok := mint(1); tok.kid != db.current("ES256") {
			t.Errorf("rotation %d: after its reload B signs with %s, not %s", r, tok.kid, db.current("ES256"))
		}
		checkAll(fmt.Sprintf("rotation %d", r))
	}
	var kids []string
	for _, tok := range tokens {
		if !slices.Contains(kids, tok.kid) {
			kids = append(kids, tok.kid)
		}
	}
	t.Logf("%d access tokens signed with %d ES256 keys over %d rotations; %d key records at the end",
		len(tokens), len(kids), keyRotationRounds, len(readKeys(t, m.dsn).recs))
	if len(kids) < keyRotationRounds+1 {
		t.Errorf("the tokens were signed with %d keys over %d rotations: %v", len(kids), keyRotationRounds, kids)
	}
}

// nudgeUntil shows instance i's guard tokens with an unknown kid (each
// makes its ring reload the store, at most once a second) until cond
// holds for the database's key records and the instance's JWKS, failing
// the test after 15 s.
func (m *instances) nudgeUntil(i int, what string, cond func(db keyState, kids []string) bool) {
	m.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		a := m.read(i, unknownKIDToken())
		if a.err != nil || a.status != http.StatusUnauthorized {
			m.t.Fatalf("%s: a token with an unknown kid at %s's guard: %d %v %.300s", what, instanceNames[i], a.status, a.err, a.body)
		}
		db, kids := readKeys(m.t, m.dsn), jwksKIDs(m.t, m.base[i]+"/auth/jwks")
		if cond(db, kids) {
			return
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("%s: not reached after 15 s; %s's JWKS %v, records %s", what, instanceNames[i], kids, db)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// unknownKIDToken is a token-shaped string with a plausible kid no key
// has (an RFC 7638 thumbprint's length and alphabet).
func unknownKIDToken() string {
	kid := make([]byte, 32)
	_, _ = rand.Read(kid)
	hdr := fmt.Sprintf(`{"alg":"ES256","typ":"at+jwt","kid":%q}`, base64.RawURLEncoding.EncodeToString(kid))
	return b64([]byte(hdr)) + "." + b64([]byte(`{"iss":"x"}`)) + "." + b64(make([]byte, 64))
}

// tokenKID is the kid in a compact JWS's header.
func tokenKID(t *testing.T, token string) string {
	t.Helper()
	h, _, _ := strings.Cut(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(h)
	var hdr struct {
		KID string `json:"kid"`
	}
	if err != nil || json.Unmarshal(raw, &hdr) != nil || hdr.KID == "" {
		t.Fatalf("no kid in the token's header %q", raw)
	}
	return hdr.KID
}

// sameSet tells whether two lists hold the same strings.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// keyRecord is the part of a signing_keys record the test reads.
type keyRecord struct {
	KID          string    `json:"kid"`
	Alg          string    `json:"alg"`
	External     bool      `json:"external"`
	ActiveFrom   time.Time `json:"active_from"`
	RetiredAt    time.Time `json:"retired_at"`
	PublishUntil time.Time `json:"publish_until"`
}

// keyState is the key records as read at a moment.
type keyState struct {
	at   time.Time
	recs []keyRecord
}

// String lists the records relative to the moment they were read.
func (s keyState) String() string {
	var b strings.Builder
	for _, k := range s.recs {
		fmt.Fprintf(&b, "\n  %s %s active %s retired %v", k.Alg, k.KID, k.ActiveFrom.Sub(s.at).Round(time.Second), !k.RetiredAt.IsZero())
	}
	return b.String()
}

// readKeys reads the key records from the database.
func readKeys(t *testing.T, dsn string) keyState {
	t.Helper()
	s := keyState{at: time.Now()}
	for _, raw := range queryDB[string](t, dsn, "SELECT record::text FROM signing_keys") {
		var k keyRecord
		if err := json.Unmarshal([]byte(raw), &k); err != nil {
			t.Fatalf("a key record: %v", err)
		}
		s.recs = append(s.recs, k)
	}
	return s
}

// published lists the kids the JWKS should hold.
func (s keyState) published() []string {
	var kids []string
	for _, k := range s.recs {
		if k.PublishUntil.IsZero() || k.PublishUntil.After(s.at) {
			kids = append(kids, k.KID)
		}
	}
	return kids
}

// pending lists the successors that do not sign yet.
func (s keyState) pending() []string {
	var kids []string
	for _, k := range s.recs {
		if k.ActiveFrom.After(s.at) && k.RetiredAt.IsZero() {
			kids = append(kids, k.KID)
		}
	}
	return kids
}

// current is the kid of the generated key that signs alg now.
func (s keyState) current(alg string) string {
	var cur *keyRecord
	for i, k := range s.recs {
		if k.Alg != alg || k.External || k.ActiveFrom.After(s.at) || !k.RetiredAt.IsZero() && !k.RetiredAt.After(s.at) {
			continue
		}
		if cur == nil || k.ActiveFrom.After(cur.ActiveFrom) {
			cur = &s.recs[i]
		}
	}
	if cur == nil {
		return ""
	}
	return cur.KID
}

// shiftKeys moves every timestamp of the key records d into the past,
// holding the lock the store's key updates take, as if the cluster's
// clock had jumped d ahead.
func shiftKeys(t *testing.T, dsn string, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	err = pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT kid, record::text FROM signing_keys`)
		if err != nil {
			return err
		}
		type row struct {
			kid    []byte
			record string
		}
		all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			return x, r.Scan(&x.kid, &x.record)
		})
		if err != nil {
			return err
		}
		for _, x := range all {
			var rec map[string]any
			if err := json.Unmarshal([]byte(x.record), &rec); err != nil {
				return err
			}
			for _, f := range []string{"created_at", "active_from", "retired_at", "publish_until"} {
				s, ok := rec[f].(string)
				if !ok {
					continue
				}
				at, err := time.Parse(time.RFC3339Nano, s)
				if err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
				rec[f] = at.Add(-d).Format(time.RFC3339Nano)
			}
			out, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE signing_keys SET record = $2::json WHERE kid = $1`, x.kid, string(out)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("shifting the key records: %v", err)
	}
}
