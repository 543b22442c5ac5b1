package authz

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/smartcaddy/smartauth/handlers/users"
	"github.com/smartcaddy/smartauth/store"
)

// Property tests of the sealed pending requests (pgregory.net/rapid;
// -rapid.checks=N for more cases, -rapid.seed to replay one).

const sealIssuer = "https://auth.example/a"

// testPending is a pendingRequests over a Badger store with a fresh site
// secret, on a settable clock, with one signed-in user, "alice".
func testPending(t testing.TB) (*pendingRequests, *time.Time) {
	t.Helper()
	db, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	keys, err := loadSiteKeys(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	pr := &pendingRequests{
		keys: keys, issuer: sealIssuer, used: db,
		sessions: &sessions{users: map[string]*users.User{"alice": {Name: "alice"}}},
		now:      func() time.Time { return now },
	}
	return pr, &now
}

// signedIn is a signed-in session of alice with the given id.
func signedIn(id string) *flowSession {
	return &flowSession{id: id, rec: &store.Session{User: "alice"}}
}

// drawPending draws a pending request with every field set at random.
func drawPending(t *rapid.T) pendingAuthorization {
	str := func(name string) string { return rapid.String().Draw(t, name) }
	banner := rapid.Bool().Draw(t, "banner")
	return pendingAuthorization{
		clientID: str("client"), clientName: str("clientName"), redirectURI: str("redirect"), state: str("state"),
		nonce: str("nonce"), challenge: str("challenge"),
		offered: rapid.SliceOfN(rapid.StringMatching(`[a-z/*.]{1,20}`), 1, 6).Draw(t, "offered"),
		context: store.LaunchContext{Patient: str("patient"), Encounter: str("encounter"), NeedPatientBanner: &banner,
			Intent: str("intent"), Tenant: str("tenant")},
		ehrLaunch: rapid.Bool().Draw(t, "ehr"), launchID: str("launch"), launchUser: str("launchUser"),
		promptNone: rapid.Bool().Draw(t, "promptNone"), session: str("session"),
	}
}

// b64url is the alphabet of a sealed value.
const b64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// TestSealedPendingRoundTrip checks that a sealed request opens as it was
// sealed, every field included, until it expires.
func TestSealedPendingRoundTrip(t *testing.T) {
	pr, now := testPending(t)
	start := *now
	rapid.Check(t, func(t *rapid.T) {
		*now = start
		p := drawPending(t)
		sealed := pr.begin(&p)
		p.issuer = sealIssuer
		got, ok := pr.peek(sealed)
		if !ok {
			t.Fatal("a fresh sealed request does not open")
		}
		if got.expires.UnixNano() != p.expires.UnixNano() {
			t.Fatalf("expiry %v, want %v", got.expires, p.expires)
		}
		got.expires, p.expires = time.Time{}, time.Time{}
		if !reflect.DeepEqual(got, p) {
			t.Fatalf("opened %+v\nwant %+v", got, p)
		}
		*now = start.Add(pendingAuthorizationTTL - time.Nanosecond)
		if _, ok := pr.peek(sealed); !ok {
			t.Fatal("a request does not open just before it expires")
		}
	})
}

// TestSealedPendingTamper checks that nothing but the sealed value itself
// opens: any changed character or bit, a truncation, an extension, a
// value sealed for another issuer or under another site secret, an
// expired one. A request bound to one session does not open for another,
// and a used one is used.
func TestSealedPendingTamper(t *testing.T) {
	pr, now := testPending(t)
	other, _ := testPending(t)
	start := *now
	rapid.Check(t, func(t *rapid.T) {
		*now = start
		p := drawPending(t)
		sealed := pr.begin(&p)
		var bad string
		switch rapid.IntRange(0, 6).Draw(t, "mutation") {
		case 0: // one character changed
			i := rapid.IntRange(0, len(sealed)-1).Draw(t, "at")
			c := rapid.SampledFrom([]byte(strings.ReplaceAll(b64url, sealed[i:i+1], ""))).Draw(t, "to")
			bad = sealed[:i] + string(c) + sealed[i+1:]
		case 1: // one bit of the raw value flipped
			raw, err := pendingEncoding.DecodeString(sealed)
			if err != nil {
				t.Fatal(err)
			}
			i := rapid.IntRange(0, len(raw)*8-1).Draw(t, "bit")
			raw[i/8] ^= 1 << (i % 8)
			bad = pendingEncoding.EncodeToString(raw)
		case 2: // truncated
			bad = sealed[:rapid.IntRange(0, len(sealed)-1).Draw(t, "keep")]
		case 3: // extended
			bad = sealed + rapid.StringMatching(`[A-Za-z0-9_-]{1,8}`).Draw(t, "more")
		case 4: // another issuer
			bad = sealed
			pr.issuer = sealIssuer + rapid.StringMatching(`[a-z/]{0,3}`).Draw(t, "suffix")
			if pr.issuer == sealIssuer {
				pr.issuer = "https://auth.example/b"
			}
			defer func() { pr.issuer = sealIssuer }()
		case 5: // sealed under another site secret
			other.issuer = sealIssuer
			bad = other.begin(&p)
		case 6: // expired
			bad = sealed
			*now = start.Add(pendingAuthorizationTTL + time.Duration(rapid.Int64Range(0, int64(time.Hour)).Draw(t, "late")))
		}
		if _, ok := pr.peek(bad); ok {
			t.Fatalf("a tampered value opened: %q (sealed %q)", bad, sealed)
		}
	})

	// Bound to a session: another session can neither continue it nor
	// claim it; the session it names can.
	*now = start
	p := pendingAuthorization{clientID: "app", redirectURI: "https://app.example/cb", state: "s", offered: []string{"openid"}}
	unbound := pr.begin(&p)
	mine, thief := signedIn("session-mine"), signedIn("session-thief")
	bound, ok := pr.claim(mine, unbound, "")
	if !ok {
		t.Fatal("an unbound request was not claimed")
	}
	sealed := pr.seal(bound)
	if _, ok := pr.forSession(mine, sealed); !ok {
		t.Fatal("the bound session cannot continue its request")
	}
	if _, ok := pr.forSession(thief, sealed); ok {
		t.Fatal("another session continues a bound request")
	}
	if _, ok := pr.claim(thief, sealed, ""); ok {
		t.Fatal("another session claims a bound request")
	}
	if _, ok := pr.claim(thief, sealed, store.HashID("session-mine")); !ok {
		t.Fatal("the session that replaced the bound one at sign-in cannot claim it")
	}
	if _, ok := pr.forSession(&flowSession{id: "session-mine", rec: &store.Session{}}, sealed); ok {
		t.Fatal("a session that is not signed in continues a request")
	}

	// Used once: every sealing of the request shares its id.
	ctx := context.Background()
	if err := pr.use(ctx, bound); err != nil {
		t.Fatal(err)
	}
	again, _ := pr.forSession(mine, sealed)
	if err := pr.use(ctx, again); !errors.Is(err, store.ErrReplayed) {
		t.Fatalf("a used request used again: %v", err)
	}
	if err := pr.use(ctx, p); !errors.Is(err, store.ErrReplayed) {
		t.Fatalf("an earlier sealing of a used request used again: %v", err)
	}
}

// TestSealedPendingTooLong checks that a value over pendingMaxSealed is
// refused before it is decoded.
func TestSealedPendingTooLong(t *testing.T) {
	pr, _ := testPending(t)
	p := pendingAuthorization{state: strings.Repeat("s", pendingMaxSealed)}
	sealed := pr.begin(&p)
	if len(sealed) <= pendingMaxSealed {
		t.Fatalf("sealed %d characters", len(sealed))
	}
	if _, ok := pr.peek(sealed); ok {
		t.Fatal("a value over the bound opened")
	}
}

// FuzzOpenPending feeds the opener arbitrary values: it never panics, and
// nothing opens but a value the server sealed (the seeds).
func FuzzOpenPending(f *testing.F) {
	pr, _ := testPending(f)
	sealedSeeds := map[string]bool{}
	for _, p := range []pendingAuthorization{
		{clientID: "app", redirectURI: "https://app.example/cb", state: "s", offered: []string{"openid"}},
		{clientID: "app", state: "s2", offered: []string{"launch", "patient/*.rs"}, ehrLaunch: true, launchID: "l1",
			context: store.LaunchContext{Patient: "p1"}, session: store.HashID("sess")},
	} {
		s := pr.begin(&p)
		sealedSeeds[s] = true
		f.Add(s)
		f.Add(s[:len(s)/2])
		f.Add(s + "A")
	}
	f.Add("")
	f.Add("AQ")
	f.Add(strings.Repeat("A", 80))
	f.Fuzz(func(t *testing.T, v string) {
		p, ok := pr.peek(v)
		if ok && !sealedSeeds[v] {
			t.Fatalf("a value the server did not seal opened: %q → %+v", v, p)
		}
	})
}

// BenchmarkSealOpenPending seals and opens a typical standalone request,
// bound to a session.
func BenchmarkSealOpenPending(b *testing.B) {
	pr, _ := testPending(b)
	p := pendingAuthorization{clientID: "growth-chart", clientName: "Growth Chart", redirectURI: "https://app.example/cb",
		state: "st-0123456789abcdef", nonce: "n-0S6_WzA2Mj", challenge: strings.Repeat("c", 43),
		offered: []string{"openid", "fhirUser", "launch/patient", "patient/Observation.rs", "offline_access"},
		context: store.LaunchContext{Patient: "pat1"}, session: store.HashID("session")}
	sealed := pr.begin(&p)
	for b.Loop() {
		if _, ok := pr.peek(pr.seal(p)); !ok {
			b.Fatal("does not open")
		}
	}
	b.ReportMetric(float64(len(sealed)), "chars")
}
