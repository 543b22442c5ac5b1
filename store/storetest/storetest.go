// Package storetest is the one contract suite every implementation of
// store.Store must pass: the embedded Badger store and the PostgreSQL store
// run the same cases, so that no behaviour differs between them except
// speed.
//
// An implementation's tests call Run with an Opener that opens a fresh,
// empty store on the clock the suite passes. The suite never sleeps to
// test expiry: it moves that clock. Times the suite uses are whole
// seconds, so that a store keeping microseconds (PostgreSQL) and one
// keeping nanoseconds (Badger) answer alike.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/store"
)

// Opener opens a fresh, empty store whose every expiry decision uses now,
// and registers its cleanup (Close) with t.
type Opener func(t *testing.T, now func() time.Time) store.Store

// Run runs the contract suite against the stores open makes, one fresh
// store per case.
func Run(t *testing.T, open Opener) {
	groups := []struct {
		name  string
		cases []testCase
	}{
		{"Expiry", expiryCases},
		{"ConsumeOnce", consumeCases},
		{"Refresh", refreshCases},
		{"Revocations", revocationCases},
		{"Clients", clientCases},
		{"Consents", consentCases},
		{"Keys", keyCases},
		{"Sessions", sessionCases},
		{"CodesAndLaunches", codeCases},
		{"SiteSecret", siteSecretCases},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, c := range g.cases {
				t.Run(c.name, func(t *testing.T) {
					clk := NewClock(start)
					c.run(t, &env{t: t, s: open(t, clk.Now), c: clk})
				})
			}
		})
	}
}

// testCase is one contract case.
type testCase struct {
	name string
	run  func(t *testing.T, e *env)
}

// start is where every case's clock begins: a whole second near the real
// time (Badger also hands its records a real-time TTL, so the clock must
// not be far from the wall clock).
var start = time.Now().UTC().Truncate(time.Second)

// Clock is a settable clock, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock reading t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now reads the clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock by d (backwards when d is negative).
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is what a case works with: the store under test and its clock.
type env struct {
	t *testing.T
	s store.Store
	c *Clock
}

// ctx is the context of every call: the contract has no deadlines.
var ctx = context.Background()

// must fails the case on an error.
func (e *env) must(err error, what string) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("%s: %v", what, err)
	}
}

// wantErr fails the case unless err Is want.
func (e *env) wantErr(err, want error, what string) {
	e.t.Helper()
	if !errors.Is(err, want) {
		e.t.Errorf("%s: got %v, want %v", what, err, want)
	}
}

// contenders is how many callers race in each consume-once case.
const contenders = 50

// contend runs fn(i) for i in [0, contenders) all at once and returns
// their errors in order.
func contend(fn func(i int) error) []error {
	errs := make([]error, contenders)
	startCh := make(chan struct{})
	var wg sync.WaitGroup
	for i := range contenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startCh
			errs[i] = fn(i)
		}()
	}
	close(startCh)
	wg.Wait()
	return errs
}

// tally counts errors: nil, ErrReplayed, ErrNotFound and, when other is
// not nil, other. Anything else (ErrContended included: a store must
// finish a race of fifty) fails the case.
func tally(t *testing.T, what string, errs []error, other error) (ok, replayed, notFound, others int) {
	t.Helper()
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, store.ErrReplayed):
			replayed++
		case errors.Is(err, store.ErrNotFound):
			notFound++
		case other != nil && errors.Is(err, other):
			others++
		default:
			t.Errorf("%s: unexpected error %v", what, err)
		}
	}
	return ok, replayed, notFound, others
}

// same fails the case unless got and want are the same record: equal once
// both are written as JSON and read back, with every time in UTC (a store
// may hand back times in another location, and raw JSON re-encoded).
func same(t *testing.T, what string, got, want any) {
	t.Helper()
	g, w := canonical(t, got), canonical(t, want)
	if !reflect.DeepEqual(g, w) {
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		t.Errorf("%s differs:\n got %s\nwant %s", what, gj, wj)
	}
}

// canonical is v as generic JSON, with RFC 3339 strings moved to UTC.
func canonical(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	return utcTimes(out)
}

// utcTimes rewrites every RFC 3339 string in a generic JSON value in UTC.
func utcTimes(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = utcTimes(e)
		}
	case []any:
		for i, e := range x {
			x[i] = utcTimes(e)
		}
	case string:
		if ts, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return ts.UTC().Format(time.RFC3339Nano)
		}
	}
	return v
}
