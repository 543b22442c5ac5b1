package smartcli

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/smartcaddy/smartauth/adminapi"
)

// The commands that only a running server can answer: its key ring and
// its readiness.

// runningServer reaches the running Caddy (reachServer without
// --storage): these commands have no storage mode.
func runningServer(cmd *cobra.Command) (*server, error) {
	srv, err := reachServer(cmd)
	if err == nil && srv == nil {
		err = errors.New("no running Caddy answers: start it, or give its admin address with --address")
	}
	return srv, err
}

// keysCommand is `caddy smart-auth keys`.
func keysCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys [--address <addr>] [--issuer <url>] [--json]",
		Short: "Show the signing keys of the running server",
		Long: `
Shows the running server's signing keys (never key material): kid,
algorithm, state (active, pending: published ahead of signing, retiring:
published until its tokens have expired), since when it signs, and when the
next rotation starts signing. Needs a running Caddy (its admin API).
`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srv, err := runningServer(cmd)
			if err != nil {
				return err
			}
			var ring adminapi.KeyRing
			if err := srv.call(http.MethodGet, "keys", nil, &ring); err != nil {
				return err
			}
			return printKeys(cmd, ring)
		},
	}
	serverFlags(cmd)
	cmd.Flags().Bool("json", false, "print JSON")
	return cmd
}

// rotateKeysCommand is `caddy smart-auth rotate-keys`.
func rotateKeysCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rotate-keys [--alg ES256|RS256] [--address <addr>] [--issuer <url>] [--json]",
		Short: "Rotate the running server's generated signing keys now",
		Long: `
Starts a successor for the generated signing key of --alg (default: every
generated key), as scheduled rotation does: the successor is in the JWKS
at once and starts signing after the publish-ahead time (5 minutes), so
that verifiers with a cached JWKS know it; the old key stays published
until its tokens have expired. A successor already pending is kept. Keys
from files (signing_key) are rotated by replacing the file. Needs a
running Caddy (its admin API).
`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srv, err := runningServer(cmd)
			if err != nil {
				return err
			}
			path := "keys/rotate"
			if alg, _ := cmd.Flags().GetString("alg"); alg != "" {
				path += "?alg=" + url.QueryEscape(alg)
			}
			var ring adminapi.KeyRing
			if err := srv.call(http.MethodPost, path, nil, &ring); err != nil {
				return err
			}
			return printKeys(cmd, ring)
		},
	}
	serverFlags(cmd)
	cmd.Flags().String("alg", "", "the algorithm whose key is rotated: ES256 or RS256 (default: both)")
	cmd.Flags().Bool("json", false, "print JSON")
	return cmd
}

// printKeys prints a key ring as a table, or as JSON with --json.
func printKeys(cmd *cobra.Command, ring adminapi.KeyRing) error {
	out := cmd.OutOrStdout()
	if asJSON, _ := cmd.Flags().GetBool("json"); !asJSON && len(ring.Rotated) > 0 {
		fmt.Fprintf(out, "rotated: %v\n", ring.Rotated)
	}
	rows := make([][]string, 0, len(ring.Keys))
	for _, k := range ring.Keys {
		state := k.State
		if k.External {
			state += " (file)"
		}
		rows = append(rows, []string{k.KID, k.Alg, state, stamp(k.ActiveFrom),
			(time.Duration(k.AgeSeconds) * time.Second).String(), stamp(k.PublishUntil)})
	}
	if err := printListing(cmd, ring, rows, "KID", "ALG", "STATE", "SIGNS_FROM", "AGE", "PUBLISHED_UNTIL"); err != nil {
		return err
	}
	if asJSON, _ := cmd.Flags().GetBool("json"); !asJSON {
		for _, alg := range slices.Sorted(maps.Keys(ring.NextRotation)) {
			fmt.Fprintf(out, "next %s key signs from %s\n", alg, stamp(ring.NextRotation[alg]))
		}
	}
	return nil
}

// healthCommand is `caddy smart-auth health`.
func healthCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "health [--address <addr>] [--issuer <url>]",
		Short: "Show the running server's readiness",
		Long: `
Prints the running server's readiness report (as {issuer}/health answers
it) and fails when it is not ready. Needs a running Caddy (its admin API).
`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srv, err := runningServer(cmd)
			if err != nil {
				return err
			}
			var report map[string]any
			err = srv.call(http.MethodGet, "health", nil, &report)
			if report != nil {
				_ = printJSON(cmd.OutOrStdout(), report)
			}
			return err
		},
	}
	serverFlags(cmd)
	return cmd
}
