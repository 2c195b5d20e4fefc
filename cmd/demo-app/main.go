// Command demo-app is secretfetch's demonstration workload. It lists the
// files in a directory (by default /var/run/secrets/app, where secretfetch
// mounts the secrets) with their mode, owner, size and value, says whether the
// directory is memory-backed (tmpfs or ramfs, from /proc/mounts) and
// read-only, and then sleeps until SIGTERM so that its pod stays Running.
//
// It is a demo, and it prints demo values. A real application must never
// print or log a secret. To keep values out of container logs even here, the
// long-running mode lists names, modes, owners, sizes and a SHA-256 prefix
// but no values; the one-shot mode (--once), which is meant for
// `kubectl exec`, prints the values to whoever ran it:
//
//	demo-app [--dir DIR] [--env NAME]... [--once] [--json] [--values auto|show|hide]
//	demo-app [--dir DIR] --sample DURATION
//	demo-app [...] --notify-listen 127.0.0.1:PORT
//
// --env lists an environment variable (secretfetch.io/env-<name> delivers
// them) the same way: name, size and hash, and the value only with --once;
// with --env-pid 1, from the environment the app's own process started
// with, which a restart in place renews.
// --json prints the same listing as one JSON object (values base64-encoded),
// for tests.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	var o options
	flag.StringVar(&o.dir, "dir", "/var/run/secrets/app", "directory to list")
	flag.BoolVar(&o.once, "once", false, "list once and exit, instead of sleeping until SIGTERM")
	flag.BoolVar(&o.json, "json", false, "print the listing as JSON")
	flag.StringVar(&o.values, "values", valuesAuto, "print file values: auto (only with --once), show, or hide")
	notifyAddr := flag.String("notify-listen", "", "also serve this loopback address and log each request (the refresh sidecar's notifications) as one line")
	sampleFor := flag.Duration("sample", 0, "instead of listing, read the set through ..data again and again for this long, and print each distinct set's SHA-256s as JSON")
	flag.Var(&o.env, "env", "an environment variable to list next to the files, like a file; repeatable")
	envPID := flag.Int("env-pid", 0, "list --env from the environment this process started with (/proc/PID/environ), not this one's")
	flag.Parse()
	if *envPID > 0 {
		lookup, err := processEnv("/proc", *envPID)
		if err != nil {
			fmt.Fprintln(os.Stderr, "demo-app:", err)
			os.Exit(1)
		}
		o.lookup = lookup
	}
	if *sampleFor > 0 {
		if err := sample(o.dir, *sampleFor, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "demo-app:", err)
			os.Exit(1)
		}
		return
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *notifyAddr != "" {
		go func() {
			if err := listenNotify(ctx, *notifyAddr, os.Stdout); err != nil {
				fmt.Fprintln(os.Stderr, "demo-app:", err)
				os.Exit(1)
			}
		}()
	}
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo-app:", err)
		os.Exit(1)
	}
}
