package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/smartcaddy/smartauth/store"
)

// MaintainInterval is how often Maintain calls Refresh.
const MaintainInterval = time.Minute

// Refresh reloads the key records from the store and brings them up to
// date: it retires keys whose successor has started signing, starts a
// successor for a generated key that is due for rotation, replaces a
// current key this ring cannot sign with, and deletes keys past their
// PublishUntil. It writes to the store only when something changed.
func (r *Ring) Refresh(ctx context.Context) error {
	return r.sync(ctx, "")
}

// Rotate starts a successor for alg's generated key now; the successor
// starts signing after PublishAhead. When a successor is already pending,
// Rotate leaves it so (two instances on one store rotate once). An
// algorithm whose key comes from a file cannot be rotated this way:
// replace the file instead.
func (r *Ring) Rotate(ctx context.Context, alg string) error {
	if _, ok := jwaAlg(alg); !ok {
		return fmt.Errorf("keys: Rotate: unsupported algorithm %q", alg)
	}
	if fk := r.files[alg]; fk != nil {
		return fmt.Errorf("keys: Rotate: the %s key comes from %s; replace the file to rotate it", alg, fk.path)
	}
	return r.sync(ctx, alg)
}

// Maintain calls Refresh every MaintainInterval until ctx is done, logging
// failures. It blocks; run it in its own goroutine.
func (r *Ring) Maintain(ctx context.Context) {
	t := time.NewTicker(MaintainInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.Refresh(ctx); err != nil && ctx.Err() == nil {
				r.log.Error("refreshing signing keys", zap.Error(err))
			}
		}
	}
}

// errNeedKeys makes UpdateKeys give up when the records changed so that
// a key must be generated; the caller generates it outside the
// transaction and tries again.
var errNeedKeys = errors.New("keys: a new key must be generated")

// maxSyncAttempts bounds the generate-then-update rounds of one sync.
const maxSyncAttempts = 4

// sync brings the store's records up to date (see Refresh) and installs
// them. force names an algorithm to rotate now, or is empty.
func (r *Ring) sync(ctx context.Context, force string) error {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	now := r.now()
	recs, err := r.store.Keys(ctx)
	if err != nil {
		return fmt.Errorf("keys: loading key records: %w", err)
	}
	fresh := make(map[string]*genKey)
	p := r.reconcile(recs, now, fresh, force)
	if !p.changed && len(p.need) == 0 {
		r.install(p.recs)
		return nil
	}
	for attempt := 1; ; attempt++ {
		for _, alg := range p.need {
			// Generating an RSA key takes a while: never inside
			// the store transaction.
			if fresh[alg] == nil {
				g, err := generate(alg)
				if err != nil {
					return err
				}
				fresh[alg] = g
			}
		}
		var final plan
		unlock := lockStore(r.store)
		err := r.store.UpdateKeys(ctx, func(cur []*store.KeyRecord) ([]*store.KeyRecord, error) {
			final = r.reconcile(cur, now, fresh, force)
			if len(final.need) > 0 {
				return nil, errNeedKeys
			}
			return final.recs, nil
		})
		unlock()
		switch {
		case errors.Is(err, errNeedKeys) && attempt < maxSyncAttempts:
			p = final
			continue
		case err != nil:
			return fmt.Errorf("keys: updating key records: %w", err)
		}
		for _, ev := range final.events {
			r.log.Info(ev.what, zap.String("kid", ev.kid), zap.String("alg", ev.alg), zap.Time("at", ev.at))
		}
		for alg, g := range fresh {
			if !final.used[alg] {
				r.log.Debug("discarded a generated key: the store already had one", zap.String("kid", g.kid), zap.String("alg", alg))
			}
		}
		r.install(final.recs)
		return nil
	}
}

// install replaces the snapshot when recs differ from what it was built
// from.
func (r *Ring) install(recs []*store.KeyRecord) {
	old := r.view.Load()
	var oldSet *keyset
	if old != nil {
		oldSet = old.set
		if oldSet.fingerprint == fingerprint(recs) {
			return
		}
	}
	set := r.buildKeyset(recs, oldSet)
	r.view.Store(set.viewAt(r.now()))
}

