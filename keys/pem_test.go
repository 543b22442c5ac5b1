package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// Test keys, generated once: RSA generation is slow under -race.
var (
	testKeysOnce sync.Once
	testRSA      *rsa.PrivateKey
	testRSA1024  *rsa.PrivateKey
	testEC       *ecdsa.PrivateKey
	testEC384    *ecdsa.PrivateKey
	testEd       ed25519.PrivateKey
)

func testKeys(t testing.TB) {
	t.Helper()
	testKeysOnce.Do(func() {
		testRSA, _ = rsa.GenerateKey(rand.Reader, 2048)
		testRSA1024, _ = rsa.GenerateKey(rand.Reader, 1024)
		testEC, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		testEC384, _ = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		_, testEd, _ = ed25519.GenerateKey(rand.Reader)
	})
	if testRSA == nil || testRSA1024 == nil || testEC == nil || testEC384 == nil || testEd == nil {
		t.Fatal("generating test keys failed")
	}
}

func pkcs8(t testing.TB, k any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func sec1(t testing.TB, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	// As "openssl ecparam -genkey" writes it: parameters first.
	params, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7})
	return append(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: params}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})...)
}

func pkcs1(k *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

func writeFile(t testing.TB, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFileKeysLoadAndSign(t *testing.T) {
	testKeys(t)
	cases := []struct {
		name string
		alg  string
		pem  []byte
		pub  crypto.PublicKey
	}{
		{"PKCS#8 EC", ES256, pkcs8(t, testEC), testEC.Public()},
		{"SEC1 EC", ES256, sec1(t, testEC), testEC.Public()},
		{"PKCS#1 RSA", RS256, pkcs1(testRSA), testRSA.Public()},
		{"PKCS#8 RSA", RS256, pkcs8(t, testRSA), testRSA.Public()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := newClock()
			db := openStore(t, t.TempDir(), clk)
			o := opts(db, clk)
			o.Files = map[string]string{c.alg: writeFile(t, c.pem)}
			r := newRing(t, o)
			kid := thumbprint(t, c.pub)
			if got := signingKID(t, r, clk, c.alg); got != kid {
				t.Fatalf("signs with %s, want the file key %s", got, kid)
			}
			if _, err := r.Verify(context.Background(), sign(t, r, clk, c.alg)); err != nil {
				t.Fatal(err)
			}
			rec := records(t, db)[kid]
			if rec == nil || !rec.External || len(rec.PrivateKey) != 0 || !rec.ActiveFrom.Equal(clk.Now()) {
				t.Fatalf("file key record = %+v, want External without a private key", rec)
			}
			stored, err := jwk.ParseKey(rec.PublicJWK)
			if err != nil {
				t.Fatal(err)
			}
			if priv, _ := jwk.IsPrivateKey(stored); priv {
				t.Fatal("the store holds the file's private key")
			}
			if n := byAlg(records(t, db)); n[RS256] != 1 || n[ES256] != 1 {
				t.Fatalf("records %v, want one per alg", n)
			}
			// A restart with the same file keeps the record as it is.
			clk.Add(time.Hour)
			newRing(t, o)
			if again := records(t, db)[kid]; !again.ActiveFrom.Equal(rec.ActiveFrom) || len(records(t, db)) != 2 {
				t.Fatalf("restart changed the file key record: %+v", again)
			}
		})
	}
}

func TestFileKeyErrors(t *testing.T) {
	testKeys(t)
	dir := t.TempDir()
	pubDER, _ := x509.MarshalPKIXPublicKey(testEC.Public())
	cases := []struct {
		name string
		alg  string
		data []byte // nil: no file
		want string
	}{
		{"missing file", ES256, nil, "cannot read"},
		{"garbage", ES256, []byte("this is not a key\n"), "no PEM block"},
		{"RSA 1024", RS256, pkcs1(testRSA1024), "2048"},
		{"P-384 for ES256", ES256, pkcs8(t, testEC384), "P-256"},
		{"RSA for ES256", ES256, pkcs8(t, testRSA), "RSA"},
		{"EC for RS256", RS256, sec1(t, testEC), "needs an RSA key"},
		{"Ed25519", ES256, pkcs8(t, testEd), "Ed25519"},
		{"public key", ES256, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), "PUBLIC KEY, not a private key"},
		{"two keys", ES256, append(pkcs8(t, testEC), pkcs8(t, testEC)...), "2 private keys"},
		{"corrupt block", ES256, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{0x30, 0x03, 1, 2, 3}}), "cannot parse"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, c.name+".pem")
			if c.data != nil {
				if err := os.WriteFile(path, c.data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			clk := newClock()
			db := openStore(t, t.TempDir(), clk)
			o := opts(db, clk)
			o.Files = map[string]string{c.alg: path}
			_, err := New(context.Background(), o)
			if err == nil {
				t.Fatal("New succeeded")
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || !strings.Contains(msg, c.want) {
				t.Fatalf("case %d: error %q does not name the path and %q", i, msg, c.want)
			}
			if strings.Contains(msg, "MII") || len(msg) > 400 {
				t.Fatalf("error looks like it carries key material: %q", msg)
			}
		})
	}
}

