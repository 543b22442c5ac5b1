package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Record kinds, as Export names them (and the Badger key prefixes). Another
// store's importer maps each kind to its own table; both sides use these
// names. The Key of a RawRecord of each kind is noted.
const (
	// KindClient is a dynamically registered Client; Key is its id.
	KindClient = "client"
	// KindCode is an AuthCode; Key is HashID of the code.
	KindCode = "code"
	// KindLaunch is a Launch; Key is HashID of the launch id.
	KindLaunch = "launch"
	// KindSession is a Session; Key is HashID of the session id.
	KindSession = "session"
	// KindRefresh is a RefreshToken; Key is HashID of the token.
	KindRefresh = "refresh"
	// KindJTI is a used JWT id; Key is HashID of issuer, NUL, jti. Its
	// value is an empty JSON object.
	KindJTI = "jti"
	// KindConsent is a Consent; Key is HashID of user, NUL, client id.
	KindConsent = "consent"
	// KindRevocation is the live Revocation of an identifier; Key is
	// kind:id.
	KindRevocation = "revoked"
	// KindRevocationLog is an entry of the revocation log (a Revocation)
	// that RevokedSince reads; Key is the time it was recorded (Unix
	// nanoseconds, 20 digits), "/", kind:id. See RawRecord.Recorded.
	KindRevocationLog = "revlog"
	// KindKey is a signing KeyRecord; Key is its kid.
	KindKey = "key"
	// KindSiteSecret is the site secret (a SiteSecret, sitesecret.go);
	// Key is "secret". There is one.
	KindSiteSecret = "site"
)

// Kinds lists every record kind, in the order Export walks them (Badger
// key order).
var Kinds = []string{KindClient, KindCode, KindConsent, KindJTI, KindKey, KindLaunch,
	KindRefresh, KindRevocationLog, KindRevocation, KindSession, KindSiteSecret}

// metaPrefix holds the store's bookkeeping (the keys-version marker), not
// records: Export skips it.
const metaPrefix = "meta/"

// RawRecord is one stored record as it is kept, for copying a store into
// another (caddy smart-auth migrate): secrets exist only as hashes, so a
// copy works on the hashed keys and the encoded values.
type RawRecord struct {
	// Kind is one of the Kind constants.
	Kind string
	// Key is the record's key within its kind (see the Kind constants):
	// for records named by a secret, HashID of it.
	Key string
	// Expires is when the record stops being valid; zero for never.
	Expires time.Time
	// Value is the record's JSON (Client, AuthCode, …), as the store
	// wrote it.
	Value []byte
}

// Recorded returns when a KindRevocationLog record was recorded, from its
// Key.
func (r RawRecord) Recorded() (time.Time, error) {
	digits, _, ok := strings.Cut(r.Key, "/")
	n, err := strconv.ParseInt(digits, 10, 64)
	if r.Kind != KindRevocationLog || !ok || err != nil {
		return time.Time{}, fmt.Errorf("not a revocation log key: %q", r.Key)
	}
	return time.Unix(0, n), nil
}

// Export calls fn with every live record of the database, kind by kind in
// key order, from one consistent snapshot. Records expired by the store's
// clock are left out. A key of a kind Export does not know is an error, so
// that nothing is silently left behind. fn may keep the record; an error
// from fn stops the walk and is returned.
func (d *DB) Export(ctx context.Context, fn func(RawRecord) error) error {
	known := make(map[string]bool, len(Kinds))
	for _, k := range Kinds {
		known[k] = true
	}
	return d.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		now := d.now()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			k := item.Key()
			if bytes.HasPrefix(k, []byte(metaPrefix)) {
				continue
			}
			kind, id, ok := bytes.Cut(k, []byte("/"))
			if !ok || !known[string(kind)] {
				return fmt.Errorf("store: record of unknown kind under key %q", k)
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if len(v) < 8 {
				return fmt.Errorf("store: corrupt record under key %q", k)
			}
			var exp time.Time
			if n := binary.BigEndian.Uint64(v[:8]); n != 0 {
				exp = time.Unix(0, int64(n))
				if !now.Before(exp) {
					continue
				}
			}
			rec := RawRecord{Kind: string(kind), Key: string(id), Expires: exp, Value: v[8:]}
			if err := fn(rec); err != nil {
				return err
			}
		}
		return nil
	})
}
