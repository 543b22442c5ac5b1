package smartcli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/spf13/cobra"

	"github.com/smartcaddy/smartauth/store"
)

// defaultRevocationPeriod is how long `revoke` and `remove-client` keep a
// client revocation: longer than any sensible refresh_token_lifetime.
const defaultRevocationPeriod = "3650d"

// openStorage opens an existing storage directory. A directory a running
// Caddy holds is refused by Badger's lock; the error says so.
func openStorage(cmd *cobra.Command) (*store.DB, error) {
	dir, _ := cmd.Flags().GetString("storage")
	if dir == "" {
		return nil, errors.New("--storage is required: the smart_auth storage directory")
	}
	if looksLikePostgres(dir) {
		// Not repeated: a DSN may hold a password.
		return nil, errors.New("--storage names a PostgreSQL database, not a directory: these commands work on " +
			"Badger storage directories only; with PostgreSQL, registered clients manage themselves at " +
			"{issuer}/register/{client_id} while Caddy runs")
	}
	return openStorageDir(dir)
}

// openStorageDir opens the existing storage directory dir, refusing one a
// running Caddy holds with a message that says so.
func openStorageDir(dir string) (*store.DB, error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("storage directory %s does not exist", dir)
	case err != nil:
		return nil, err
	case !fi.IsDir():
		return nil, fmt.Errorf("storage %s is not a directory", dir)
	}
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		if strings.Contains(err.Error(), "locked by another process") {
			return nil, fmt.Errorf("storage directory %s is in use, usually by a running Caddy: "+
				"stop it first (Badger allows one process per directory); "+
				"while it runs, registered clients manage themselves at {issuer}/register/{client_id}", dir)
		}
		return nil, err
	}
	return db, nil
}

// looksLikePostgres tells whether a --storage value is a PostgreSQL DSN (a
// URL, keyword/value pairs, or the Caddyfile's `postgres <dsn>`) rather
// than a directory.
func looksLikePostgres(v string) bool {
	l := strings.ToLower(strings.TrimSpace(v))
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://") ||
		strings.HasPrefix(l, "postgres ") || pgKeyword.MatchString(l)
}

// pgKeyword matches a keyword/value DSN: it starts with a libpq keyword
// and an equals sign.
var pgKeyword = regexp.MustCompile(`^(host|hostaddr|port|dbname|user|password|sslmode|service)\s*=`)

// storageFlag adds the --storage flag.
func storageFlag(cmd *cobra.Command) {
	cmd.Flags().String("storage", "", "the smart_auth storage directory (required)")
}

// clientListing is what `clients` shows of a client: never its secret
// hash or registration token hash.
type clientListing struct {
	ID           string    `json:"client_id"`
	Name         string    `json:"client_name,omitempty"`
	Type         string    `json:"type"`
	GrantTypes   []string  `json:"grant_types"`
	RedirectURIs []string  `json:"redirect_uris,omitempty"`
	Scopes       []string  `json:"scopes,omitempty"`
	JWKSURI      string    `json:"jwks_uri,omitempty"`
	IssuedAt     time.Time `json:"issued_at"`
}

// clientsCommand is `caddy smart-auth clients`: the dynamically
// registered clients of a storage directory.
func clientsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "clients --storage <dir> [--json]",
		Short: "List the dynamically registered clients",
		Long: `
Lists the clients registered through dynamic client registration in a
smart_auth storage directory: id, type, grant types, issue time, name and
redirect URIs (--json: all as JSON). Clients from the Caddyfile are not
stored and not listed. Secrets are stored only as hashes and never shown.
Stop the Caddy that uses the directory first.
`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := openStorage(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			list, err := db.ListClients(context.Background())
			if err != nil {
				return fmt.Errorf("listing clients: %w", err)
			}
			out := make([]clientListing, 0, len(list))
			for _, c := range list {
				out = append(out, clientListing{ID: c.ID, Name: c.Name, Type: c.Type, GrantTypes: c.GrantTypes,
					RedirectURIs: c.RedirectURIs, Scopes: c.Scopes, JWKSURI: c.JWKSURI, IssuedAt: c.IssuedAt.UTC()})
			}
			if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CLIENT_ID\tTYPE\tGRANT_TYPES\tISSUED_AT\tNAME\tREDIRECT_URIS")
			for _, c := range out {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Type, strings.Join(c.GrantTypes, ","),
					c.IssuedAt.Format(time.RFC3339), printable(c.Name), strings.Join(c.RedirectURIs, " "))
			}
			return tw.Flush()
		},
	}
	storageFlag(cmd)
	cmd.Flags().Bool("json", false, "print JSON")
	return cmd
}