func TestSwitchBetweenGeneratedAndFileKeys(t *testing.T) {
	testKeys(t)
	ctx := context.Background()
	clk := newClock()
	db := openStore(t, t.TempDir(), clk)
	gen := newRing(t, opts(db, clk))
	genEC, genRS := signingKID(t, gen, clk, ES256), signingKID(t, gen, clk, RS256)
	genTok := sign(t, gen, clk, ES256)

	clk.Add(time.Hour)
	withFile := opts(db, clk)
	withFile.Files = map[string]string{ES256: writeFile(t, pkcs8(t, testEC))}
	f := newRing(t, withFile)
	fileKID := thumbprint(t, testEC.Public())
	if got := signingKID(t, f, clk, ES256); got != fileKID {
		t.Fatalf("ES256 signs with %s, want the file key", got)
	}
	if got := signingKID(t, f, clk, RS256); got != genRS {
		t.Fatal("RS256 changed although it has no file")
	}
	rec := records(t, db)[genEC]
	if rec == nil || !rec.RetiredAt.Equal(clk.Now()) || !rec.PublishUntil.Equal(clk.Now().Add(2*time.Hour)) {
		t.Fatalf("generated ES256 record = %+v, want retired now, published for Retain", rec)
	}
	if !slices.Contains(f.KIDs(), genEC) {
		t.Fatal("the retired generated key left the JWKS")
	}
	if _, err := f.Verify(ctx, genTok); err != nil {
		t.Fatalf("token of the retired generated key: %v", err)
	}
	fileTok := sign(t, f, clk, ES256)

	// A ring without the file (the previous configuration, during a
	// reload) cannot sign with the file key and makes its own; the ring
	// with the file keeps signing with the file key.
	clk.Add(time.Minute)
	other := newRing(t, opts(db, clk))
	otherEC := signingKID(t, other, clk, ES256)
	if otherEC == fileKID || otherEC == genEC {
		t.Fatal("a ring without the file signs with a key it should not")
	}
	if _, err := other.Verify(ctx, fileTok); err != nil {
		t.Fatalf("the file key's token does not verify without the file: %v", err)
	}
	if rec := records(t, db)[fileKID]; rec == nil || !rec.PublishUntil.Equal(clk.Now().Add(2*time.Hour)) {
		t.Fatalf("a ring without the file left the file key record %+v, want it retired and published for Retain", rec)
	}
	clk.Add(time.Minute)
	if err := f.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := signingKID(t, f, clk, ES256); got != fileKID {
		t.Fatalf("after the other ring's change the file ring signs with %s", got)
	}
	if rec := records(t, db)[fileKID]; rec == nil || !rec.RetiredAt.IsZero() {
		t.Fatalf("the file ring did not keep its key current: %+v", rec)
	}

	// Past Retain, the generated key is gone.
	clk.Add(2 * time.Hour)
	if err := f.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := records(t, db)[genEC]; ok || slices.Contains(f.KIDs(), genEC) {
		t.Fatal("the generated key outlived Retain")
	}
	if got := signingKID(t, f, clk, ES256); got != fileKID {
		t.Fatal("the file key stopped signing")
	}
}
