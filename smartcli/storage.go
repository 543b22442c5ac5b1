package smartcli

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/spf13/cobra"

	"github.com/smartcaddy/smartauth/store"
)

// defaultRevocationPeriod is how long `revoke` and `remove-client` keep a
// client revocation: longer than any sensible refresh_token_lifetime.
const defaultRevocationPeriod = "3650d"

// openStorage opens the existing storage directory --storage names, for a
// command that found no running Caddy holding it (reachServer). A
// directory another process holds is refused by Badger's lock; the error
// says so.
func openStorage(cmd *cobra.Command) (*store.DB, error) {
	dir, _ := cmd.Flags().GetString("storage")
	if dir == "" {
		return nil, errors.New("--storage is required: the smart_auth storage directory")
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
			return nil, fmt.Errorf("storage directory %s is in use, usually by a running Caddy whose admin API "+
				"did not answer: give its admin address with --address, and the command goes through it "+
				"(Badger allows one process per directory)", dir)
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

// storageFlag adds the --storage flag, and the flags that reach a running
// server (--address, --issuer).
func storageFlag(cmd *cobra.Command) {
	cmd.Flags().String("storage", "", "the smart_auth storage directory, used directly when no running Caddy holds it")
	serverFlags(cmd)
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