// plan is the outcome of reconcile.
type plan struct {
	recs    []*store.KeyRecord
	changed bool
	// need lists the algorithms that need a generated key reconcile was
	// not given.
	need   []string
	used   map[string]bool
	events []event
}

// event is a key lifecycle change, logged after it is committed.
type event struct {
	what, kid, alg string
	at             time.Time
}

// reconcile computes the records as they should be at now. It is a pure
// function of its arguments (fresh is only read), as UpdateKeys may run it
// more than once; it does not modify in.
func (r *Ring) reconcile(in []*store.KeyRecord, now time.Time, fresh map[string]*genKey, force string) plan {
	p := plan{used: make(map[string]bool)}
	for _, k := range in {
		c := *k
		p.recs = append(p.recs, &c)
	}
	note := func(what string, k *store.KeyRecord, at time.Time) {
		p.changed = true
		p.events = append(p.events, event{what, k.KID, k.Alg, at})
	}
	retire := func(k *store.KeyRecord, at time.Time, why string) {
		k.RetiredAt, k.PublishUntil = at, at.Add(r.retain)
		note(why, k, at)
	}
	for _, alg := range algs {
		fk := r.files[alg]
		if fk == nil {
			continue
		}
		// The file key is the only active key for its algorithm.
		rec := find(p.recs, func(k *store.KeyRecord) bool { return k.KID == fk.kid })
		switch {
		case rec == nil:
			rec = &store.KeyRecord{KID: fk.kid, Alg: alg, PublicJWK: fk.pubJSON, External: true, CreatedAt: now, ActiveFrom: now}
			p.recs = append(p.recs, rec)
			note("recorded the key file's public key; it signs now", rec, now)
		case !rec.RetiredAt.IsZero() || !rec.PublishUntil.IsZero() || rec.ActiveFrom.After(now) || !rec.External || len(rec.PrivateKey) > 0:
			rec.ActiveFrom, rec.RetiredAt, rec.PublishUntil = now, time.Time{}, time.Time{}
			rec.External, rec.PrivateKey = true, nil
			note("reactivated the key file's key", rec, now)
		}
		for _, k := range p.recs {
			if k.Alg == alg && k != rec && k.RetiredAt.IsZero() {
				retire(k, now, "retired a key: the key file replaces it")
			}
		}
	}
	for _, alg := range algs {
		if r.files[alg] != nil {
			continue
		}
		var created bool
		cur := currentGenerated(p.recs, alg, now)
		if cur == nil {
			g := fresh[alg]
			if g == nil {
				p.need = append(p.need, alg)
				continue
			}
			cur = g.record(now, now)
			p.recs = append(p.recs, cur)
			p.used[alg] = true
			created = true
			note("generated a signing key; it signs now", cur, now)
		}
		due := force == alg || (r.rotation > 0 && !cur.ActiveFrom.Add(r.rotation).After(now))
		pending := find(p.recs, func(k *store.KeyRecord) bool {
			return k.Alg == alg && k.ActiveFrom.After(now) && k.RetiredAt.IsZero()
		})
		if !due || created || pending != nil {
			continue
		}
		g := fresh[alg]
		if g == nil || p.used[alg] {
			p.need = append(p.need, alg)
			continue
		}
		next := g.record(now, now.Add(r.ahead))
		p.recs = append(p.recs, next)
		p.used[alg] = true
		note("generated a successor key; it is published now and signs from 'at'", next, next.ActiveFrom)
	}
	// A key retires when a successor starts signing.
	for _, k := range p.recs {
		if !k.RetiredAt.IsZero() {
			continue
		}
		if fk := r.files[k.Alg]; fk != nil && fk.kid == k.KID {
			continue // this ring's key file stays current
		}
		var at time.Time
		for _, s := range p.recs {
			if s.Alg != k.Alg || s == k || !s.ActiveFrom.After(k.ActiveFrom) || s.ActiveFrom.After(now) {
				continue
			}
			if !s.RetiredAt.IsZero() && !s.RetiredAt.After(s.ActiveFrom) {
				continue // never signed
			}
			if at.IsZero() || s.ActiveFrom.Before(at) {
				at = s.ActiveFrom
			}
		}
		if !at.IsZero() {
			retire(k, at, "retired a key: its successor signs")
		}
	}
	p.recs = slices.DeleteFunc(p.recs, func(k *store.KeyRecord) bool {
		if k.PublishUntil.IsZero() || k.PublishUntil.After(now) {
			return false
		}
		note("deleted a retired key: its tokens have expired", k, k.PublishUntil)
		return true
	})
	slices.SortFunc(p.recs, func(a, b *store.KeyRecord) int { return strings.Compare(a.KID, b.KID) })
	return p
}

