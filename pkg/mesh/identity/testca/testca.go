// Package testca makes SPIFFE certificate authorities and X.509 SVIDs for
// the tests of one piece (pkg/mesh/identity, pkg/mesh/mtls, pkg/datapath/proxy) and for the
// benchmarks; the integration tests take theirs from a real SPIRE.
package testca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// T is what testca needs of a test: testing.TB, or a benchmark's own.
type T interface {
	Helper()
	Fatal(args ...any)
}

// CA is a trust domain's root.
type CA struct {
	TrustDomain string
	cert        *x509.Certificate
	key         *ecdsa.PrivateKey
}

var (
	mu     sync.Mutex
	serial = big.NewInt(time.Now().UnixNano())
)

func next() *big.Int {
	mu.Lock()
	defer mu.Unlock()
	serial.Add(serial, big.NewInt(1))
	return new(big.Int).Set(serial)
}

// New makes a CA for trust domain td.
func New(t T, td string) *CA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: next(), Subject: pkix.Name{Organization: []string{"veneer test"}, CommonName: td},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs: []*url.URL{{Scheme: "spiffe", Host: td}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{TrustDomain: td, cert: cert, key: key}
}

// BundlePEM is the CA's certificate, as ca.crt holds it.
func (ca *CA) BundlePEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// SVID issues an X.509 SVID for id (a spiffe:// URI) that expires after
// ttl, as PEM: the certificate and its key.
func (ca *CA) SVID(t T, id string, ttl time.Duration) (certPEM, keyPEM []byte) {
	t.Helper()
	u, err := url.Parse(id)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: next(), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(ttl),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{u},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})
}

// WriteDir writes an SVID for id and the CA's bundle into dir in
// csi-driver-spiffe's layout (tls.crt, tls.key, ca.crt), each file
// replaced whole.
func (ca *CA) WriteDir(t T, dir, id string, ttl time.Duration) {
	t.Helper()
	c, k := ca.SVID(t, id, ttl)
	for name, b := range map[string][]byte{"tls.crt": c, "tls.key": k, "ca.crt": ca.BundlePEM()} {
		tmp := filepath.Join(dir, "."+name)
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}
