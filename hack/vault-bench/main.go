// Command vault-bench serves vault-k8s's admission handler (the Vault Agent
// Injector's Handler.Handle, at /mutate) over HTTPS on loopback, so that
// hack/webhook-load can measure it exactly as it measures secretfetch's
// webhook; hack/bench-vault.sh runs both, alternately.
//
//	vault-bench review --in hack/testdata/admissionreview.json > vault.json
//	vault-bench serve --listen 127.0.0.1:19444 --cert-dir CERTS --log FILE
//
// It is a module of its own, so that vault-k8s and its dependencies stay out
// of secretfetch's module: hack/bench-vault.sh points its go.mod at a
// vault-k8s checkout (VAULT_K8S_DIR) with go mod edit -replace.
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: vault-bench review|serve [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "review":
		err = review(os.Args[2:])
	case "serve":
		err = serve(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q; want review or serve", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vault-bench:", err)
		os.Exit(1)
	}
}

func review(args []string) error {
	fs := flag.NewFlagSet("review", flag.ExitOnError)
	in := fs.String("in", "hack/testdata/admissionreview.json", "secretfetch's AdmissionReview to derive vault-k8s's from")
	_ = fs.Parse(args)
	ours, err := os.ReadFile(*in)
	if err != nil {
		return err
	}
	out, err := vaultReview(ours)
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(out)
	return err
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:19444", "address to serve on; must be a loopback address")
	certDir := fs.String("cert-dir", "", "directory with tls.crt and tls.key (hack/certs writes them)")
	logFile := fs.String("log", os.DevNull, "file for the handler's log")
	health := fs.String("health", "127.0.0.1:19082", "plain-HTTP address of /health/ready")
	_ = fs.Parse(args)
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--listen %s: only loopback addresses are served", *listen)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(*certDir, "tls.crt"), filepath.Join(*certDir, "tls.key"))
	if err != nil {
		return fmt.Errorf("loading the serving certificate: %w", err)
	}
	lf, err := os.Create(*logFile)
	if err != nil {
		return err
	}
	defer lf.Close()

	// As subcommand/injector serves it: a mux with /mutate, TLS from the
	// certificate, and the server's default timeouts.
	h := newHandler(lf)
	mux := http.NewServeMux()
	mux.HandleFunc("/mutate", h.Handle)
	srv := &http.Server{
		Addr:              *listen,
		Handler:           mux,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		hm := http.NewServeMux()
		hm.HandleFunc("/health/ready", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
		_ = http.ListenAndServe(*health, hm)
	}()
	if err := srv.ListenAndServeTLS("", ""); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
