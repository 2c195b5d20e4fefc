// Package webhooktest holds what tests of the webhook process share: a
// serving certificate and free loopback ports.
package webhooktest

import (
	"crypto/x509"
	"net"
	"testing"

	"github.com/secretfetch/secretfetch/hack/certs/pki"
)

// WriteCert writes a fresh CA-signed certificate for 127.0.0.1 and
// localhost as tls.crt and tls.key in dir, and returns a pool with its CA.
func WriteCert(t testing.TB, dir string) *x509.CertPool {
	t.Helper()
	bundle, err := pki.New(pki.Options{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := bundle.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle.CACert) {
		t.Fatal("the CA certificate does not parse")
	}
	return pool
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
