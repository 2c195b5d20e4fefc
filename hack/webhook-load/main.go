// Command webhook-load measures the secretfetch webhook over HTTPS: it sends
// one AdmissionReview (by default a realistic pod with 3 containers, 10
// secrets and IRSA settings) from many keep-alive connections for a fixed
// time, and prints requests per second and latency percentiles.
//
//	go run ./hack/webhook-load --url https://127.0.0.1:9443/mutate-v1-pod --ca ca.crt
//
// It only ever connects to loopback addresses: it refuses any other host, and
// checks every connection's peer address. hack/webhook-load.sh starts a
// local webhook and runs it.
//
// With --rate 0 (the default) each connection sends its next request as soon
// as the previous answer arrives (closed loop): that measures the maximum
// throughput, and latency then grows with the number of connections. With
// --rate R, requests start on a fixed schedule of R per second across the
// connections (open loop), and latency is measured from the scheduled start,
// so that a slow answer also counts against the requests queued behind it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	var c config
	flag.StringVar(&c.url, "url", "https://127.0.0.1:9443/mutate-v1-pod", "webhook URL; the host must be a loopback address")
	flag.StringVar(&c.caFile, "ca", "", "PEM CA bundle that signed the webhook's serving certificate (required)")
	flag.IntVar(&c.connections, "connections", 32, "concurrent keep-alive connections")
	flag.DurationVar(&c.duration, "duration", 20*time.Second, "how long to measure")
	flag.DurationVar(&c.warmup, "warmup", 2*time.Second, "how long to send before measuring (TLS handshakes, caches)")
	flag.Float64Var(&c.rate, "rate", 0, "requests per second across all connections; 0 sends as fast as answers come back")
	flag.IntVar(&c.serverPID, "server-pid", 0, "PID of the webhook on this machine, to report its CPU time per request (optional)")
	flag.StringVar(&c.reviewFile, "review", "hack/testdata/admissionreview.json", "AdmissionReview JSON to send")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, c, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "webhook-load:", err)
		os.Exit(1)
	}
}
