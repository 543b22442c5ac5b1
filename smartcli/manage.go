package smartcli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/smartcaddy/smartauth/adminapi"
	"github.com/smartcaddy/smartauth/store"
)

// The commands that manage clients and tokens: through the running Caddy's
// admin API (admin.go) or, with no Caddy holding it, on the storage
// directory.

// howItRuns is the help text's paragraph on where the commands act.
const howItRuns = `
While Caddy runs, the command goes through its admin API (--address,
default Caddy's localhost:2019, as 'caddy reload' does; --issuer when it
serves several issuers), so nothing needs stopping. With --storage it acts
on that Badger directory directly when no running Caddy holds it (Caddy
stopped, or its admin API elsewhere: then give --address).
`

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printListing prints v as JSON with --json, else a table of the rows
// under the header.
func printListing(cmd *cobra.Command, v any, rows [][]string, header ...string) error {
	if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
		return printJSON(cmd.OutOrStdout(), v)
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// stamp is a time in RFC 3339 (UTC), "-" when unset.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// clientsCommand is `caddy smart-auth clients`.
func clientsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "clients [--storage <dir>] [--address <addr>] [--issuer <url>] [--json]",
		Short: "List the clients: configured and dynamically registered",
		Long: `
Lists the clients: id, source (configuration or registration), type, grant
types, issue time, name and redirect URIs (--json: all as JSON). On a
storage directory only registered clients are listed (configured ones are
not stored). Secrets are stored only as hashes and never shown.
` + howItRuns,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := listClients(cmd)
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(list))
			for _, c := range list {
				rows = append(rows, []string{c.ID, c.Source, c.Type, strings.Join(c.GrantTypes, ","),
					stamp(c.IssuedAt), printable(c.Name), strings.Join(c.RedirectURIs, " ")})
			}
			return printListing(cmd, list, rows, "CLIENT_ID", "SOURCE", "TYPE", "GRANT_TYPES", "ISSUED_AT", "NAME", "REDIRECT_URIS")
		},
	}
	storageFlag(cmd)
	cmd.Flags().Bool("json", false, "print JSON")
	return cmd
}

// listClients lists the clients through the server or the directory.
func listClients(cmd *cobra.Command) ([]adminapi.Client, error) {
	srv, err := reachServer(cmd)
	if err != nil {
		return nil, err
	}
	if srv != nil {
		var all adminapi.Clients
		if err := srv.call(http.MethodGet, "clients", nil, &all); err != nil {
			return nil, err
		}
		return append(all.Configured, all.Registered...), nil
	}
	db, err := openStorage(cmd)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	stored, err := db.ListClients(context.Background())
	if err != nil {
		return nil, fmt.Errorf("listing clients: %w", err)
	}
	out := make([]adminapi.Client, 0, len(stored))
	for _, c := range stored {
		out = append(out, adminapi.ClientOf(c, adminapi.SourceRegistration))
	}
	return out, nil
}

// removeClientCommand is `caddy smart-auth remove-client`.
func removeClientCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remove-client [--storage <dir>] [--address <addr>] [--issuer <url>] <client_id>",
		Short: "Remove a dynamically registered client and revoke its tokens",
		Long: `
Removes a dynamically registered client and revokes every access and
refresh token issued to it, in one transaction. Clients from the Caddyfile
are not stored: remove them from the configuration (and use 'revoke' for
their tokens).
` + howItRuns,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			until, err := revocationUntil(cmd)
			if err != nil {
				return err
			}
			srv, err := reachServer(cmd)
			if err != nil {
				return err
			}
			if srv != nil {
				err = srv.call(http.MethodDelete, "clients/"+url.PathEscape(id), forBody(cmd), nil)
			} else {
				err = removeStoredClient(cmd, id, until)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed client %s and revoked its tokens\n", id)
			return nil
		},
	}
	storageFlag(cmd)
	revokeFlag(cmd)
	return cmd
}

// removeStoredClient removes a registered client from the storage
// directory and revokes its tokens.
func removeStoredClient(cmd *cobra.Command, id string, until time.Time) error {
	db, err := openStorage(cmd)
	if err != nil {
		return err
	}
	defer db.Close()
	err = db.RemoveClient(context.Background(), id, nil, until)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no registered client %q in %s", id, db.Dir())
	}
	return err
}

