// Command webhook is the secretfetch mutating admission webhook. See
// internal/webhook for what it serves and internal/mutate for what it does.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/secretfetch/secretfetch/internal/webhook"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "webhook:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("webhook", flag.ContinueOnError)
	var cfg webhook.Config
	cfg.BindFlags(fs)
	var logOpts webhook.LogOptions
	logOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := logOpts.NewLogger(os.Stderr)
	if err != nil {
		return err
	}
	logf.SetLogger(log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return webhook.Run(logf.IntoContext(ctx, log), cfg)
}
