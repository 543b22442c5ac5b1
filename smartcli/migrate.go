package smartcli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/spf13/cobra"

	"github.com/smartcaddy/smartauth/store"
	"github.com/smartcaddy/smartauth/store/postgres"
)

// kindLabels names each record kind in migrate's report.
var kindLabels = map[string]string{
	store.KindClient:        "clients",
	store.KindCode:          "authorization codes",
	store.KindConsent:       "consents",
	store.KindJTI:           "used JWT ids",
	store.KindKey:           "signing keys",
	store.KindLaunch:        "launches",
	store.KindRefresh:       "refresh tokens",
	store.KindRevocationLog: "revocation log entries",
	store.KindRevocation:    "revocations",
	store.KindSession:       "sessions",
	store.KindSiteSecret:    "site secrets",
}

// migrateCommand is `caddy smart-auth migrate`: a Badger storage
// directory copied into a PostgreSQL database.
func migrateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate --from <dir> (--to <dsn> | --to-env <NAME>) [--force]",
		Short: "Copy a Badger storage directory into a PostgreSQL database",
		Long: `
Copies every record of a smart_auth storage directory (Badger) into a
PostgreSQL database: clients, codes, launches, sign-in sessions, refresh
tokens with their families and used flags, used JWT ids, consents,
revocations and the revocation log, signing keys (with their kids), and
the site secret that seals requests in flight and sign-in forms.
Secrets stay hashed and are copied as they are, so users stay signed in,
refresh tokens keep working and issued tokens keep verifying. Prints how
many records of each kind it copied.

The DSN is a secret: give it as a placeholder, --to '{env.SMART_AUTH_DSN}'
or --to '{file./run/secrets/dsn}', or name an environment variable with
--to-env SMART_AUTH_DSN; it is never printed. The schema is created if
needed.

Stop the Caddy that uses the directory first (Badger allows one process
per directory), and run it before any instance serves from the database:
a database an instance has served from is refused (records deleted there
since would come back) unless --force.
Running it again copies nothing new: records already in the database are
kept, except that a code or refresh token used since becomes used there
too, and revocations keep the later of the two.
`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			from, _ := cmd.Flags().GetString("from")
			if from == "" {
				return errors.New("--from is required: the smart_auth storage directory")
			}
			dsn, err := migrateDSN(cmd)
			if err != nil {
				return err
			}
			src, err := openStorageDir(from)
			if err != nil {
				return err
			}
			defer src.Close()
			ctx := context.Background()
			dst, err := postgres.Open(ctx, dsn, postgres.Options{ForMigration: true})
			if err != nil {
				return err
			}
			defer dst.Close()
			since, serving, err := dst.ServingSince(ctx)
			if err != nil {
				return err
			}
			if force, _ := cmd.Flags().GetBool("force"); serving && !force {
				return fmt.Errorf("the database has been serving since %s: copying into it again could bring back "+
					"records deleted there since (signed-out sessions, used launches, removed clients); "+
					"use --force only if no instance has served real traffic from it", since.Format(time.RFC3339))
			}
			counts, err := dst.ImportAll(ctx, src)
			if err != nil {
				return fmt.Errorf("copying %s to PostgreSQL: %w", from, err)
			}
			return printCounts(cmd, from, counts)
		},
	}
	cmd.Flags().String("from", "", "the smart_auth storage directory to copy (required)")
	cmd.Flags().String("to", "", "the PostgreSQL DSN, best as a placeholder: {env.NAME} or {file.PATH}")
	cmd.Flags().String("to-env", "", "the environment variable that holds the PostgreSQL DSN")
	cmd.Flags().Bool("force", false, "copy even into a database a smart_auth instance has served from")
	return cmd
}

// migrateDSN reads the DSN from --to (placeholders resolved) or from the
// variable --to-env names. Errors never repeat it.
func migrateDSN(cmd *cobra.Command) (string, error) {
	to, _ := cmd.Flags().GetString("to")
	env, _ := cmd.Flags().GetString("to-env")
	switch {
	case to != "" && env != "":
		return "", errors.New("give either --to or --to-env, not both")
	case env != "":
		dsn := strings.TrimSpace(os.Getenv(env))
		if dsn == "" {
			return "", fmt.Errorf("--to-env: the environment variable %s is unset or empty", env)
		}
		return dsn, nil
	case to == "":
		return "", errors.New("--to or --to-env is required: the PostgreSQL database to copy into")
	}
	dsn, err := caddy.NewReplacer().ReplaceOrErr(to, true, true)
	if err != nil {
		// The error would quote the text around a brace: part of the
		// DSN, perhaps its password.
		return "", errors.New("--to: a placeholder in the DSN is unknown or empty (use {env.NAME} or {file.PATH})")
	}
	if dsn = strings.TrimSpace(dsn); dsn == "" {
		return "", errors.New("--to: the DSN is empty")
	}
	return dsn, nil
}

// printCounts reports how many records of each kind were copied.
func printCounts(cmd *cobra.Command, from string, counts map[string]int) error {
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "copied %s to PostgreSQL:\n", from)
	total := 0
	for _, k := range store.Kinds {
		fmt.Fprintf(out, "%9d  %s\n", counts[k], kindLabels[k])
		total += counts[k]
	}
	_, err := fmt.Fprintf(out, "%9d  records in all\n", total)
	return err
}
