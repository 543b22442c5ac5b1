package metrics

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartcaddy/smartauth/store"
)

// TestStoreOpNamesCoverStore: every method of store.Store has one
// operation label, its name in snake case with initialisms kept whole
// (UseJTI is use_jti), and there are no others. A method added to the
// interface without an operation here fails.
func TestStoreOpNamesCoverStore(t *testing.T) {
	typ := reflect.TypeFor[store.Store]()
	var want []string
	for i := range typ.NumMethod() {
		want = append(want, snake(typ.Method(i).Name))
	}
	got := slices.Clone(storeOpNames[:])
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("operation labels %v\nwant (one per store.Store method) %v", got, want)
	}
}

// snake is a Go method name in snake case; a run of capitals is one word
// (UseJTI → use_jti, GetSessionByHash → get_session_by_hash).
func snake(name string) string {
	var b strings.Builder
	r := []rune(name)
	for i, c := range r {
		if unicode.IsUpper(c) && i > 0 && (unicode.IsLower(r[i-1]) || i+1 < len(r) && unicode.IsLower(r[i+1])) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}

// TestTokenRevokedTimedAsOne: the access token's revocation check is one
// timed operation, token_revoked, with its answer passed through.
func TestTokenRevokedTimedAsOne(t *testing.T) {
	db, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	s := New()
	st := s.InstrumentStore(db)
	ctx := context.Background()
	if err := db.Revoke(ctx, store.RevokedUser, "alice", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	q := store.TokenRevocationQuery{JTI: "j", Family: "f", Client: "app", User: "alice", IssuedAt: time.Now().Add(-time.Minute)}
	if revoked, err := st.TokenRevoked(ctx, q); err != nil || !revoked {
		t.Fatalf("TokenRevoked: %t %v, want revoked (the user's revocation)", revoked, err)
	}
	got := timedOps(t, s)
	if len(got) != 1 || got["token_revoked"] != 1 {
		t.Errorf("timed operations %v, want token_revoked once", got)
	}
}

// timedOps is how many times each store operation was timed.
func timedOps(t *testing.T, s *Set) map[string]uint64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.storeDuration)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "operation" {
					out[l.GetValue()] += m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return out
}
