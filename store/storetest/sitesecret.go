package storetest

import (
	"bytes"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/store"
)

// siteSecretCases check the site secret: made once, the same for every
// caller, forever.
var siteSecretCases = []testCase{
	{"OneWinnerUnderContention", func(t *testing.T, e *env) {
		got := make([][]byte, contenders)
		errs := contend(func(i int) error {
			var err error
			got[i], err = e.s.SiteSecret(ctx)
			return err
		})
		for i, err := range errs {
			e.must(err, "SiteSecret")
			if len(got[i]) != store.SiteSecretSize {
				t.Fatalf("caller %d got %d bytes, want %d", i, len(got[i]), store.SiteSecretSize)
			}
			if !bytes.Equal(got[i], got[0]) {
				t.Fatalf("callers 0 and %d got different secrets: more than one creator won", i)
			}
		}
		if bytes.Equal(got[0], make([]byte, store.SiteSecretSize)) {
			t.Fatal("the site secret is all zeros")
		}
		// It never expires and never changes.
		e.c.Add(10 * 365 * 24 * time.Hour)
		again, err := e.s.SiteSecret(ctx)
		e.must(err, "SiteSecret ten years on")
		if !bytes.Equal(again, got[0]) {
			t.Fatal("the site secret changed")
		}
	}},
}
