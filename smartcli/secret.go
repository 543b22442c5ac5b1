package smartcli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/smartcaddy/smartauth/store"
)

// hashSecretCommand is `caddy smart-auth hash-secret`: it prints the hash
// of a client secret (or an initial access token) in the form secret_hash
// and initial_access_token_hash accept, hmac-sha256$<salt>$<mac>.
func hashSecretCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hash-secret [--secret <secret>] [--generate]",
		Short: "Hash a client secret for secret_hash in the Caddyfile",
		Long: `
Prints the hash of a client secret (or of an initial access token) in the
form the Caddyfile options secret_hash and initial_access_token_hash accept:
hmac-sha256$<salt>$<mac>, a salted HMAC-SHA-256.

The secret is read from --secret, else from a terminal prompt (not echoed,
asked twice), else from the first line of standard input. With --generate,
a new random 256-bit secret is made instead: the secret is printed on the
first line and its hash on the second. Give the secret to the client; put
only the hash in the configuration.
`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			secret, _ := cmd.Flags().GetString("secret")
			generate, _ := cmd.Flags().GetBool("generate")
			out := cmd.OutOrStdout()
			switch {
			case generate && secret != "":
				return errors.New("give --secret or --generate, not both")
			case generate:
				secret = store.NewSecret()
				fmt.Fprintln(out, secret)
			case secret == "":
				var err error
				if secret, err = readSecret(cmd); err != nil {
					return err
				}
			}
			if secret == "" {
				return errors.New("the secret is empty")
			}
			fmt.Fprintln(out, store.HashSecret(secret))
			return nil
		},
	}
	cmd.Flags().StringP("secret", "s", "", "the secret to hash (visible in the shell history and process list; prefer the prompt or stdin)")
	cmd.Flags().Bool("generate", false, "generate a random 256-bit secret and print it with its hash")
	return cmd
}

// readSecret reads a secret from the terminal without echo (asking twice)
// or, when standard input is not a terminal, from its first line.
func readSecret(cmd *cobra.Command) (string, error) {
	in := cmd.InOrStdin()
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fd := int(f.Fd())
		fmt.Fprint(cmd.ErrOrStderr(), "Secret: ")
		first, err := term.ReadPassword(fd)
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return "", err
		}
		fmt.Fprint(cmd.ErrOrStderr(), "Again: ")
		second, err := term.ReadPassword(fd)
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return "", err
		}
		if string(first) != string(second) {
			return "", errors.New("the two entries differ")
		}
		return string(first), nil
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}
