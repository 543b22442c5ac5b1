package smartcli

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/spf13/cobra"
)

// keygenRSABits is the size of generated RSA keys.
const keygenRSABits = 3072

// keygenCommand is `caddy smart-auth keygen`: a private key for a backend
// client (SMART Backend Services, private_key_jwt) and the public JWK Set
// to register for it.
func keygenCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keygen [--alg ES384|RS384|ES256|RS256] [--kid <kid>] [--key-file <path>] [--jwks-file <path>]",
		Short: "Generate a key pair and public JWKS for a backend client",
		Long: `
Generates a signing key pair for a client that authenticates with
private_key_jwt (SMART Backend Services): the private key as PKCS #8 PEM, for
the client, and its public half as a JWK Set (with kid, alg and use "sig"),
to register with the server (the client's jwks or jwks_file option, or the
jwks field of a registration request).

--alg is ES384 (default; ECDSA P-384), RS384 (RSA 3072), ES256 or RS256.
--kid defaults to the key's RFC 7638 thumbprint.
--key-file writes the private key to a new file with mode 0600 instead of
standard output; --jwks-file writes the JWK Set to a new file.
Existing files are never overwritten.
`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			alg, _ := cmd.Flags().GetString("alg")
			kid, _ := cmd.Flags().GetString("kid")
			keyFile, _ := cmd.Flags().GetString("key-file")
			jwksFile, _ := cmd.Flags().GetString("jwks-file")
			priv, err := generateKey(alg)
			if err != nil {
				return err
			}
			pemBytes, jwks, err := encodeKeyPair(priv, alg, kid)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if err := writeOrPrint(out, keyFile, pemBytes, 0o600); err != nil {
				return fmt.Errorf("--key-file: %w", err)
			}
			if err := writeOrPrint(out, jwksFile, jwks, 0o644); err != nil {
				return fmt.Errorf("--jwks-file: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().String("alg", "ES384", "signing algorithm: ES384, RS384, ES256 or RS256")
	cmd.Flags().String("kid", "", "key id (default: the RFC 7638 thumbprint)")
	cmd.Flags().String("key-file", "", "write the private key PEM to this new file (mode 0600) instead of stdout")
	cmd.Flags().String("jwks-file", "", "write the public JWK Set to this new file instead of stdout")
	return cmd
}

// generateKey makes a private key for alg.
func generateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case "ES384":
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ES256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "RS384", "RS256":
		return rsa.GenerateKey(rand.Reader, keygenRSABits)
	}
	return nil, fmt.Errorf("--alg %q: must be ES384, RS384, ES256 or RS256", alg)
}

// encodeKeyPair returns the private key as PKCS #8 PEM and the public key
// as an indented JWK Set with kid, alg and use.
func encodeKeyPair(priv crypto.Signer, alg, kid string) (pemBytes, jwks []byte, err error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, err
	}
	pemBytes = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})

	pub, err := jwk.Import(priv.Public())
	if err != nil {
		return nil, nil, err
	}
	if kid == "" {
		tp, err := pub.Thumbprint(crypto.SHA256)
		if err != nil {
			return nil, nil, err
		}
		kid = base64.RawURLEncoding.EncodeToString(tp)
	}
	sigAlg, ok := jwa.LookupSignatureAlgorithm(alg)
	if !ok {
		return nil, nil, fmt.Errorf("unknown algorithm %s", alg)
	}
	for _, kv := range []struct {
		k string
		v any
	}{{jwk.KeyIDKey, kid}, {jwk.AlgorithmKey, sigAlg}, {jwk.KeyUsageKey, "sig"}} {
		if err := pub.Set(kv.k, kv.v); err != nil {
			return nil, nil, err
		}
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		return nil, nil, err
	}
	jwks, err = json.MarshalIndent(set, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	return pemBytes, append(jwks, '\n'), nil
}

// writeOrPrint writes data to a new file at path, or to out when path is
// empty.
func writeOrPrint(out io.Writer, path string, data []byte, mode os.FileMode) error {
	if path == "" {
		_, err := out.Write(data)
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s already exists; not overwriting it", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
