package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// contenders is how many goroutines each conflict test runs at once.
const contenders = 50

// contend runs fn(i) for i in [0, contenders) all at once and returns
// their errors in order.
func contend(fn func(i int) error) []error {
	errs := make([]error, contenders)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range contenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// count counts errors by kind: nil, ErrReplayed, ErrNotFound and others;
// a conflict among them fails the test.
func count(t *testing.T, what string, errs []error) (ok, replayed, notFound int) {
	t.Helper()
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrReplayed):
			replayed++
		case errors.Is(err, ErrNotFound):
			notFound++
		case errors.Is(err, badger.ErrConflict):
			t.Errorf("%s: a conflict reached the caller: %v", what, err)
		default:
			t.Errorf("%s: %v", what, err)
		}
	}
	return ok, replayed, notFound
}

// conflictsOf runs fn and returns how many conflicts the DB retried
// meanwhile.
func conflictsOf(db *DB, fn func()) uint64 {
	before := db.ConflictStats().Conflicts
	fn()
	return db.ConflictStats().Conflicts - before
}

// TestConcurrentConflictingOperationsAllFinish runs, several rounds each,
// 50 concurrent store operations that all read and write the same record,
// and checks that every one of them returns a real answer, never a
// transaction conflict.
func TestConcurrentConflictingOperationsAllFinish(t *testing.T) {
	db := openTest(t, t.TempDir())
	const rounds = 5
	for round := range rounds {
		before := db.ConflictStats()

		// Every update of one client must land: none lost, none failed.
		id := fmt.Sprintf("c%d", round)
		if err := db.PutClient(ctx, &Client{ID: id, Type: ClientPublic}); err != nil {
			t.Fatal(err)
		}
		var errs []error
		retried := map[string]uint64{}
		retried["UpdateClient"] = conflictsOf(db, func() {
			errs = contend(func(i int) error {
				return db.UpdateClient(ctx, id, func(c *Client) (*Client, error) {
					c.Scopes = append(c.Scopes, fmt.Sprint(i))
					return c, nil
				})
			})
		})
		if ok, _, _ := count(t, "UpdateClient", errs); ok != contenders {
			t.Errorf("round %d: %d of %d updates succeeded", round, ok, contenders)
		}
		if c, err := db.GetClient(ctx, id); err != nil || len(c.Scopes) != contenders {
			t.Errorf("round %d: after %d updates the client holds %d: %v", round, contenders, len(c.Scopes), err)
		}

		// Client revocations always write (each covers later tokens).
		retried["Revoke client"] = conflictsOf(db, func() {
			errs = contend(func(int) error { return db.Revoke(ctx, RevokedClient, id, time.Now().Add(time.Hour)) })
		})
		if ok, _, _ := count(t, "Revoke client", errs); ok != contenders {
			t.Errorf("round %d: %d of %d client revocations succeeded", round, ok, contenders)
		}

		// A code redeemed 50 times, each replay revoking its family.
		code := fmt.Sprintf("code-%d", round)
		fam := fmt.Sprintf("fam-%d", round)
		if err := db.SaveCode(ctx, code, &AuthCode{ClientID: "app", FamilyID: fam}, time.Minute); err != nil {
			t.Fatal(err)
		}
		retried["RedeemCode+Revoke family"] = conflictsOf(db, func() {
			errs = contend(func(int) error {
				rec, err := db.RedeemCode(ctx, code)
				if errors.Is(err, ErrReplayed) {
					if err := db.Revoke(ctx, RevokedFamily, rec.FamilyID, time.Now().Add(time.Hour)); err != nil {
						return err
					}
				}
				return err
			})
		})
		if ok, replayed, _ := count(t, "RedeemCode", errs); ok != 1 || replayed != contenders-1 {
			t.Errorf("round %d: code: %d redeemed, %d replays", round, ok, replayed)
		}
		if revoked, _ := db.IsRevoked(ctx, RevokedFamily, fam); !revoked {
			t.Errorf("round %d: the replayed code's family is not revoked", round)
		}

		// A refresh token rotated 50 times under strict rotation.
		rt := fmt.Sprintf("rt-%d", round)
		rfam := fmt.Sprintf("rfam-%d", round)
		if err := db.SaveRefresh(ctx, rt, &RefreshToken{FamilyID: rfam, ClientID: "app"}, time.Hour); err != nil {
			t.Fatal(err)
		}
		retried["RotateRefresh"] = conflictsOf(db, func() {
			errs = contend(func(i int) error {
				_, err := db.RotateRefresh(ctx, rt, Rotation{Next: fmt.Sprintf("%s-next-%d", rt, i), TTL: time.Hour})
				return err
			})
		})
		// The first reuse revokes the family; later ones find the token
		// revoked (ErrNotFound).
		if ok, replayed, notFound := count(t, "RotateRefresh", errs); ok != 1 || replayed < 1 || replayed+notFound != contenders-1 {
			t.Errorf("round %d: refresh: %d rotated, %d reuses, %d revoked", round, ok, replayed, notFound)
		}

		// Concurrent removals: one wins, the others find nothing.
		retried["RemoveClient"] = conflictsOf(db, func() {
			errs = contend(func(int) error { return db.RemoveClient(ctx, id, nil, time.Now().Add(time.Hour)) })
		})
		if ok, _, notFound := count(t, "RemoveClient", errs); ok != 1 || notFound != contenders-1 {
			t.Errorf("round %d: remove: %d removed, %d not found", round, ok, notFound)
		}

		after := db.ConflictStats()
		t.Logf("round %d: conflicts retried %v; most attempts by one operation so far %d; gave up %d",
			round, retried, after.MaxAttempts, after.GaveUp-before.GaveUp)
	}
	if s := db.ConflictStats(); s.GaveUp != 0 || s.Conflicts == 0 {
		t.Errorf("conflict stats %+v: want conflicts retried (the test must contend) and none given up", s)
	}
}
