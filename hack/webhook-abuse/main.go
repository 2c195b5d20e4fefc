// Command webhook-abuse starts a built webhook binary on 127.0.0.1 and
// attacks it as a client with nothing but network access could: connections
// that send a large body all but its last byte and then stall (slow bodies),
// and many HTTP/2 streams on one connection doing the same. While the attack
// holds, it sends a normal review every --probe-every over a fresh
// connection. It can add connections that send most of 1 MiB of headers and
// never end them (--headers), and clients that send crafted reviews, few
// bytes that decode into large structs (--crafted). It prints the webhook's
// peak RSS (VmHWM from /proc) and the normal reviews' latency, then stops
// the webhook and exits. With --memory-limit-mib the webhook runs in a
// memory cgroup of that size, made under this process's own, as in its
// Deployment, and the tool says whether it was OOM-killed.
//
//	go build -o /tmp/webhook ./cmd/webhook
//	go run ./hack/webhook-abuse --binary /tmp/webhook
//	go run ./hack/webhook-abuse --binary /tmp/webhook --headers 100 --memory-limit-mib 256
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
	flag.StringVar(&c.gogc, "gogc", "100", "GOGC of the webhook (manifests/base/deployment.yaml keeps Go's default, 100; GOMEMLIMIT is 200MiB as there)")
	flag.IntVar(&c.crafted, "crafted", 0, "clients that send, back to back, the review --crafted-review names")
	flag.StringVar(&c.craftedKind, "crafted-review", "empty-containers",
		"empty-containers (9,990 of them, under the first round's object cap), zeros (3.5 MiB of 0s in containers) or at-caps (the costliest review the decode bounds admit)")
	flag.IntVar(&c.headers, "headers", 0, "connections that each send --header-bytes of headers, never ended, and wait")
	flag.IntVar(&c.headerBytes, "header-bytes", 1<<20-8<<10, "bytes of headers each --headers connection sends (default: just under net/http's default 1 MiB limit)")
	flag.IntVar(&c.headerLine, "header-line-bytes", 1000, "bytes of each header line of the --headers connections")
	flag.Int64Var(&c.memoryLimitMiB, "memory-limit-mib", 0, "run the webhook in a memory cgroup of this many MiB (the Deployment's limit is 256; needs root); 0 for none")
	flag.StringVar(&c.reviewFile, "review", "hack/testdata/admissionreview.json", "the normal AdmissionReview")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, c, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "webhook-abuse:", err)
		os.Exit(1)
	}
}
