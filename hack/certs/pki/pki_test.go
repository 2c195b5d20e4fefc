package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNew(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name   string
		opts   Options
		verify string // a name the serving certificate must be valid for
	}{
		{
			name:   "service DNS names",
			opts:   Options{DNSNames: []string{"secretfetch-webhook.secretfetch-system.svc", "secretfetch-webhook.secretfetch-system.svc.cluster.local"}},
			verify: "secretfetch-webhook.secretfetch-system.svc.cluster.local",
		},
		{
			name:   "loopback IP only",
			opts:   Options{IPs: []net.IP{net.ParseIP("127.0.0.1")}},
			verify: "127.0.0.1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Now = func() time.Time { return now }
			b, err := New(tt.opts)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			ca := parseCert(t, b.CACert)
			leaf := parseCert(t, b.Cert)
			if !ca.IsCA || !ca.BasicConstraintsValid {
				t.Errorf("CA: IsCA=%v BasicConstraintsValid=%v, want both true", ca.IsCA, ca.BasicConstraintsValid)
			}
			if leaf.IsCA {
				t.Error("serving certificate is a CA")
			}
			for name, c := range map[string]*x509.Certificate{"CA": ca, "serving": leaf} {
				pub, ok := c.PublicKey.(*ecdsa.PublicKey)
				if !ok || pub.Curve != elliptic.P256() {
					t.Errorf("%s key: %T, want ECDSA P-256", name, c.PublicKey)
				}
				if got, want := c.NotAfter.Sub(c.NotBefore), DefaultValidity; got != want {
					t.Errorf("%s validity = %v, want %v", name, got, want)
				}
				if !c.NotBefore.Before(now) {
					t.Errorf("%s NotBefore = %v, want before %v", name, c.NotBefore, now)
				}
			}
			roots := x509.NewCertPool()
			roots.AddCert(ca)
			if _, err := leaf.Verify(x509.VerifyOptions{
				DNSName:     tt.verify,
				Roots:       roots,
				CurrentTime: now,
				KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			}); err != nil {
				t.Errorf("serving certificate does not verify for %q against the CA: %v", tt.verify, err)
			}
			if _, err := tls.X509KeyPair(b.Cert, b.Key); err != nil {
				t.Errorf("tls.crt and tls.key do not pair: %v", err)
			}
		})
	}
}

func TestNewNeedsAName(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("New with no DNS name or IP succeeded, want an error")
	}
}

func TestWriteDir(t *testing.T) {
	b, err := New(Options{DNSNames: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "certs")
	// A second write over existing files must leave the same modes.
	for range 2 {
		if err := b.WriteDir(dir); err != nil {
			t.Fatalf("WriteDir: %v", err)
		}
	}
	for _, f := range []struct {
		name string
		mode os.FileMode
	}{{CAFile, 0o644}, {CertFile, 0o644}, {KeyFile, 0o600}} {
		fi, err := os.Stat(filepath.Join(dir, f.name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != f.mode {
			t.Errorf("%s mode = %v, want %v", f.name, fi.Mode().Perm(), f.mode)
		}
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)); err != nil {
		t.Errorf("loading the written pair: %v", err)
	}
}

func parseCert(t *testing.T, pemBytes []byte) *x509.Certificate {
	t.Helper()
	block, rest := pem.Decode(pemBytes)
	if block == nil || block.Type != "CERTIFICATE" || len(rest) != 0 {
		t.Fatalf("want exactly one CERTIFICATE PEM block")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("parsing certificate: %v", err)
	}
	return c
}

func TestVerify(t *testing.T) {
	b, err := New(Options{DNSNames: []string{"svc.ns.svc", "svc.ns.svc.cluster.local"}})
	if err != nil {
		t.Fatal(err)
	}
	other, err := New(Options{DNSNames: []string{"svc.ns.svc"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(b.CACert, b.Cert, "svc.ns.svc", "svc.ns.svc.cluster.local"); err != nil {
		t.Errorf("its own CA and names: %v", err)
	}
	if err := Verify(b.CACert, b.Cert, "svc.ns.svc", "elsewhere.example"); err == nil || !strings.Contains(err.Error(), "elsewhere.example") {
		t.Errorf("a name it lacks: %v, want an error naming it", err)
	}
	if err := Verify(other.CACert, b.Cert, "svc.ns.svc"); err == nil {
		t.Error("another CA verified the certificate")
	}
	if err := Verify([]byte("no pem"), b.Cert, "svc.ns.svc"); err == nil {
		t.Error("a CA bundle without PEM was accepted")
	}
	if err := Verify(b.CACert, []byte("no pem"), "svc.ns.svc"); err == nil {
		t.Error("a serving certificate without PEM was accepted")
	}
}
