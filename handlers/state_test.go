package handlers

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/handlers/register"
	"github.com/smartcaddy/smartauth/keys"
	"github.com/smartcaddy/smartauth/store"
)

// TestAcquireShared checks the pool's sharing rule: one value per kind
// and issuer while anyone holds it, a fresh one after the last release.
func TestAcquireShared(t *testing.T) {
	made := 0
	fresh := func() *int { made++; v := made; return &v }
	const a, b = "https://a.example/test-acquire", "https://b.example/test-acquire"
	a1 := acquireShared("test", a, fresh)
	a2 := acquireShared("test", a, fresh)
	b1 := acquireShared("test", b, fresh)
	other := acquireShared("test-other", a, fresh)
	if a1 != a2 || made != 3 {
		t.Fatalf("second acquire of one issuer: %p %p, %d made", a1, a2, made)
	}
	if a1 == b1 || a1 == other {
		t.Fatal("two issuers, or two kinds, share state")
	}
	releaseShared("test", a)
	if a3 := acquireShared("test", a, fresh); a3 != a1 {
		t.Fatal("state lost while still held")
	}
	releaseShared("test", a)
	releaseShared("test", a)
	if a4 := acquireShared("test", a, fresh); a4 == a1 || made != 4 {
		t.Fatal("state kept after the last release")
	}
	releaseShared("test", a)
	releaseShared("test", b)
	releaseShared("test-other", a)
}

// newStateTestServer builds a Server for issuer on its own store.
func newStateTestServer(t *testing.T, issuer string) *Server {
	t.Helper()
	db, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ring, err := keys.New(context.Background(), keys.Options{Store: db, Retain: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	iss, _ := url.Parse(issuer)
	fhir, _ := url.Parse(issuer + "/fhir")
	s, err := New(Config{Issuer: iss, FHIRBase: fhir, Store: db, Keys: ring})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestSiteStateAcrossReload plays a config reload (the new Server is made
// before the old one is closed) and checks that the throttles carry over,
// that a second site with another issuer shares none of them, and that
// they go when the last Server of the issuer is closed. (Pending requests
// are no state: authz's TestPendingAcrossServers checks that a request
// sealed by one Server continues on another over the same store, and on no
// other store.)
func TestSiteStateAcrossReload(t *testing.T) {
	const issA, issB = "https://a.example/test-reload", "https://b.example/test-reload"
	// loginMaxFailuresPerUser is any limit: the limiter takes it per call.
	const loginMaxFailuresPerUser = 5
	now := time.Now()
	old := newStateTestServer(t, issA)
	for range loginMaxFailuresPerUser {
		if _, ok := old.logins.Reserve("u\x00alice", loginMaxFailuresPerUser, now); !ok {
			t.Fatal("throttled too early")
		}
	}
	for range register.OpenRegistrationsPerIP {
		old.registrations.Reserve("192.0.2.1", register.OpenRegistrationsPerIP, now)
	}

	// The new config is provisioned first, then the old one cleaned up.
	reloaded := newStateTestServer(t, issA)
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	_ = old.Close() // a second Close releases nothing more
	if reloaded.logins != old.logins || reloaded.registrations != old.registrations {
		t.Fatal("the reloaded Server got new state")
	}
	if _, ok := reloaded.logins.Reserve("u\x00alice", loginMaxFailuresPerUser, now); ok {
		t.Fatal("the sign-in throttle was reset by the reload")
	}
	if _, ok := reloaded.registrations.Reserve("192.0.2.1", register.OpenRegistrationsPerIP, now); ok {
		t.Fatal("the registration throttle was reset by the reload")
	}

	other := newStateTestServer(t, issB)
	if other.logins == reloaded.logins || other.registrations == reloaded.registrations {
		t.Fatal("two issuers share state")
	}
	if _, ok := other.logins.Reserve("u\x00alice", loginMaxFailuresPerUser, now); !ok {
		t.Fatal("another issuer is throttled")
	}

	if err := reloaded.Close(); err != nil {
		t.Fatal(err)
	}
	restarted := newStateTestServer(t, issA)
	if restarted.logins == reloaded.logins {
		t.Fatal("state outlived the last Server of its issuer")
	}
}
