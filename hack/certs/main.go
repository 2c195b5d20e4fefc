// Command certs writes a throwaway CA (ca.crt) and a serving certificate
// signed by it (tls.crt, tls.key) for the webhook, ECDSA P-256, valid one
// year:
//
//	go run ./hack/certs --out DIR [--dns NAME,...] [--ip 127.0.0.1,...]
//
// DIR then serves as the webhook's --cert-dir, or as the ca-bundle overlay's
// certificate files.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/secretfetch/secretfetch/hack/certs/pki"
)

type options struct {
	out  string
	dns  string
	ip   string
	days int
}

func main() {
	var o options
	flag.StringVar(&o.out, "out", "", "directory to write ca.crt, tls.crt and tls.key into (required)")
	flag.StringVar(&o.dns, "dns", "secretfetch-webhook.secretfetch-system.svc,secretfetch-webhook.secretfetch-system.svc.cluster.local",
		"comma-separated DNS names of the serving certificate")
	flag.StringVar(&o.ip, "ip", "", "comma-separated IP addresses of the serving certificate, e.g. 127.0.0.1")
	flag.IntVar(&o.days, "days", 365, "validity in days")
	flag.Parse()
	if err := run(o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "certs:", err)
		os.Exit(1)
	}
}

func run(o options, stdout io.Writer) error {
	if o.out == "" {
		return fmt.Errorf("--out is required")
	}
	if o.days <= 0 {
		return fmt.Errorf("--days must be positive, got %d", o.days)
	}
	opts := pki.Options{DNSNames: split(o.dns), Validity: time.Duration(o.days) * 24 * time.Hour}
	for _, s := range split(o.ip) {
		ip := net.ParseIP(s)
		if ip == nil {
			return fmt.Errorf("--ip: %q is not an IP address", s)
		}
		opts.IPs = append(opts.IPs, ip)
	}
	b, err := pki.New(opts)
	if err != nil {
		return err
	}
	if err := b.WriteDir(o.out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s, %s and %s to %s\n", pki.CAFile, pki.CertFile, pki.KeyFile, o.out)
	return nil
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
