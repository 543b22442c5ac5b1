package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/smartcaddy/smartauth/handlers"
	"github.com/smartcaddy/smartauth/store"
)

// writeCountingStore is the real store with every call forwarded; the
// calls that write are counted.
type writeCountingStore struct {
	store.Store
	writes atomic.Int64
}

func (s *writeCountingStore) PutClient(ctx context.Context, c *store.Client) error {
	s.writes.Add(1)
	return s.Store.PutClient(ctx, c)
}

func (s *writeCountingStore) DeleteClient(ctx context.Context, id string) error {
	s.writes.Add(1)
	return s.Store.DeleteClient(ctx, id)
}

func (s *writeCountingStore) RemoveClient(ctx context.Context, id string, check func(c *store.Client) error, until time.Time) error {
	s.writes.Add(1)
	return s.Store.RemoveClient(ctx, id, check, until)
}

func (s *writeCountingStore) UpdateClient(ctx context.Context, id string, fn func(c *store.Client) (*store.Client, error)) error {
	s.writes.Add(1)
	return s.Store.UpdateClient(ctx, id, fn)
}

func (s *writeCountingStore) SaveCode(ctx context.Context, code string, rec *store.AuthCode, ttl time.Duration) error {
	s.writes.Add(1)
	return s.Store.SaveCode(ctx, code, rec, ttl)
}

func (s *writeCountingStore) RedeemCode(ctx context.Context, code string) (*store.AuthCode, error) {
	s.writes.Add(1)
	return s.Store.RedeemCode(ctx, code)
}

func (s *writeCountingStore) SaveLaunch(ctx context.Context, id string, rec *store.Launch, ttl time.Duration) error {
	s.writes.Add(1)
	return s.Store.SaveLaunch(ctx, id, rec, ttl)
}

func (s *writeCountingStore) ConsumeLaunch(ctx context.Context, id string) (*store.Launch, error) {
	s.writes.Add(1)
	return s.Store.ConsumeLaunch(ctx, id)
}

func (s *writeCountingStore) SaveSession(ctx context.Context, id string, rec *store.Session, ttl time.Duration) error {
	s.writes.Add(1)
	return s.Store.SaveSession(ctx, id, rec, ttl)
}

func (s *writeCountingStore) DeleteSession(ctx context.Context, id string) error {
	s.writes.Add(1)
	return s.Store.DeleteSession(ctx, id)
}

func (s *writeCountingStore) SaveRefresh(ctx context.Context, token string, rec *store.RefreshToken, ttl time.Duration) error {
	s.writes.Add(1)
	return s.Store.SaveRefresh(ctx, token, rec, ttl)
}

func (s *writeCountingStore) RotateRefresh(ctx context.Context, token string, rot store.Rotation) (*store.RefreshToken, error) {
	s.writes.Add(1)
	return s.Store.RotateRefresh(ctx, token, rot)
}

func (s *writeCountingStore) UseJTI(ctx context.Context, issuer, jti string, exp time.Time) error {
	s.writes.Add(1)
	return s.Store.UseJTI(ctx, issuer, jti, exp)
}

func (s *writeCountingStore) PutConsent(ctx context.Context, rec *store.Consent, ttl time.Duration) error {
	s.writes.Add(1)
	return s.Store.PutConsent(ctx, rec, ttl)
}

func (s *writeCountingStore) DeleteConsent(ctx context.Context, user, clientID string) error {
	s.writes.Add(1)
	return s.Store.DeleteConsent(ctx, user, clientID)
}

func (s *writeCountingStore) Revoke(ctx context.Context, kind store.RevocationKind, id string, until time.Time) error {
	s.writes.Add(1)
	return s.Store.Revoke(ctx, kind, id, until)
}

func (s *writeCountingStore) UpdateKeys(ctx context.Context, fn func([]*store.KeyRecord) ([]*store.KeyRecord, error)) error {
	s.writes.Add(1)
	return s.Store.UpdateKeys(ctx, fn)
}

