package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/handlers"
	"github.com/smartcaddy/smartauth/store"
)

// testGrace is the refresh grace period of these tests.
const testGrace = time.Minute

// withRefreshGrace serves from a new Server with the refresh grace period
// set.
func (e *tokenEnv) withRefreshGrace(d time.Duration) {
	e.t.Helper()
	e.cfg.Lifetimes.RefreshGrace = d
	s, err := handlers.New(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	_ = e.handler.s.Swap(s).Close() // the harness closes the last one
}

// graceFamily is one refresh-token family started from a code.
type graceFamily struct {
	e      *tokenEnv
	code   seededCode
	rt0    string // the first refresh token
	access string // the first access token
}

// newGraceFamily redeems a code of the public client with a launch
// context.
func (e *tokenEnv) newGraceFamily() *graceFamily {
	e.t.Helper()
	c := e.seedCode(codeOptions{context: store.LaunchContext{Patient: "pat-1", Encounter: "enc-1"}})
	r := e.exchange(c)
	return &graceFamily{e: e, code: c, rt0: r.str("refresh_token"), access: r.str("access_token")}
}

// refreshOK refreshes as the public client and expects success.
func (f *graceFamily) refreshOK(token string) tokenReply {
	f.e.t.Helper()
	r := f.e.refresh(token, url.Values{"client_id": {tkPublic}}, nil)
	if r.status != http.StatusOK || r.str("refresh_token") == "" {
		f.e.t.Fatalf("refresh: %d %v", r.status, r.body)
	}
	return r
}

// expectRevoked checks that the family is revoked: its refresh tokens are
// refused and its access tokens no longer work.
func (f *graceFamily) expectRevoked(refreshTokens []string, accessTokens []string) {
	f.e.t.Helper()
	revoked, err := f.e.db.IsRevoked(context.Background(), store.RevokedFamily, f.code.rec.FamilyID)
	if err != nil || !revoked {
		f.e.t.Fatalf("family revoked = %v, %v", revoked, err)
	}
	for _, rt := range refreshTokens {
		expectTokenError(f.e.t, f.e.refresh(rt, url.Values{"client_id": {tkPublic}}, nil), 400, "invalid_grant")
	}
	for _, at := range accessTokens {
		if got := f.e.userinfo(http.MethodGet, at); got.status != http.StatusUnauthorized {
			f.e.t.Errorf("an access token of the revoked family: userinfo %d", got.status)
		}
	}
}

func TestRefreshStrictByDefault(t *testing.T) {
	e := newTokenEnv(t)
	f := e.newGraceFamily()
	r1 := f.refreshOK(f.rt0)
	// The answer was lost; the app retries at once: reuse.
	expectTokenError(t, e.refresh(f.rt0, url.Values{"client_id": {tkPublic}}, nil), 400, "invalid_grant")
	f.expectRevoked([]string{r1.str("refresh_token")}, []string{f.access, r1.str("access_token")})
}

func TestRefreshGraceRetryGetsAFreshSuccessor(t *testing.T) {
	e := newTokenEnv(t)
	e.withRefreshGrace(testGrace)
	f := e.newGraceFamily()
	lost := f.refreshOK(f.rt0)
	e.clock.Advance(testGrace / 2)
	retry := f.refreshOK(f.rt0)
	rt2 := retry.str("refresh_token")
	if rt2 == lost.str("refresh_token") || rt2 == f.rt0 {
		t.Fatal("the retry did not get a new refresh token")
	}
	// The same grant as the original.
	if retry.str("scope") != f.code.rec.Scope || retry.str("patient") != "pat-1" || retry.str("encounter") != "enc-1" {
		t.Errorf("the retry's grant differs: %v", retry.body)
	}
	at := e.verifyAccessToken(retry.str("access_token"))
	if claimString(t, at, "family_id") != f.code.rec.FamilyID {
		t.Error("the retry's access token left the family")
	}
	// The new successor works and rotates on.
	rt3 := f.refreshOK(rt2).str("refresh_token")
	// The successor the app never saw is refused, and presenting it is
	// reuse: the whole family goes.
	expectTokenError(t, e.refresh(lost.str("refresh_token"), url.Values{"client_id": {tkPublic}}, nil), 400, "invalid_grant")
	f.expectRevoked([]string{rt3}, []string{f.access, retry.str("access_token")})
}

func TestRefreshGraceSupersededSuccessorIsRefused(t *testing.T) {
	e := newTokenEnv(t)
	e.withRefreshGrace(testGrace)
	f := e.newGraceFamily()
	lost := f.refreshOK(f.rt0)
	retry := f.refreshOK(f.rt0)
	expectTokenError(t, e.refresh(lost.str("refresh_token"), url.Values{"client_id": {tkPublic}}, nil), 400, "invalid_grant")
	f.expectRevoked([]string{retry.str("refresh_token")}, []string{retry.str("access_token")})
}

func TestRefreshGraceEndsWithThePeriod(t *testing.T) {
	e := newTokenEnv(t)
	e.withRefreshGrace(testGrace)
	f := e.newGraceFamily()
	r1 := f.refreshOK(f.rt0)
	e.clock.Advance(testGrace)
	expectTokenError(t, e.refresh(f.rt0, url.Values{"client_id": {tkPublic}}, nil), 400, "invalid_grant")
	f.expectRevoked([]string{r1.str("refresh_token")}, []string{f.access, r1.str("access_token")})
}

func TestRefreshGraceRetriesDoNotExtendThePeriod(t *testing.T) {
	e := newTokenEnv(t)
	e.withRefreshGrace(testGrace)
	f := e.newGraceFamily()
	f.refreshOK(f.rt0)
	e.clock.Advance(testGrace * 3 / 4)
	r2 := f.refreshOK(f.rt0)
	e.clock.Advance(testGrace / 2)
	expectTokenError(t, e.refresh(f.rt0, url.Values{"client_id": {tkPublic}}, nil), 400, "invalid_grant")
	f.expectRevoked([]string{r2.str("refresh_token")}, nil)
}

func TestRefreshGraceAfterTheSuccessorWasUsed(t *testing.T) {
	e := newTokenEnv(t)
	e.withRefreshGrace(testGrace)
	f := e.newGraceFamily()
	r1 := f.refreshOK(f.rt0)
	r2 := f.refreshOK(r1.str("refresh_token"))
	// The chain moved on: the first token again is reuse.
	expectTokenError(t, e.refresh(f.rt0, url.Values{"client_id": {tkPublic}}, nil), 400, "invalid_grant")
	f.expectRevoked([]string{r2.str("refresh_token")}, []string{r2.str("access_token")})
}

func TestRefreshGraceOnlyForTheSameClient(t *testing.T) {
	e := newTokenEnv(t)
	e.withRefreshGrace(testGrace)
	f := e.newGraceFamily()
	r1 := f.refreshOK(f.rt0)
	// Another client presenting the rotated token is reuse, as under
	// strict rotation.
	expectTokenError(t, e.refresh(f.rt0, url.Values{"client_id": {tkDynamic}}, nil), 400, "invalid_grant")
	f.expectRevoked([]string{r1.str("refresh_token")}, []string{r1.str("access_token")})
}

func TestRefreshGraceKeepsOnlineAccessBound(t *testing.T) {
	e := newTokenEnv(t)
	e.withRefreshGrace(testGrace)
	ctx := context.Background()
	sid := store.NewSecret()
	if err := e.db.SaveSession(ctx, sid, &store.Session{User: tkUser, AuthTime: time.Now()}, time.Hour); err != nil {
		t.Fatal(err)
	}
	c := e.seedCode(codeOptions{scope: "openid fhirUser patient/*.rs online_access", sessionID: sid})
	rt0 := e.exchange(c).str("refresh_token")
	r := e.refresh(rt0, nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("online refresh: %d %v", r.status, r.body)
	}
	if err := e.db.DeleteSession(ctx, sid); err != nil {
		t.Fatal(err)
	}
	// The session ended: the grace retry is refused like any refresh.
	expectTokenError(t, e.refresh(rt0, nil, nil), 400, "invalid_grant")
	expectTokenError(t, e.refresh(r.str("refresh_token"), nil, nil), 400, "invalid_grant")
}
