// Package smartcli adds the `caddy smart-auth` command to Caddy's command
// line: hashing client secrets, generating key pairs for backend clients,
// and listing, removing and revoking clients in a storage directory. It
// registers itself when imported; package smartauth imports it.
package smartcli

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "smart-auth",
		Usage: "<hash-secret|keygen|clients|remove-client|revoke|migrate> [flags]",
		Short: "Tools for the smart_auth SMART on FHIR authorization server",
		Long: `
Tools for the smart_auth handler (SMART App Launch authorization server).

  hash-secret    hash a client secret or initial access token for the
                 Caddyfile (secret_hash, initial_access_token_hash)
  keygen         generate a key pair and public JWKS for a backend client
                 (private_key_jwt)
  clients        list the dynamically registered clients in a storage
                 directory
  remove-client  remove a dynamically registered client and revoke its tokens
  revoke         revoke every token issued so far to a client
  migrate        copy a storage directory into a PostgreSQL database

clients, remove-client, revoke and migrate open the Badger storage directory
directly: stop the Caddy that uses it first (Badger locks the directory).
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(hashSecretCommand(), keygenCommand(), clientsCommand(), removeClientCommand(), revokeCommand(), migrateCommand())
		},
	})
}
