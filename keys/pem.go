package keys

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// fileKey is a private key the operator supplied in a PEM file.
type fileKey struct {
	path    string
	alg     string
	kid     string
	priv    crypto.Signer
	pubJSON []byte
}

// loadKeyFile reads a PEM private key for alg from path. It accepts PKCS #8
// ("PRIVATE KEY"), PKCS #1 ("RSA PRIVATE KEY") and SEC 1 ("EC PRIVATE KEY")
// blocks; other blocks (EC PARAMETERS, certificates) are skipped. Errors
// name the file and the problem, never the key material.
func loadKeyFile(path, alg string) (*fileKey, error) {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("keys: %s key file %s: %s", alg, path, fmt.Sprintf(format, a...))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			// The path is in our prefix already.
			return nil, fail("cannot read: %v", pe.Err)
		}
		return nil, fail("cannot read: %v", err)
	}
	var (
		priv    any
		found   int
		blocks  int
		publics []string
	)
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		blocks++
		var perr error
		switch b.Type {
		case "PRIVATE KEY":
			priv, perr = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			priv, perr = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			priv, perr = x509.ParseECPrivateKey(b.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, fail("the private key is encrypted; supply it unencrypted (file mode 0600)")
		case "PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE":
			publics = append(publics, b.Type)
			continue
		default:
			continue
		}
		if _, legacy := b.Headers["DEK-Info"]; legacy {
			return nil, fail("the private key is encrypted; supply it unencrypted (file mode 0600)")
		}
		if perr != nil {
			return nil, fail("cannot parse the %q block: %v", b.Type, perr)
		}
		found++
	}
	switch {
	case found > 1:
		return nil, fail("holds %d private keys; supply exactly one", found)
	case found == 0 && len(publics) > 0:
		return nil, fail("holds a %s, not a private key", publics[0])
	case found == 0 && blocks > 0:
		return nil, fail("holds no private key block (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)")
	case found == 0:
		return nil, fail("no PEM block found")
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fail("holds %s, which cannot sign", keyKind(priv))
	}
	if err := checkKey(signer.Public(), alg); err != nil {
		return nil, fail("%v", err)
	}
	_, kid, pubJSON, err := publicJWK(signer.Public(), alg)
	if err != nil {
		return nil, fail("%v", err)
	}
	// Refuse a key jwx itself would not sign with, now rather than at the
	// first token.
	if _, err := jwk.Import(signer); err != nil {
		return nil, fail("unusable private key: %v", err)
	}
	return &fileKey{path: path, alg: alg, kid: kid, priv: signer, pubJSON: pubJSON}, nil
}