// records lists every record of a Badger store.
func records(t *rapid.T, db *store.DB) []string {
	var out []string
	err := db.Export(context.Background(), func(r store.RawRecord) error {
		out = append(out, r.Kind+"/"+r.Key+" "+string(r.Value))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNoUnauthenticatedWrites checks the invariant that lets the pending
// requests live in the browser: whatever a caller who has not signed in
// sends to the authorization endpoint and the pages (valid and invalid
// authorization requests, EHR launches, the sign-in page, wrong
// passwords, bad CSRF tokens, pickers and consents with made-up, altered
// or other sessions' requests, planted session cookies), no store method
// that writes is called and the records are the same before and after.
func TestNoUnauthenticatedWrites(t *testing.T) {
	var counted *writeCountingStore
	env := newFlowEnv(t, flowOptions{config: func(c *handlers.Config) {
		counted = &writeCountingStore{Store: c.Store}
		c.Store = counted
	}})
	// Set up with writes: an EHR launch, and a request bound to alice's
	// session (its sealed value is then posted by callers without it).
	_, out := env.createLaunch("ehr", ehrSecret, `{"patient":"pat1","client_id":"app"}`)
	launch, _ := out["launch"].(string)
	alice := env.browser()
	p := alice.login(alice.follow(alice.get(env.authorizeURL(env.authParams("openid launch/patient patient/*.rs")))), "alice", alicePassword)
	bound, _ := url.Parse(p.location)
	if launch == "" || bound == nil || bound.Query().Get("req") == "" {
		t.Fatalf("setup: launch %q, after sign-in %d %s", launch, p.status, p.location)
	}
	seen := []string{bound.Query().Get("req")}

	rapid.Check(t, func(rt *rapid.T) {
		before, writes := records(rt, env.db), counted.writes.Load()
		b := env.browser()
		if rapid.Bool().Draw(rt, "planted session") {
			u, _ := url.Parse(env.issuer + "/")
			b.c.Jar.SetCookies(u, []*http.Cookie{{Name: "smart_auth_session", Value: store.NewSecret(), Path: "/auth"}})
		}
		req := func() string {
			switch rapid.IntRange(0, 4).Draw(rt, "req kind") {
			case 0:
				return rapid.SampledFrom(seen).Draw(rt, "seen req")
			case 1:
				return mutate(rt, rapid.SampledFrom(seen).Draw(rt, "req to mutate"))
			case 2:
				return rapid.StringMatching(`[A-Za-z0-9_-]{0,200}`).Draw(rt, "random req")
			case 3:
				return ""
			default:
				return rapid.String().Draw(rt, "any req")
			}
		}
		for range rapid.IntRange(1, 6).Draw(rt, "steps") {
			switch rapid.IntRange(0, 6).Draw(rt, "action") {
			case 0: // an authorization request, valid or not
				v := env.authParams(rapid.SampledFrom([]string{"openid patient/*.rs", "launch openid patient/*.rs",
					"openid fhirUser launch/patient patient/Observation.rs offline_access", "system/*.rs", ""}).Draw(rt, "scope"))
				if rapid.Bool().Draw(rt, "with launch") {
					v.Set("launch", rapid.SampledFrom([]string{launch, "made-up"}).Draw(rt, "launch"))
				}
				for _, k := range rapid.SliceOfDistinct(rapid.SampledFrom([]string{"client_id", "redirect_uri", "state",
					"code_challenge", "aud", "response_type"}), func(s string) string { return s }).Draw(rt, "dropped") {
					v.Del(k)
				}
				if rapid.Bool().Draw(rt, "prompt none") {
					v.Set("prompt", "none")
				}
				var p page
				if rapid.Bool().Draw(rt, "POST") {
					p = b.post(env.issuer+"/authorize", v)
				} else {
					p = b.get(env.authorizeURL(v))
				}
				if u, err := url.Parse(p.location); err == nil && u.Query().Get("req") != "" {
					seen = append(seen, u.Query().Get("req"))
				}
			case 1: // the sign-in page
				b.get(env.issuer + "/login?" + url.Values{"req": {req()}, "return": {rapid.SampledFrom([]string{"", "launcher", "manage"}).Draw(rt, "return")}}.Encode())
			case 2: // a sign-in that fails: wrong password, or a bad CSRF token
				// The form of the plain sign-in page (a page named with a
				// request that does not open says it is gone); the post
				// carries a request either way.
				lp := b.get(env.issuer + "/login")
				forms := forms(t, lp.body)
				if len(forms) != 1 {
					rt.Fatalf("sign-in page: %d %s", lp.status, lp.body)
				}
				user := rapid.SampledFrom([]string{"alice", "bob", "nobody"}).Draw(rt, "user")
				right := rapid.Bool().Draw(rt, "right password")
				b.submit(forms[0], func(v url.Values) {
					v.Set("username", user)
					v.Set("password", "wrong")
					v.Set("req", req())
					if right { // with the right password, the CSRF token is bad
						v.Set("password", map[string]string{"alice": alicePassword, "bob": bobPassword}[user])
						v.Set("csrf_token", mutate(rt, v.Get("csrf_token")))
					}
				})
			case 3, 4: // the picker and consent pages, shown and posted
				path := rapid.SampledFrom([]string{"/select-patient", "/consent"}).Draw(rt, "page")
				if rapid.Bool().Draw(rt, "page GET") {
					b.get(env.issuer + path + "?" + url.Values{"req": {req()}}.Encode())
				} else {
					b.post(env.issuer+path, url.Values{"req": {req()}, "csrf_token": {rapid.StringMatching(`[A-Za-z0-9_-]{0,43}`).Draw(rt, "csrf")},
						"patient": {"pat1"}, "decision": {rapid.SampledFrom([]string{"allow", "deny", ""}).Draw(rt, "decision")}})
				}
			case 5: // signing out without a session
				if rapid.Bool().Draw(rt, "logout GET") {
					b.get(env.issuer + "/logout")
				} else {
					b.post(env.issuer+"/logout", url.Values{"csrf_token": {store.NewSecret()}})
				}
			case 6: // the signed-in pages
				b.get(env.issuer + rapid.SampledFrom([]string{"/launcher", "/manage"}).Draw(rt, "signed-in page"))
			}
		}
		if n := counted.writes.Load() - writes; n != 0 {
			rt.Fatalf("%d store writes from callers who did not sign in", n)
		}
		if after := records(rt, env.db); !slices.Equal(before, after) {
			rt.Fatalf("the records changed: %d before, %d after", len(before), len(after))
		}
	})
}

// mutate changes a string a little: one character replaced, cut short,
// or extended.
func mutate(t *rapid.T, s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	if s == "" {
		return rapid.StringMatching(`[A-Za-z0-9_-]{1,8}`).Draw(t, "grown")
	}
	switch rapid.IntRange(0, 2).Draw(t, "mutation") {
	case 0:
		i := rapid.IntRange(0, len(s)-1).Draw(t, "at")
		c := rapid.SampledFrom([]byte(strings.ReplaceAll(alphabet, s[i:i+1], ""))).Draw(t, "to")
		return s[:i] + string(c) + s[i+1:]
	case 1:
		return s[:rapid.IntRange(0, len(s)-1).Draw(t, "keep")]
	default:
		return s + rapid.StringMatching(`[A-Za-z0-9_-]{1,8}`).Draw(t, "more")
	}
}
