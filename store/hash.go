package store

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// b64 is the URL-safe base64 alphabet without padding: everything this
// package hands out travels in URLs and form bodies unencoded.
var b64 = base64.RawURLEncoding

// NewSecret returns a random 256-bit value in URL-safe base64. Codes,
// tokens, session ids, launch ids and server-issued client secrets are made
// with it.
func NewSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return b64.EncodeToString(b[:])
}

// HashID returns the key under which a record named by a secret is stored:
// SHA-256, enough for a 256-bit random value (RFC 6819 §5.1.4.1.3).
func HashID(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return b64.EncodeToString(sum[:])
}

// secretPrefix marks the fast keyed hash of HashSecret.
const secretPrefix = "hmac-sha256$"

// HashSecret hashes a client secret for storage: HMAC-SHA-256 keyed with a
// random salt, written as "hmac-sha256$<salt>$<mac>". A fast hash is right
// for machine-generated secrets of 256 bits; bcrypt would cap the token
// endpoint at a few dozen requests per second.
func HashSecret(secret string) string {
	var salt [16]byte
	_, _ = rand.Read(salt[:])
	return secretPrefix + b64.EncodeToString(salt[:]) + "$" + b64.EncodeToString(mac(salt[:], secret))
}

func mac(salt []byte, secret string) []byte {
	m := hmac.New(sha256.New, salt)
	m.Write([]byte(secret))
	return m.Sum(nil)
}

// CheckSecretHash tells whether hash is in a form VerifySecret accepts:
// HashSecret's, or bcrypt's (for secrets a person chose).
func CheckSecretHash(hash string) error {
	if strings.HasPrefix(hash, secretPrefix) {
		salt, sum, err := splitSecretHash(hash)
		if err != nil {
			return err
		}
		if len(salt) < 16 || len(sum) != sha256.Size {
			return errors.New("malformed hmac-sha256 secret hash")
		}
		return nil
	}
	if _, err := bcrypt.Cost([]byte(hash)); err != nil {
		return fmt.Errorf("not a secret hash (want hmac-sha256$… from 'caddy smart-auth hash-secret', or bcrypt): %w", err)
	}
	return nil
}

func splitSecretHash(hash string) (salt, sum []byte, err error) {
	parts := strings.Split(strings.TrimPrefix(hash, secretPrefix), "$")
	if len(parts) != 2 {
		return nil, nil, errors.New("malformed hmac-sha256 secret hash")
	}
	if salt, err = b64.DecodeString(parts[0]); err != nil {
		return nil, nil, errors.New("malformed hmac-sha256 secret hash")
	}
	if sum, err = b64.DecodeString(parts[1]); err != nil {
		return nil, nil, errors.New("malformed hmac-sha256 secret hash")
	}
	return salt, sum, nil
}

// VerifySecret compares a presented secret with a stored hash in constant
// time.
func VerifySecret(hash, secret string) bool {
	if strings.HasPrefix(hash, secretPrefix) {
		salt, sum, err := splitSecretHash(hash)
		if err != nil {
			return false
		}
		return subtle.ConstantTimeCompare(mac(salt, secret), sum) == 1
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(secret)) == nil
}
