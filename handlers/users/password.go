package users

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
	"golang.org/x/crypto/bcrypt"

	"github.com/smartcaddy/smartauth/store"
)

// This file checks the passwords of configured users against the hashes
// `caddy hash-password` prints: bcrypt ($2a$…, the default) and argon2id
// ($argon2id$…, --algorithm argon2id). The comparisons are Caddy's own
// (caddyauth.BcryptHash, caddyauth.Argon2idHash), so a hash Caddy's
// basic_auth accepts is accepted here alike.

// Bounds on the argon2id parameters a configured hash may carry: a hash
// is configuration, but a typo in m= must not make every sign-in
// allocate gigabytes, nor a short key or salt make the hash weak.
const (
	argon2MaxMemoryKiB = 1 << 20 // 1 GiB
	argon2MaxTime      = 64
	argon2MinKeyLen    = 16
)

// argon2Prefix starts an argon2id hash in PHC form.
const argon2Prefix = "$argon2id$"

// comparer picks Caddy's comparer for a hash by its prefix.
func comparer(hash string) caddyauth.Comparer {
	if strings.HasPrefix(hash, argon2Prefix) {
		return caddyauth.Argon2idHash{}
	}
	return caddyauth.BcryptHash{}
}

// CheckPasswordHash validates a configured password hash: a bcrypt hash,
// or an argon2id hash in PHC form with sane parameters, as `caddy
// hash-password` prints them. Errors never repeat the hash.
func CheckPasswordHash(hash string) error {
	if strings.HasPrefix(hash, argon2Prefix) {
		_, key, err := caddyauth.DecodeHash([]byte(hash))
		if err != nil {
			return fmt.Errorf("not a valid argon2id hash: %v", err)
		}
		if len(key) < argon2MinKeyLen {
			return fmt.Errorf("argon2id: the key is %d bytes, at least %d are needed", len(key), argon2MinKeyLen)
		}
		m, t, p, err := argon2Params(hash)
		if err != nil {
			return err
		}
		if m > argon2MaxMemoryKiB || t > argon2MaxTime || t == 0 || p == 0 {
			return fmt.Errorf("argon2id: parameters m=%d,t=%d,p=%d out of bounds (m ≤ %d KiB, 1 ≤ t ≤ %d)", m, t, p, argon2MaxMemoryKiB, argon2MaxTime)
		}
		return nil
	}
	if _, err := bcrypt.Cost([]byte(hash)); err != nil {
		return fmt.Errorf("not a bcrypt or argon2id hash (make one with 'caddy hash-password'): %v", err)
	}
	return nil
}

// ComparePassword tells whether password is the one hash was made from,
// with Caddy's comparers (constant time in the password).
func ComparePassword(hash, password string) bool {
	ok, err := comparer(hash).Compare([]byte(hash), []byte(password))
	return err == nil && ok
}

// decoys caches DecoyHash's results by the reference hash.
var decoys = struct {
	sync.Mutex
	by map[string][]byte
}{by: map[string][]byte{}}

// DecoyHash is a hash of a random password made with the parameters of
// the costliest of the configured hashes (bcrypt: the highest cost;
// argon2id: the largest time × memory; bcrypt is preferred when both are
// configured, Caddy's default). A sign-in with an unknown user name is
// compared against it, so that its time does not tell whether the name
// exists. Made once per reference hash.
func DecoyHash(hashes []string) []byte {
	ref := costliest(hashes)
	decoys.Lock()
	defer decoys.Unlock()
	if h, ok := decoys.by[ref]; ok {
		return h
	}
	h, err := decoyLike(ref)
	if err != nil {
		h = caddyauth.BcryptHash{}.FakeHash()
	}
	decoys.by[ref] = h
	return h
}

// decoyLike hashes a random password with the parameters of ref ("" for
// bcrypt's default cost).
func decoyLike(ref string) ([]byte, error) {
	random := []byte(store.NewSecret()[:32])
	if strings.HasPrefix(ref, argon2Prefix) {
		params, _, err := caddyauth.DecodeHash([]byte(ref))
		if err != nil {
			return nil, err
		}
		// Hash keeps the decoded parameters (and salt): the decoy costs
		// exactly what ref costs.
		return params.Hash(random)
	}
	cost := bcrypt.DefaultCost
	if c, err := bcrypt.Cost([]byte(ref)); err == nil {
		cost = c
	}
	return bcrypt.GenerateFromPassword(random, cost)
}

// costliest picks the reference hash DecoyHash imitates; "" when no hash
// is usable.
func costliest(hashes []string) string {
	var bestB, bestA string
	var costB int
	var costA uint64
	for _, h := range hashes {
		if CheckPasswordHash(h) != nil {
			continue
		}
		if strings.HasPrefix(h, argon2Prefix) {
			if m, t, _, _ := argon2Params(h); m*t > costA {
				bestA, costA = h, m*t
			}
			continue
		}
		if c, _ := bcrypt.Cost([]byte(h)); c > costB {
			bestB, costB = h, c
		}
	}
	if bestB != "" {
		return bestB
	}
	return bestA
}

// argon2Params reads m, t and p of an argon2id hash that
// caddyauth.DecodeHash accepted (its type keeps them private).
func argon2Params(hash string) (m, t, p uint64, err error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 {
		return 0, 0, 0, errors.New("argon2id: not in PHC form")
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return 0, 0, 0, fmt.Errorf("argon2id: unreadable parameters: %v", err)
	}
	return m, t, p, nil
}
