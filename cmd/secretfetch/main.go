// Command secretfetch checks manifests against secretfetch with no cluster:
// `secretfetch render -f deploy.yaml` prints what the webhook (or the
// policy) would do to each opted-in pod template, or why it would deny it.
// See internal/offline.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/secretfetch/secretfetch/internal/offline"
)

func main() {
	err := offline.Run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	if err != nil {
		// The problems of a denied template are on stderr already.
		if !errors.Is(err, offline.ErrDenied) {
			fmt.Fprintln(os.Stderr, "secretfetch:", err)
		}
		os.Exit(1)
	}
}
