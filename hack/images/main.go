// Command images builds secretfetch's container images without Docker: it
// compiles the static binaries and packs each into an image tarball with
// go-containerregistry, which `ctr -n k8s.io images import` loads.
//
//	go run ./hack/images --out DIR [--tag dev] [--arch amd64] [NAME...]
//
// NAME is webhook, init-fetch, fake-secretsmanager, demo-app, pause or
// e2e-irsa-webhook (the e2e suite's stand-in for the EKS webhook; all
// by default). Each image is secretfetch.local/NAME:TAG (pause is always
// secretfetch.local/pause:3.10), written to DIR/NAME.tar; DIR/images.json
// maps each name to its reference and digests. The images are reproducible:
// file and config times are fixed (SOURCE_DATE_EPOCH, else the Unix epoch).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

func main() {
	var o options
	flag.StringVar(&o.out, "out", "", "directory for the image tarballs and images.json (required)")
	flag.StringVar(&o.tag, "tag", "dev", "tag of the secretfetch images (pause is always "+pauseTag+")")
	flag.StringVar(&o.arch, "arch", runtime.GOARCH, "GOARCH of the binaries and the images")
	flag.StringVar(&o.caFile, "ca-certificates", "/etc/ssl/certs/ca-certificates.crt", "CA bundle to copy into the images, if it exists")
	flag.Parse()
	o.names = flag.Args()

	o.epoch = time.Unix(0, 0).UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "images: SOURCE_DATE_EPOCH=%q is not a number of seconds\n", s)
			os.Exit(2)
		}
		o.epoch = time.Unix(sec, 0).UTC()
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}
