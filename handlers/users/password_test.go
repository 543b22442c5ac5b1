package users

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
	"golang.org/x/crypto/bcrypt"
)

// hashWith makes a hash the way `caddy hash-password` does, with Caddy's
// own hasher.
func hashWith(t testing.TB, h caddyauth.Hasher, pw string) string {
	t.Helper()
	b, err := h.Hash([]byte(pw))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// caddyArgon2id is Caddy's argon2id hasher with the parameters `caddy
// hash-password --algorithm argon2id` uses by default (m=47104 KiB, t=1,
// p=1, 32-byte key), read from Caddy's own FakeHash, which that command
// made (the zero Argon2idHash has no parameters).
func caddyArgon2id(t testing.TB) caddyauth.Hasher {
	t.Helper()
	h, _, err := caddyauth.DecodeHash(caddyauth.Argon2idHash{}.FakeHash())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// lowBcrypt is a cheap bcrypt hash of "pw" made by x/crypto (what `caddy
// hash-password` does at a lower cost).
func lowBcrypt(t testing.TB, pw string) string {
	t.Helper()
	b, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Both kinds of `caddy hash-password` hashes are accepted and compared.
func TestComparePasswordBcryptAndArgon2id(t *testing.T) {
	for name, hash := range map[string]string{
		"bcrypt":   lowBcrypt(t, "correct horse"),
		"argon2id": hashWith(t, caddyArgon2id(t), "correct horse"),
	} {
		if err := CheckPasswordHash(hash); err != nil {
			t.Errorf("%s: CheckPasswordHash: %v", name, err)
		}
		if !ComparePassword(hash, "correct horse") {
			t.Errorf("%s: the right password is refused", name)
		}
		for _, wrong := range []string{"", "correct hors", "correct horse ", "Correct horse"} {
			if ComparePassword(hash, wrong) {
				t.Errorf("%s: wrong password %q accepted", name, wrong)
			}
		}
	}
}

// Hashes that are not usable are refused with a message that names the
// problem and never repeats the hash.
func TestCheckPasswordHashRefuses(t *testing.T) {
	good := hashWith(t, caddyArgon2id(t), "pw")
	parts := strings.Split(good, "$")
	withParams := func(params string) string {
		p := append([]string(nil), parts...)
		p[3] = params
		return strings.Join(p, "$")
	}
	shortKey := strings.Join(append(append([]string(nil), parts[:5]...), "AAAAAAAAAAA"), "$")
	for name, c := range map[string]struct{ hash, want string }{
		"plain text":    {"hunter2", "not a bcrypt or argon2id hash"},
		"argon2i":       {strings.Replace(good, "$argon2id$", "$argon2i$", 1), "not a bcrypt or argon2id hash"},
		"truncated":     {good[:len(good)-60], "not a valid argon2id hash"},
		"huge memory":   {withParams("m=4194304,t=1,p=1"), "out of bounds"},
		"zero time":     {withParams("m=47104,t=0,p=1"), "out of bounds"},
		"short key":     {shortKey, "at least 16"},
		"bcrypt broken": {"$2a$10$tooshort", "not a bcrypt or argon2id hash"},
	} {
		err := CheckPasswordHash(c.hash)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, c.want)
			continue
		}
		if len(c.hash) > 20 && strings.Contains(err.Error(), c.hash) {
			t.Errorf("%s: the error repeats the hash: %v", name, err)
		}
	}
}

// The decoy an unknown user name is compared against costs what the
// costliest configured hash costs: same algorithm and parameters, and it
// matches no password a user would type.
func TestDecoyHashImitatesTheCostliest(t *testing.T) {
	b4 := lowBcrypt(t, "a")
	b5, _ := bcrypt.GenerateFromPassword([]byte("b"), 5)
	a := hashWith(t, caddyArgon2id(t), "c")
	if got, _ := bcrypt.Cost(DecoyHash([]string{b4, string(b5), a})); got != 5 {
		t.Errorf("decoy of bcrypt 4, 5 and argon2id: cost %d, want 5 (bcrypt preferred, highest cost)", got)
	}
	d := string(DecoyHash([]string{a}))
	if !strings.HasPrefix(d, "$argon2id$") || strings.Split(d, "$")[3] != strings.Split(a, "$")[3] {
		t.Errorf("decoy of an argon2id hash %q has other parameters than %q", d, a)
	}
	if d == a || ComparePassword(d, "c") {
		t.Error("the decoy is the user's hash")
	}
	if got, _ := bcrypt.Cost(DecoyHash(nil)); got != bcrypt.DefaultCost {
		t.Errorf("decoy without hashes: cost %d, want bcrypt's default %d", got, bcrypt.DefaultCost)
	}
}

// BenchmarkSignInPassword measures one sign-in's password check at the
// hashes `caddy hash-password` makes by default (bcrypt cost 14, argon2id
// m=47104 KiB t=1 p=1) and at bcrypt cost 10 (x/crypto's default) — the
// numbers the README gives.
func BenchmarkSignInPassword(b *testing.B) {
	b10, err := bcrypt.GenerateFromPassword([]byte("pw"), 10)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, hash string }{
		{"bcrypt-10", string(b10)},
		{"bcrypt-14-caddy-default", hashWith(b, caddyauth.BcryptHash{}, "pw")},
		{"argon2id-caddy-default", hashWith(b, caddyArgon2id(b), "pw")},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if !ComparePassword(c.hash, "pw") {
					b.Fatal("refused")
				}
			}
		})
	}
}