// printable quotes a name that holds spaces or is empty, so that columns
// stay readable.
func printable(s string) string {
	if s == "" || strings.ContainsAny(s, " \t") {
		return fmt.Sprintf("%q", s)
	}
	return s
}

// revocationUntil reads --for.
func revocationUntil(cmd *cobra.Command) (time.Time, error) {
	v, _ := cmd.Flags().GetString("for")
	d, err := caddy.ParseDuration(v)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("--for %q: must be a positive duration such as 90d", v)
	}
	return time.Now().Add(d), nil
}

// revokeFlag adds the --for flag.
func revokeFlag(cmd *cobra.Command) {
	cmd.Flags().String("for", defaultRevocationPeriod, "how long the revocation is kept: at least refresh_token_lifetime")
}

// removeClientCommand is `caddy smart-auth remove-client`.
func removeClientCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remove-client --storage <dir> <client_id>",
		Short: "Remove a dynamically registered client and revoke its tokens",
		Long: `
Removes a dynamically registered client from a smart_auth storage directory
and revokes every access and refresh token issued to it. Clients from the
Caddyfile are not stored: remove them from the configuration (and use
'revoke' for their tokens). Stop the Caddy that uses the directory first.
`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			until, err := revocationUntil(cmd)
			if err != nil {
				return err
			}
			db, err := openStorage(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			ctx := context.Background()
			if _, err := db.GetClient(ctx, id); errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no registered client %q in %s", id, db.Dir())
			} else if err != nil {
				return err
			}
			if err := db.Revoke(ctx, store.RevokedClient, id, until); err != nil {
				return fmt.Errorf("revoking the tokens of %s: %w", id, err)
			}
			if err := db.DeleteClient(ctx, id); err != nil {
				return fmt.Errorf("removing %s: %w", id, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed client %s and revoked its tokens\n", id)
			return nil
		},
	}
	storageFlag(cmd)
	revokeFlag(cmd)
	return cmd
}

// revokeCommand is `caddy smart-auth revoke`.
func revokeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "revoke --storage <dir> --client <client_id> [--for <duration>]",
		Short: "Revoke every token issued so far to a client",
		Long: `
Records that every access and refresh token issued to a client until now is
revoked: the guard, introspection, userinfo and the token endpoint refuse
them. Tokens issued later are not affected (an access token's issue time has
one-second precision, so one issued in the same second counts as revoked).
Works for clients from the Caddyfile as well as registered ones; the client
itself stays (use remove-client, or remove it from the Caddyfile).
--for is how long the revocation is kept (default 3650d); it must be at
least refresh_token_lifetime. Stop the Caddy that uses the directory first.
`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, _ := cmd.Flags().GetString("client")
			if id == "" {
				return errors.New("--client is required")
			}
			until, err := revocationUntil(cmd)
			if err != nil {
				return err
			}
			db, err := openStorage(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			if err := db.Revoke(context.Background(), store.RevokedClient, id, until); err != nil {
				return fmt.Errorf("revoking the tokens of %s: %w", id, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked every token issued to %s until now\n", id)
			return nil
		},
	}
	storageFlag(cmd)
	revokeFlag(cmd)
	cmd.Flags().String("client", "", "the client_id whose tokens are revoked (required)")
	return cmd
}
