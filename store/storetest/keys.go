package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/store"
)

// keyRecord is a key record with every field set.
func keyRecord(kid string) *store.KeyRecord {
	return &store.KeyRecord{
		KID: kid, Alg: "ES384",
		PrivateKey:   []byte{0x30, 0x81, 0x00, 0xff, byte(len(kid))},
		PublicJWK:    json.RawMessage(`{"kty":"EC","crv":"P-384","x":"abc","y":"def","kid":"` + kid + `"}`),
		External:     true,
		CreatedAt:    start.Add(-48 * time.Hour),
		ActiveFrom:   start.Add(-47 * time.Hour),
		RetiredAt:    start.Add(-time.Hour),
		PublishUntil: start.Add(time.Hour),
	}
}

// kids lists the key ids of records, sorted.
func kids(keys []*store.KeyRecord) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.KID)
	}
	slices.Sort(out)
	return out
}

// keyCases check the signing-key records.
var keyCases = []testCase{
	{"UpdateAndRead", func(t *testing.T, e *env) {
		if keys, err := e.s.Keys(ctx); err != nil || len(keys) != 0 {
			t.Fatalf("Keys of an empty store: %+v %v", keys, err)
		}
		e.must(e.s.UpdateKeys(ctx, func(cur []*store.KeyRecord) ([]*store.KeyRecord, error) {
			if len(cur) != 0 {
				t.Errorf("the first update saw %d keys", len(cur))
			}
			return []*store.KeyRecord{keyRecord("a"), {KID: "b", Alg: "RS384", PublicJWK: json.RawMessage(`{"kty":"RSA"}`), CreatedAt: start}}, nil
		}), "UpdateKeys")
		keys, err := e.s.Keys(ctx)
		e.must(err, "Keys")
		if !slices.Equal(kids(keys), []string{"a", "b"}) {
			t.Fatalf("keys %v, want a, b", kids(keys))
		}
		for _, k := range keys {
			if k.KID == "a" {
				same(t, "key a", k, keyRecord("a"))
			}
		}
		// Records fn leaves out are deleted; those it returns are put.
		e.must(e.s.UpdateKeys(ctx, func(cur []*store.KeyRecord) ([]*store.KeyRecord, error) {
			if !slices.Equal(kids(cur), []string{"a", "b"}) {
				t.Errorf("the second update saw %v", kids(cur))
			}
			var out []*store.KeyRecord
			for _, k := range cur {
				if k.KID == "b" {
					n := *k
					n.RetiredAt = start.Add(time.Minute)
					out = append(out, &n)
				}
			}
			return append(out, keyRecord("c")), nil
		}), "UpdateKeys")
		keys, err = e.s.Keys(ctx)
		e.must(err, "Keys")
		if !slices.Equal(kids(keys), []string{"b", "c"}) {
			t.Fatalf("keys %v, want b, c", kids(keys))
		}
		for _, k := range keys {
			if k.KID == "b" && !k.RetiredAt.Equal(start.Add(time.Minute)) {
				t.Errorf("key b was not updated: %+v", k)
			}
		}
		// An error from fn is returned and changes nothing.
		boom := errors.New("boom")
		err = e.s.UpdateKeys(ctx, func([]*store.KeyRecord) ([]*store.KeyRecord, error) { return nil, boom })
		e.wantErr(err, boom, "fn's error")
		if keys, err := e.s.Keys(ctx); err != nil || !slices.Equal(kids(keys), []string{"b", "c"}) {
			t.Errorf("keys after a failed update: %v %v", kids(keys), err)
		}
		// Returning nothing deletes everything.
		e.must(e.s.UpdateKeys(ctx, func([]*store.KeyRecord) ([]*store.KeyRecord, error) { return nil, nil }), "UpdateKeys")
		if keys, err := e.s.Keys(ctx); err != nil || len(keys) != 0 {
			t.Errorf("keys after deleting all: %v %v", kids(keys), err)
		}
	}},
	{"ConcurrentUpdatesAllApply", func(t *testing.T, e *env) {
		// Concurrent updates starting from no keys at all (two instances
		// generating their first key) and then from some: each one's
		// key is kept, none overwrites another's view.
		for round, n := range []int{2, 10} {
			var wg sync.WaitGroup
			errs := make([]error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					kid := fmt.Sprintf("r%d-%02d", round, i)
					errs[i] = e.s.UpdateKeys(ctx, func(cur []*store.KeyRecord) ([]*store.KeyRecord, error) {
						return append(slices.Clone(cur), keyRecord(kid)), nil
					})
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("round %d update %d: %v", round, i, err)
				}
			}
		}
		keys, err := e.s.Keys(ctx)
		e.must(err, "Keys")
		got := kids(keys)
		if len(got) != 12 || !strings.HasPrefix(got[0], "r0-") || !strings.HasPrefix(got[11], "r1-") {
			t.Fatalf("after 2 then 10 concurrent updates: %v", got)
		}
	}},
}
