// Package testpki is a throwaway certificate authority for tests: a CA in
// a PEM file and certificates it issues into files, replaced the way a
// Kubernetes Secret volume replaces them (write, then rename), so a test
// can rotate a server's certificate under it.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a test certificate authority. Its methods are for one test's
// goroutine.
type CA struct {
	// Dir holds the CA's files; File is its certificate (PEM); Pool trusts
	// it.
	Dir, File string
	Pool      *x509.CertPool

	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// New makes a CA valid for an hour around now, in a temporary directory.
func New(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	c := &CA{Dir: t.TempDir(), Pool: x509.NewCertPool(), cert: cert, key: key}
	c.Pool.AddCert(cert)
	c.File = filepath.Join(c.Dir, "ca.pem")
	WritePEM(t, c.File, "CERTIFICATE", der)
	return c
}

// Issue writes a certificate with serial, signed by the CA, and its key to
// certFile and keyFile (the key first, each replaced at once), and returns
// the pair. A server certificate is for localhost and 127.0.0.1; a client
// one is for client authentication.
func (c *CA) Issue(t testing.TB, serial int64, server bool, certFile, keyFile string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.Subject.CommonName = "localhost"
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	WritePEM(t, keyFile, "PRIVATE KEY", keyDER)
	WritePEM(t, certFile, "CERTIFICATE", der)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// WritePEM writes one PEM block to path: to a temporary file first, then
// renamed over path, so a reader never sees half a file.
func WritePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
