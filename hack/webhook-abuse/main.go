// Command webhook-abuse starts a built webhook binary on 127.0.0.1 and
// attacks it as a client with nothing but network access could: connections
// that send a large body all but its last byte and then stall (slow bodies),
// and many HTTP/2 streams on one connection doing the same. While the attack
// holds, it sends a normal review every --probe-every over a fresh
// connection. It prints the webhook's peak RSS (VmHWM from /proc) and the
// normal reviews' latency, then stops the webhook and exits.
//
//	go build -o /tmp/webhook ./cmd/webhook
//	go run ./hack/webhook-abuse --binary /tmp/webhook
//
// It listens on and connects to 127.0.0.1 only. Everything it starts, it
// stops: the attack ends after --hold, and the webhook gets SIGTERM, then
// SIGKILL 10 s later. A server that does not negotiate HTTP/2 gets the
// streams as as many HTTP/1.1 connections instead.
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
	flag.StringVar(&c.binary, "binary", "", "the webhook binary to start (required)")
	flag.IntVar(&c.slow, "slow", 30, "connections that send a body all but its last byte, then stall")
	flag.IntVar(&c.streams, "streams", 40, "HTTP/2 streams on one connection doing the same (HTTP/1.1 connections if h2 is refused)")
	flag.IntVar(&c.bodyBytes, "body-bytes", 7<<20, "declared length of each abusive body; all but one byte are sent")
	flag.DurationVar(&c.hold, "hold", 15*time.Second, "how long the attack lasts; a client cut off by the server reconnects until then")
	flag.DurationVar(&c.probeEvery, "probe-every", 500*time.Millisecond, "interval between normal reviews during the attack")
	flag.DurationVar(&c.reconnectPause, "reconnect-pause", 0, "how long a client cut off by the server waits before it tries again")
	flag.StringVar(&c.gogc, "gogc", "400", "GOGC of the webhook (manifests/base/deployment.yaml sets 400; GOMEMLIMIT is 200MiB as there)")
	flag.IntVar(&c.crafted, "crafted", 0, "clients that send, back to back, a review of an opted-in pod of 9,990 empty containers (just under the JSON object cap)")
	flag.StringVar(&c.reviewFile, "review", "hack/testdata/admissionreview.json", "the normal AdmissionReview")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, c, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "webhook-abuse:", err)
		os.Exit(1)
	}
}
