// Command init-fetch is secretfetch's init container: it fetches the secrets
// of a plan from AWS Secrets Manager into a memory-backed directory, all of
// them or none. See internal/initfetch for the flags.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/secretfetch/secretfetch/internal/initfetch"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := initfetch.Run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	if err != nil {
		// Run has logged why and written the termination message. The
		// exit code is 1, or plan.RestartExitCode when the refresh sidecar
		// asks for the pod's containers to restart.
		os.Exit(initfetch.ExitCode(err))
	}
}