// currentGenerated returns the generated key that signs alg at now: the
// latest ActiveFrom not after now among unretired keys with a private
// half, ties going to the smallest kid.
func currentGenerated(recs []*store.KeyRecord, alg string, now time.Time) *store.KeyRecord {
	var cur *store.KeyRecord
	for _, k := range recs {
		if k.Alg != alg || k.External || len(k.PrivateKey) == 0 || !k.RetiredAt.IsZero() || k.ActiveFrom.After(now) {
			continue
		}
		if cur == nil || k.ActiveFrom.After(cur.ActiveFrom) || k.ActiveFrom.Equal(cur.ActiveFrom) && k.KID < cur.KID {
			cur = k
		}
	}
	return cur
}

func find(recs []*store.KeyRecord, f func(*store.KeyRecord) bool) *store.KeyRecord {
	for _, k := range recs {
		if f(k) {
			return k
		}
	}
	return nil
}

// genKey is a freshly generated key that is not yet in the store.
type genKey struct {
	kid     string
	alg     string
	der     []byte // PKCS #8
	pubJSON []byte
}

// record returns a new store record for g.
func (g *genKey) record(now, activeFrom time.Time) *store.KeyRecord {
	return &store.KeyRecord{
		KID:        g.kid,
		Alg:        g.alg,
		PrivateKey: g.der,
		PublicJWK:  g.pubJSON,
		CreatedAt:  now,
		ActiveFrom: activeFrom,
	}
}

// generate makes a new key for alg: RSA 2048 for RS256, ECDSA P-256 for
// ES256.
func generate(alg string) (*genKey, error) {
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case RS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, fmt.Errorf("keys: cannot generate a key for %q", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: generating a %s key: %w", alg, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("keys: encoding a generated %s key: %w", alg, err)
	}
	_, kid, pubJSON, err := publicJWK(priv.Public(), alg)
	if err != nil {
		return nil, fmt.Errorf("keys: generated %s key: %w", alg, err)
	}
	return &genKey{kid: kid, alg: alg, der: der, pubJSON: pubJSON}, nil
}

// storeLocks serializes UpdateKeys calls of all rings of this process on
// the same store. Badger detects a conflict only on keys a transaction
// read, so two transactions that both find no key records and both insert
// one would both commit; holding this lock around UpdateKeys prevents it.
// (Badger lets one process at a time open a directory, so a process-wide
// lock covers every writer of a Badger store.)
var storeLocks = struct {
	sync.Mutex
	m map[any]*storeLock
}{m: make(map[any]*storeLock)}

type storeLock struct {
	sync.Mutex
	users int
}

// lockStore locks s and returns the unlock function.
func lockStore(s Storage) func() {
	if !reflect.TypeOf(s).Comparable() {
		return func() {}
	}
	storeLocks.Lock()
	l := storeLocks.m[s]
	if l == nil {
		l = new(storeLock)
		storeLocks.m[s] = l
	}
	l.users++
	storeLocks.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		storeLocks.Lock()
		if l.users--; l.users == 0 {
			delete(storeLocks.m, s)
		}
		storeLocks.Unlock()
	}
}
