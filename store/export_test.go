package store

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestExportKinds checks that Export walks every kind it names, skips the
// store's bookkeeping and expired records, and refuses a key of a kind it
// does not know rather than leave it behind.
func TestExportKinds(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	d, err := Open(t.TempDir(), Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	if err := d.UpdateKeys(ctx, func(k []*KeyRecord) ([]*KeyRecord, error) { return k, nil }); err != nil {
		t.Fatal(err) // writes the meta/ marker
	}
	for _, k := range Kinds {
		if err := d.put(k, "live", map[string]string{"k": k}, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := d.put(k, "expired", struct{}{}, now.Add(time.Nanosecond)); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(time.Second)
	var got []string
	err = d.Export(ctx, func(r RawRecord) error {
		got = append(got, r.Kind+"/"+r.Key+" "+string(r.Value))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, k := range Kinds {
		want = append(want, k+`/live {"k":"`+k+`"}`)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("exported\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	if err := d.put("mystery", "x", struct{}{}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	err = d.Export(ctx, func(RawRecord) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "unknown kind") {
		t.Fatalf("a record of an unknown kind: %v", err)
	}
}

// TestRecorded reads the recording time from a revocation log key.
func TestRecorded(t *testing.T) {
	at := time.Unix(0, 1893553447000000006)
	r := RawRecord{Kind: KindRevocationLog, Key: "01893553447000000006/family:f1"}
	if got, err := r.Recorded(); err != nil || !got.Equal(at) {
		t.Fatalf("Recorded() = %v, %v; want %v", got, err, at)
	}
	for _, bad := range []RawRecord{{Kind: KindRevocation, Key: r.Key}, {Kind: KindRevocationLog, Key: "family:f1"}} {
		if _, err := bad.Recorded(); err == nil {
			t.Fatalf("Recorded(%+v) succeeded", bad)
		}
	}
}
