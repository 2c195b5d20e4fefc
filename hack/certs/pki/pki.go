// Package pki makes a throwaway CA and a serving certificate signed by it, for
// the webhook's TLS in local clusters, tests and benchmarks. Real deployments
// use cert-manager or their own PKI (see manifests/overlays).
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// DefaultValidity is how long the CA and the serving certificate are valid.
const DefaultValidity = 365 * 24 * time.Hour

// File names written by Bundle.WriteDir; they are the names that
// controller-runtime's webhook server reads from --cert-dir and that the
// ca-bundle overlay's secretGenerator expects.
const (
	CAFile   = "ca.crt"
	CertFile = "tls.crt"
	KeyFile  = "tls.key"
)

// Options says what the serving certificate is for.
type Options struct {
	// DNSNames and IPs are the serving certificate's subject alternative
	// names. At least one of them is required.
	DNSNames []string
	IPs      []net.IP
	// Validity defaults to DefaultValidity.
	Validity time.Duration
	// Now defaults to time.Now; tests fix it.
	Now func() time.Time
}

// Bundle holds PEM-encoded certificates and the serving key.
type Bundle struct {
	CACert []byte // the CA certificate ("CERTIFICATE")
	Cert   []byte // the serving certificate ("CERTIFICATE")
	Key    []byte // the serving certificate's key ("PRIVATE KEY", PKCS #8)
}

// New makes a CA and a serving certificate signed by it, both ECDSA P-256.
// The CA's key is discarded: nothing else is ever signed with it, so a
// leaked bundle cannot be used to mint more certificates.
func New(opts Options) (*Bundle, error) {
	if len(opts.DNSNames) == 0 && len(opts.IPs) == 0 {
		return nil, errors.New("making certificates: no DNS name or IP address for the serving certificate")
	}
	validity := opts.Validity
	if validity <= 0 {
		validity = DefaultValidity
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	// Back-date a little, so a node whose clock runs behind accepts them.
	notBefore := now().Add(-time.Hour).UTC()
	notAfter := notBefore.Add(validity)

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the CA key: %w", err)
	}
	caSerial, err := serial()
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          caSerial,
		Subject:               pkix.Name{CommonName: "secretfetch-webhook-ca"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("signing the CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("parsing the CA certificate: %w", err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the serving key: %w", err)
	}
	leafSerial, err := serial()
	if err != nil {
		return nil, err
	}
	cn := "secretfetch-webhook"
	if len(opts.DNSNames) > 0 {
		cn = opts.DNSNames[0]
	}
	leafTmpl := &x509.Certificate{
		SerialNumber:          leafSerial,
		Subject:               pkix.Name{CommonName: cn},
		DNSNames:              opts.DNSNames,
		IPAddresses:           opts.IPs,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("signing the serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding the serving key: %w", err)
	}
	return &Bundle{
		CACert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		Cert:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		Key:    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// WriteDir writes ca.crt, tls.crt and tls.key into dir, creating it. The key
// is written with mode 0600.
func (b *Bundle) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{CAFile, b.CACert, 0o644},
		{CertFile, b.Cert, 0o644},
		{KeyFile, b.Key, 0o600},
	} {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
		// WriteFile keeps the mode of a file that already exists.
		if err := os.Chmod(p, f.mode); err != nil {
			return fmt.Errorf("setting the mode of %s: %w", p, err)
		}
	}
	return nil
}

func serial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generating a serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// Verify checks what the API server does with a webhook's TLS: it trusts
// the PEM certificates of caPEM (the caBundle), and verifies the serving
// certificate in certPEM for each DNS name. The error names every name that
// fails.
func Verify(caPEM, certPEM []byte, dnsNames ...string) error {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return errors.New("the CA bundle holds no PEM certificate")
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return errors.New("the serving certificate holds no PEM block")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("parsing the serving certificate: %w", err)
	}
	var errs []error
	for _, dns := range dnsNames {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: dns, Roots: roots}); err != nil {
			errs = append(errs, fmt.Errorf("the serving certificate does not verify against the CA bundle for %s: %w", dns, err))
		}
	}
	return errors.Join(errs...)
}
