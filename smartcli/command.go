// Package smartcli adds the `caddy smart-auth` command to Caddy's command
// line: hashing client secrets, generating key pairs for backend clients,
// managing clients and tokens (through the
// running Caddy's admin API, or on a storage directory), the signing keys
// and readiness of a running server, and migration to PostgreSQL. It
// registers itself when imported; package smartauth imports it.
package smartcli

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "smart-auth",
		Usage: "<hash-secret|keygen|clients|remove-client|revoke|grants|keys|rotate-keys|health|migrate> [flags]",
		Short: "Tools for the smart_auth SMART on FHIR authorization server",
		Long: `
Tools for the smart_auth handler (SMART App Launch authorization server).

  hash-secret    hash a client secret or initial access token for the
                 Caddyfile (secret_hash, initial_access_token_hash)
  keygen         generate a key pair and public JWKS for a backend client
                 (private_key_jwt)
  clients        list the clients, configured and dynamically registered
  remove-client  remove a dynamically registered client and revoke its tokens
  revoke         revoke the tokens of a client, of a user or of one
                 refresh-token family
  grants         list what a user has authorized (clients, families)
  keys           show the running server's signing keys
  rotate-keys    rotate the running server's generated signing keys now
  health         show the running server's readiness
  migrate        copy a storage directory into a PostgreSQL database

clients, remove-client, revoke and grants go through the running Caddy's
admin API (--address, default localhost:2019, as 'caddy reload' does), so
nothing needs stopping; with --storage and no running Caddy holding that
directory, they open it directly. keys, rotate-keys and health need a
running Caddy. migrate opens the Badger directory itself: stop the Caddy
that uses it first.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(hashSecretCommand(), keygenCommand(), clientsCommand(), removeClientCommand(), revokeCommand(),
				grantsCommand(), keysCommand(), rotateKeysCommand(), healthCommand(), migrateCommand())
		},
	})
}
