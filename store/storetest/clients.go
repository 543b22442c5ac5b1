package storetest

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/store"
)

// secretHash is one salted hash of a client secret, the same for every
// client the cases make.
var secretHash = store.HashSecret("secret")

// fullClient is a client with every field set.
func fullClient(id string) *store.Client {
	return &store.Client{
		ID: id, Name: "App " + id, Type: store.ClientConfidentialAsymmetric,
		SecretHash:   secretHash,
		RedirectURIs: []string{"https://app.example/cb", "https://app.example/cb2"},
		LaunchURI:    "https://app.example/launch",
		JWKS:         json.RawMessage(`{"keys":[{"kty":"EC","crv":"P-384","x":"abc","y":"def","kid":"k1"}]}`),
		JWKSURI:      "https://app.example/jwks",
		Scopes:       []string{"system/*.rs", "openid"},
		GrantTypes:   []string{"client_credentials"},
		// The remaining flags and hashes.
		AllowSecretForClientCredentials: true,
		RegistrationTokenHash:           store.HashID("reg-" + id),
		IssuedAt:                        start.Add(-time.Hour),
		CanCreateLaunch:                 true,
		Dynamic:                         true,
		TokenEndpointAuthMethod:         "private_key_jwt",
	}
}

// clientCases check the dynamically registered clients.
var clientCases = []testCase{
	{"PutGetDeleteList", func(t *testing.T, e *env) {
		_, err := e.s.GetClient(ctx, "b")
		e.wantErr(err, store.ErrNotFound, "GetClient before PutClient")
		if list, err := e.s.ListClients(ctx); err != nil || len(list) != 0 {
			t.Fatalf("ListClients of an empty store: %+v %v", list, err)
		}
		if err := e.s.PutClient(ctx, &store.Client{Type: store.ClientPublic}); err == nil {
			t.Error("PutClient accepted a client without an id")
		}
		for _, id := range []string{"b", "c", "a"} {
			e.must(e.s.PutClient(ctx, fullClient(id)), "PutClient")
		}
		got, err := e.s.GetClient(ctx, "b")
		e.must(err, "GetClient")
		same(t, "the stored client", got, fullClient("b"))
		// PutClient replaces.
		repl := &store.Client{ID: "b", Type: store.ClientPublic, RedirectURIs: []string{"https://other/cb"}}
		e.must(e.s.PutClient(ctx, repl), "PutClient again")
		got, err = e.s.GetClient(ctx, "b")
		e.must(err, "GetClient")
		same(t, "the replaced client", got, repl)
		list, err := e.s.ListClients(ctx)
		e.must(err, "ListClients")
		if len(list) != 3 || list[0].ID != "a" || list[1].ID != "b" || list[2].ID != "c" {
			t.Fatalf("ListClients: %+v, want a, b, c by id", list)
		}
		same(t, "a listed client", list[0], fullClient("a"))
		e.must(e.s.DeleteClient(ctx, "b"), "DeleteClient")
		_, err = e.s.GetClient(ctx, "b")
		e.wantErr(err, store.ErrNotFound, "GetClient after DeleteClient")
		e.must(e.s.DeleteClient(ctx, "b"), "DeleteClient of an absent client")
		if list, err := e.s.ListClients(ctx); err != nil || len(list) != 2 {
			t.Errorf("ListClients after a delete: %+v %v", list, err)
		}
	}},
	{"UpdateClient", func(t *testing.T, e *env) {
		err := e.s.UpdateClient(ctx, "nobody", func(c *store.Client) (*store.Client, error) { return c, nil })
		e.wantErr(err, store.ErrNotFound, "UpdateClient of an absent client")
		e.must(e.s.PutClient(ctx, fullClient("dyn")), "PutClient")
		refuse := errors.New("refused")
		err = e.s.UpdateClient(ctx, "dyn", func(*store.Client) (*store.Client, error) { return nil, refuse })
		e.wantErr(err, refuse, "fn's error")
		if err := e.s.UpdateClient(ctx, "dyn", func(c *store.Client) (*store.Client, error) { n := *c; n.ID = "x"; return &n, nil }); err == nil {
			t.Fatal("an update changed the client's id")
		}
		if _, err := e.s.GetClient(ctx, "x"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a refused id change created client x: %v", err)
		}
		var seen *store.Client
		e.must(e.s.UpdateClient(ctx, "dyn", func(c *store.Client) (*store.Client, error) {
			seen = c
			n := *c
			n.Name = "B"
			return &n, nil
		}), "UpdateClient")
		same(t, "the client fn saw", seen, fullClient("dyn"))
		want := fullClient("dyn")
		want.Name = "B"
		got, err := e.s.GetClient(ctx, "dyn")
		e.must(err, "GetClient")
		same(t, "the updated client", got, want)
		e.must(e.s.UpdateClient(ctx, "dyn", func(*store.Client) (*store.Client, error) { return nil, nil }), "UpdateClient to nil")
		_, err = e.s.GetClient(ctx, "dyn")
		e.wantErr(err, store.ErrNotFound, "GetClient after an update deleted it")
	}},
	{"RemoveClient", func(t *testing.T, e *env) {
		err := e.s.RemoveClient(ctx, "nobody", nil, e.c.Now().Add(time.Hour))
		e.wantErr(err, store.ErrNotFound, "RemoveClient of an absent client")
		e.must(e.s.PutClient(ctx, fullClient("dyn")), "PutClient")
		e.must(e.s.SaveRefresh(ctx, "rt", &store.RefreshToken{FamilyID: "f", ClientID: "dyn", Subject: "alice"}, time.Hour), "SaveRefresh")
		// A refusing check leaves everything as it was.
		var seen *store.Client
		err = e.s.RemoveClient(ctx, "dyn", func(c *store.Client) error { seen = c; return errBadToken }, e.c.Now().Add(time.Hour))
		e.wantErr(err, errBadToken, "a refusing check's error")
		same(t, "the client check saw", seen, fullClient("dyn"))
		if _, err := e.s.GetClient(ctx, "dyn"); err != nil {
			t.Fatalf("the client after a refused removal: %v", err)
		}
		if revoked, err := e.s.IsRevoked(ctx, store.RevokedClient, "dyn"); err != nil || revoked {
			t.Fatalf("a refused removal revoked the client's tokens: %t %v", revoked, err)
		}
		if _, err := e.s.GetRefresh(ctx, "rt"); err != nil {
			t.Fatalf("the client's token after a refused removal: %v", err)
		}
		e.c.Add(time.Second)
		until := e.c.Now().Add(2 * time.Hour)
		e.must(e.s.RemoveClient(ctx, "dyn", func(*store.Client) error { return nil }, until), "RemoveClient")
		_, err = e.s.GetClient(ctx, "dyn")
		e.wantErr(err, store.ErrNotFound, "GetClient after RemoveClient")
		rev, err := e.s.Revocation(ctx, store.RevokedClient, "dyn")
		if err != nil || !rev.At.Equal(e.c.Now()) || rev.Until.Before(until) {
			t.Fatalf("the removal's revocation: %+v %v", rev, err)
		}
		_, err = e.s.GetRefresh(ctx, "rt")
		e.wantErr(err, store.ErrNotFound, "the removed client's refresh token")
		err = e.s.RemoveClient(ctx, "dyn", nil, until)
		e.wantErr(err, store.ErrNotFound, "a second RemoveClient")
	}},
}
