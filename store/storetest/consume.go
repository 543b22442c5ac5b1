package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/store"
)

// errBadToken is what the registration-token checks of these cases return
// when the presented token does not match.
var errBadToken = errors.New("registration access token does not match")

// consumeCases race fifty callers for each single-use record: exactly one
// wins, the others get the contract's error, and none gets a transaction
// conflict or ErrContended.
var consumeCases = []testCase{
	{"RedeemCode", func(t *testing.T, e *env) {
		e.must(e.s.SaveCode(ctx, "the-code", &store.AuthCode{ClientID: "app", FamilyID: "fam"}, time.Minute), "SaveCode")
		errs := contend(func(int) error {
			rec, err := e.s.RedeemCode(ctx, "the-code")
			if err == nil || errors.Is(err, store.ErrReplayed) {
				if rec == nil || rec.FamilyID != "fam" || rec.ClientID != "app" {
					return fmt.Errorf("redemption returned record %+v with %v", rec, err)
				}
			}
			return err
		})
		if ok, replayed, _, _ := tally(t, "RedeemCode", errs, nil); ok != 1 || replayed != contenders-1 {
			t.Fatalf("%d redeemed, %d replays; want 1 and %d", ok, replayed, contenders-1)
		}
	}},
	{"RedeemCodeReplaysRevokeTheFamily", func(t *testing.T, e *env) {
		e.must(e.s.SaveCode(ctx, "code", &store.AuthCode{ClientID: "app", FamilyID: "fam"}, time.Minute), "SaveCode")
		errs := contend(func(int) error {
			rec, err := e.s.RedeemCode(ctx, "code")
			if errors.Is(err, store.ErrReplayed) {
				if err := e.s.Revoke(ctx, store.RevokedFamily, rec.FamilyID, e.c.Now().Add(time.Hour)); err != nil {
					return err
				}
			}
			return err
		})
		if ok, replayed, _, _ := tally(t, "RedeemCode+Revoke", errs, nil); ok != 1 || replayed != contenders-1 {
			t.Fatalf("%d redeemed, %d replays", ok, replayed)
		}
		if revoked, err := e.s.IsRevoked(ctx, store.RevokedFamily, "fam"); err != nil || !revoked {
			t.Fatalf("the replayed code's family: revoked=%t %v", revoked, err)
		}
	}},
	{"ConsumeLaunch", func(t *testing.T, e *env) {
		e.must(e.s.SaveLaunch(ctx, "L", &store.Launch{LaunchContext: store.LaunchContext{Patient: "p1"}, ClientID: "app"}, time.Minute), "SaveLaunch")
		errs := contend(func(int) error {
			l, err := e.s.ConsumeLaunch(ctx, "L")
			if err == nil && (l == nil || l.Patient != "p1") {
				return fmt.Errorf("consumed launch %+v", l)
			}
			return err
		})
		if ok, _, notFound, _ := tally(t, "ConsumeLaunch", errs, nil); ok != 1 || notFound != contenders-1 {
			t.Fatalf("%d consumed, %d not found", ok, notFound)
		}
		_, err := e.s.GetLaunch(ctx, "L")
		e.wantErr(err, store.ErrNotFound, "GetLaunch after it was consumed")
	}},
	{"RotateRefreshStrict", func(t *testing.T, e *env) {
		e.must(e.s.SaveRefresh(ctx, "rt", &store.RefreshToken{FamilyID: "fam", ClientID: "app"}, time.Hour), "SaveRefresh")
		next := func(i int) string { return fmt.Sprintf("rt-next-%d", i) }
		errs := contend(func(i int) error {
			_, err := e.s.RotateRefresh(ctx, "rt", store.Rotation{Next: next(i), TTL: time.Hour})
			return err
		})
		// The first reuse revokes the family; later ones may find the
		// token revoked (ErrNotFound).
		ok, replayed, notFound, _ := tally(t, "RotateRefresh", errs, nil)
		if ok != 1 || replayed < 1 || replayed+notFound != contenders-1 {
			t.Fatalf("%d rotated, %d reuses, %d revoked", ok, replayed, notFound)
		}
		if revoked, err := e.s.IsRevoked(ctx, store.RevokedFamily, "fam"); err != nil || !revoked {
			t.Errorf("family after the reuse: revoked=%t %v", revoked, err)
		}
		for i := range contenders {
			if _, err := e.s.GetRefresh(ctx, next(i)); err == nil {
				t.Errorf("successor %d is live after its family was revoked", i)
			}
		}
	}},
	{"RotateRefreshGrace", func(t *testing.T, e *env) {
		// With a grace period each retry replaces the successor before
		// it: every call succeeds, exactly one successor is left.
		e.must(e.s.SaveRefresh(ctx, "rt", &store.RefreshToken{FamilyID: "fam", ClientID: "app"}, time.Hour), "SaveRefresh")
		next := func(i int) string { return fmt.Sprintf("next-%d", i) }
		rot := func(nxt string) store.Rotation {
			return store.Rotation{Next: nxt, TTL: time.Hour, Grace: time.Minute}
		}
		errs := contend(func(i int) error {
			_, err := e.s.RotateRefresh(ctx, "rt", rot(next(i)))
			return err
		})
		if ok, _, _, _ := tally(t, "RotateRefresh", errs, nil); ok != contenders {
			t.Fatalf("%d of %d grace rotations succeeded", ok, contenders)
		}
		var live []int
		for i := range contenders {
			if _, err := e.s.GetRefresh(ctx, next(i)); err == nil {
				live = append(live, i)
			}
		}
		if len(live) != 1 {
			t.Fatalf("live successors %v, want exactly one", live)
		}
		if _, err := e.s.RotateRefresh(ctx, next(live[0]), rot("after")); err != nil {
			t.Fatal(err)
		}
		other := 0
		if live[0] == 0 {
			other = 1
		}
		_, err := e.s.RotateRefresh(ctx, next(other), rot("x"))
		e.wantErr(err, store.ErrReplayed, "a superseded successor")
		_, err = e.s.GetRefresh(ctx, "after")
		e.wantErr(err, store.ErrNotFound, "the family after the reuse of a superseded successor")
	}},
	{"UseJTI", func(t *testing.T, e *env) {
		exp := e.c.Now().Add(time.Minute)
		errs := contend(func(int) error { return e.s.UseJTI(ctx, "client", "jti-1", exp) })
		if ok, replayed, _, _ := tally(t, "UseJTI", errs, nil); ok != 1 || replayed != contenders-1 {
			t.Fatalf("%d recorded, %d replays", ok, replayed)
		}
		// The same jti from another issuer is another record.
		e.must(e.s.UseJTI(ctx, "other", "jti-1", exp), "the same jti from another issuer")
		// Fifty distinct jtis at once are all recorded.
		errs = contend(func(i int) error { return e.s.UseJTI(ctx, "client", fmt.Sprint("many-", i), exp) })
		if ok, _, _, _ := tally(t, "UseJTI distinct", errs, nil); ok != contenders {
			t.Fatalf("%d of %d distinct jtis recorded", ok, contenders)
		}
		e.wantErr(e.s.UseJTI(ctx, "client", "many-7", exp), store.ErrReplayed, "a replay of one of them")
	}},
	{"RemoveClientWithRegistrationToken", func(t *testing.T, e *env) {
		tok := "registration-token"
		e.must(e.s.PutClient(ctx, &store.Client{ID: "dyn", Type: store.ClientPublic, Dynamic: true, RegistrationTokenHash: store.HashID(tok)}), "PutClient")
		check := func(presented string) func(*store.Client) error {
			return func(c *store.Client) error {
				if c.RegistrationTokenHash != store.HashID(presented) {
					return errBadToken
				}
				return nil
			}
		}
		errs := contend(func(i int) error {
			presented := tok
			if i%5 == 0 {
				presented = "wrong"
			}
			return e.s.RemoveClient(ctx, "dyn", check(presented), e.c.Now().Add(time.Hour))
		})
		ok, _, notFound, bad := tally(t, "RemoveClient", errs, errBadToken)
		if ok != 1 || ok+notFound+bad != contenders {
			t.Fatalf("%d removed, %d not found, %d refused", ok, notFound, bad)
		}
		_, err := e.s.GetClient(ctx, "dyn")
		e.wantErr(err, store.ErrNotFound, "the removed client")
	}},
	{"UpdateClientRotatesRegistrationTokenOnce", func(t *testing.T, e *env) {
		// Fifty callers present the same registration token and each
		// replaces it: one succeeds, the others find it replaced.
		tok := "registration-token"
		e.must(e.s.PutClient(ctx, &store.Client{ID: "dyn", Type: store.ClientPublic, Dynamic: true, RegistrationTokenHash: store.HashID(tok)}), "PutClient")
		errs := contend(func(i int) error {
			return e.s.UpdateClient(ctx, "dyn", func(c *store.Client) (*store.Client, error) {
				if c.RegistrationTokenHash != store.HashID(tok) {
					return nil, errBadToken
				}
				n := *c
				n.RegistrationTokenHash = store.HashID(fmt.Sprint("new-", i))
				n.Name = fmt.Sprint("winner-", i)
				return &n, nil
			})
		})
		ok, _, _, bad := tally(t, "UpdateClient", errs, errBadToken)
		if ok != 1 || bad != contenders-1 {
			t.Fatalf("%d updates succeeded, %d refused; want 1 and %d", ok, bad, contenders-1)
		}
		c, err := e.s.GetClient(ctx, "dyn")
		e.must(err, "GetClient")
		for i, err := range errs {
			if err == nil && (c.Name != fmt.Sprint("winner-", i) || c.RegistrationTokenHash != store.HashID(fmt.Sprint("new-", i))) {
				t.Errorf("the stored client %+v is not the winner %d's", c, i)
			}
		}
	}},
	{"UpdateClientLosesNoUpdate", func(t *testing.T, e *env) {
		e.must(e.s.PutClient(ctx, &store.Client{ID: "c", Type: store.ClientPublic}), "PutClient")
		errs := contend(func(i int) error {
			return e.s.UpdateClient(ctx, "c", func(c *store.Client) (*store.Client, error) {
				n := *c
				n.Scopes = append(append([]string(nil), c.Scopes...), fmt.Sprint(i))
				return &n, nil
			})
		})
		if ok, _, _, _ := tally(t, "UpdateClient", errs, nil); ok != contenders {
			t.Fatalf("%d of %d updates succeeded", ok, contenders)
		}
		if c, err := e.s.GetClient(ctx, "c"); err != nil || len(c.Scopes) != contenders {
			t.Fatalf("after %d updates the client holds %d: %v", contenders, len(c.Scopes), err)
		}
	}},
	{"RevokeClientConcurrently", func(t *testing.T, e *env) {
		errs := contend(func(int) error {
			return e.s.Revoke(ctx, store.RevokedClient, "app", e.c.Now().Add(time.Hour))
		})
		if ok, _, _, _ := tally(t, "Revoke client", errs, nil); ok != contenders {
			t.Fatalf("%d of %d client revocations succeeded", ok, contenders)
		}
		if rev, err := e.s.Revocation(ctx, store.RevokedClient, "app"); err != nil || rev.Until.Before(e.c.Now().Add(time.Hour)) {
			t.Fatalf("revocation %+v %v", rev, err)
		}
	}},
}
