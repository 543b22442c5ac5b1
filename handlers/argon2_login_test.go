package handlers_test

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"

	"github.com/smartcaddy/smartauth/handlers"
)

// A user whose password_hash is an argon2id hash from `caddy
// hash-password --algorithm argon2id` signs in with the right password and
// not with a wrong one, through the sign-in page.
func TestLoginWithArgon2idHash(t *testing.T) {
	params, _, err := caddyauth.DecodeHash(caddyauth.Argon2idHash{}.FakeHash()) // Caddy's default parameters
	if err != nil {
		t.Fatal(err)
	}
	hash, err := params.Hash([]byte("argon-pw"))
	if err != nil {
		t.Fatal(err)
	}
	env := newFlowEnv(t, flowOptions{config: func(c *handlers.Config) {
		c.Users["alice"].PasswordHash = string(hash)
	}})
	b := env.browser()
	if p := b.login(b.get(env.issuer+"/login"), "alice", "wrong-password"); !strings.Contains(p.body, "The user name or password is incorrect.") {
		t.Fatalf("a wrong password: %d %s", p.status, p.location)
	}
	p := b.login(b.get(env.issuer+"/login"), "alice", "argon-pw")
	if cookieNamed(p, "smart_auth_session") == nil || strings.Contains(p.body, "The user name or password is incorrect.") {
		t.Fatalf("the right password: %d %s %s", p.status, p.location, p.body)
	}
}