// revokeCommand is `caddy smart-auth revoke`.
func revokeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "revoke (--client <client_id> | --user <name> | --family <family_id>) [--storage <dir>] [--address <addr>] [--issuer <url>] [--for <duration>]",
		Short: "Revoke the tokens of a client, of a user, or of one refresh-token family",
		Long: `
--client: every access and refresh token issued to the client until now is
revoked; tokens issued later are not affected (an access token's issue time
has one-second precision, so one issued in the same second counts as
revoked). Works for configured and registered clients; the client stays.
--user: every live refresh-token family of the user is revoked, with every
access token issued from it, and the user's remembered consents are
forgotten.
--family: one refresh-token family (as 'grants' lists them) and its access
tokens.
The guard, introspection, userinfo and the token endpoint refuse revoked
tokens; a running guard sees the revocation within a second.
--for is how long the revocation is kept: through a running server, by
default as long as its longest token lifetime (and no less); on a storage
directory 3650d; it must be at least refresh_token_lifetime.
` + howItRuns,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kind, id, err := revokeTarget(cmd)
			if err != nil {
				return err
			}
			until, err := revocationUntil(cmd)
			if err != nil {
				return err
			}
			srv, err := reachServer(cmd)
			if err != nil {
				return err
			}
			msg, err := revoke(cmd, srv, kind, id, until)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), msg)
			return nil
		},
	}
	storageFlag(cmd)
	revokeFlag(cmd)
	cmd.Flags().String("client", "", "the client_id whose tokens are revoked")
	cmd.Flags().String("user", "", "the user whose tokens are revoked")
	cmd.Flags().String("family", "", "the refresh-token family that is revoked")
	return cmd
}

// revokeTarget reads which of --client, --user and --family was given:
// exactly one.
func revokeTarget(cmd *cobra.Command) (kind, id string, err error) {
	for _, k := range []string{"client", "user", "family"} {
		if v, _ := cmd.Flags().GetString(k); v != "" {
			if kind != "" {
				return "", "", errors.New("give one of --client, --user and --family")
			}
			kind, id = k, v
		}
	}
	if kind == "" {
		return "", "", errors.New("--client, --user or --family is required")
	}
	return kind, id, nil
}

// revoke revokes through the server (srv) or on the storage directory
// and says what it did.
func revoke(cmd *cobra.Command, srv *server, kind, id string, until time.Time) (string, error) {
	path := map[string]string{"client": "clients/", "user": "users/", "family": "families/"}[kind] + url.PathEscape(id) + "/revoke"
	if srv != nil && kind == "user" {
		var out adminapi.RevokedUser
		if err := srv.call(http.MethodPost, path, forBody(cmd), &out); err != nil {
			return "", err
		}
		return fmt.Sprintf("revoked %d refresh-token families of %s and their access tokens", len(out.Families), id), nil
	}
	if srv != nil {
		if err := srv.call(http.MethodPost, path, forBody(cmd), nil); err != nil {
			return "", err
		}
	} else {
		db, err := openStorage(cmd)
		if err != nil {
			return "", err
		}
		defer db.Close()
		ctx := context.Background()
		switch kind {
		case "client":
			err = db.Revoke(ctx, store.RevokedClient, id, until)
		case "family":
			err = db.Revoke(ctx, store.RevokedFamily, id, until)
		case "user":
			var grants []store.UserGrant
			if grants, err = db.UserGrants(ctx, id); err == nil {
				var fams []string
				fams, err = adminapi.RevokeUser(ctx, db, id, grants, until)
				if err == nil {
					return fmt.Sprintf("revoked %d refresh-token families of %s and their access tokens", len(fams), id), nil
				}
			}
		}
		if err != nil {
			return "", fmt.Errorf("revoking the tokens of %s %s: %w", kind, id, err)
		}
	}
	if kind == "family" {
		return fmt.Sprintf("revoked refresh-token family %s and its access tokens", id), nil
	}
	return fmt.Sprintf("revoked every token issued to %s until now", id), nil
}

// grantsCommand is `caddy smart-auth grants`.
func grantsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "grants --user <name> [--storage <dir>] [--address <addr>] [--issuer <url>] [--json]",
		Short: "List what a user has authorized: clients, refresh-token families, consents",
		Long: `
Lists, per client, what a user has authorized: the live refresh-token
families (revoke one with 'revoke --family'), the newest one's scope, when
it was last refreshed and authorized, and the remembered consent.
` + howItRuns,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			user, _ := cmd.Flags().GetString("user")
			if user == "" {
				return errors.New("--user is required")
			}
			grants, err := listGrants(cmd, user)
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(grants))
			for _, g := range grants {
				rows = append(rows, []string{g.ClientID, stamp(g.IssuedAt), printable(g.Scope),
					printable(strings.Join(g.Remembered, " ")), strings.Join(g.Families, " ")})
			}
			return printListing(cmd, grants, rows, "CLIENT_ID", "LAST_REFRESH", "SCOPE", "REMEMBERED", "FAMILIES")
		},
	}
	storageFlag(cmd)
	cmd.Flags().String("user", "", "the user's name (required)")
	cmd.Flags().Bool("json", false, "print JSON")
	return cmd
}

// listGrants reads a user's grants through the server or the directory.
func listGrants(cmd *cobra.Command, user string) ([]adminapi.Grant, error) {
	srv, err := reachServer(cmd)
	if err != nil {
		return nil, err
	}
	if srv != nil {
		var out adminapi.Grants
		err := srv.call(http.MethodGet, "users/"+url.PathEscape(user)+"/grants", nil, &out)
		return out.Grants, err
	}
	db, err := openStorage(cmd)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	list, err := db.UserGrants(context.Background(), user)
	if err != nil {
		return nil, fmt.Errorf("reading the grants of %s: %w", user, err)
	}
	return adminapi.GrantsOf(list), nil
}
