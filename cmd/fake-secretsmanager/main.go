// Command fake-secretsmanager serves secretfetch's fake of AWS Secrets
// Manager (and of STS AssumeRoleWithWebIdentity) for local runs and the
// end-to-end tests, as a host process or a pod. It is a test tool: it
// checks SigV4 like AWS but holds secrets in memory only.
//
//	fake-secretsmanager --listen :4566 --admin --seed seed.json
//
// Point clients at it with AWS_ENDPOINT_URL_SECRETS_MANAGER (and
// AWS_ENDPOINT_URL_STS for IRSA). See --help for the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr, logger, nil)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		logger.Error("fake-secretsmanager failed", slog.String("error", err.Error()))
		os.Exit(1)
	}
}
