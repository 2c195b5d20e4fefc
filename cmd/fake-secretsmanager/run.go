package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/secretfetch/secretfetch/internal/smfake"
)

// options are the command's flags.
type options struct {
	listen          string
	region          string
	accountID       string
	accessKeyID     string
	secretAccessKey string
	seedFile        string
	seedEnv         string
	admin           bool
	shutdownTimeout time.Duration
	replicaSuffixes bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("fake-secretsmanager", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:4566", "address to serve on; use :4566 in a pod")
	fs.StringVar(&o.region, "region", smfake.DefaultRegion, "region in ARNs; SigV4 scopes must name it")
	fs.StringVar(&o.accountID, "account-id", smfake.DefaultAccountID, "account ID in ARNs")
	fs.StringVar(&o.accessKeyID, "access-key-id", smfake.DefaultAccessKeyID, "static access key ID accepted")
	fs.StringVar(&o.secretAccessKey, "secret-access-key", smfake.DefaultSecretAccessKey, "static secret access key accepted")
	fs.StringVar(&o.seedFile, "seed", "", `JSON file of secrets to create: [{"name":"demo/db","string":"..."},{"name":"x","binary":"<base64>"}]`)
	fs.StringVar(&o.seedEnv, "seed-env", "SECRETFETCH_FAKE_SEED", "environment variable holding the same JSON inline (read when set; \"\" to ignore)")
	fs.BoolVar(&o.admin, "admin", false, "serve the admin API under /_fake/ (seed secrets, inject faults, read the request log)")
	fs.BoolVar(&o.replicaSuffixes, "replica-suffixes", false, "derive each secret's ARN suffix from its account and name, so that two fakes in two regions hold a secret and its replica (same ARN but the region)")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long to let requests finish on SIGTERM")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.accessKeyID == "" || o.secretAccessKey == "" {
		return options{}, errors.New("--access-key-id and --secret-access-key must not be empty")
	}
	return o, nil
}

// run serves the fake until ctx ends, then shuts down gracefully. ready, if
// not nil, learns the address once the fake listens.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, logger *slog.Logger, ready func(net.Addr)) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	opts := []smfake.Option{
		smfake.WithRegion(o.region),
		smfake.WithAccountID(o.accountID),
		smfake.WithCredentials(o.accessKeyID, o.secretAccessKey),
		smfake.WithLogger(logger),
	}
	if o.replicaSuffixes {
		opts = append(opts, smfake.WithReplicaSuffixes())
	}
	srv := smfake.New(opts...)
	seeded, err := seed(srv, o, getenv)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", o.listen, err)
	}
	logger.Info("fake-secretsmanager listening", slog.String("addr", ln.Addr().String()),
		slog.String("region", o.region), slog.String("account_id", o.accountID),
		slog.Bool("admin", o.admin), slog.Any("seeded", seeded))
	if ready != nil {
		ready(ln.Addr())
	}
	return serve(ctx, ln, srv.Handler(o.admin), o.shutdownTimeout, logger)
}

// seed creates the secrets of --seed and of the --seed-env variable, and
// returns their names (never their values) for the log.
func seed(srv *smfake.Server, o options, getenv func(string) string) ([]string, error) {
	var sources []struct{ what, data string }
	if o.seedFile != "" {
		data, err := os.ReadFile(o.seedFile)
		if err != nil {
			return nil, fmt.Errorf("reading the seed file: %w", err)
		}
		sources = append(sources, struct{ what, data string }{"seed file " + o.seedFile, string(data)})
	}
	if o.seedEnv != "" {
		if data := getenv(o.seedEnv); data != "" {
			sources = append(sources, struct{ what, data string }{"environment variable " + o.seedEnv, data})
		}
	}
	names := []string{}
	for _, src := range sources {
		entries, err := smfake.ParseSeed([]byte(src.data))
		if err != nil {
			return nil, fmt.Errorf("seeding from the %s: %w", src.what, err)
		}
		if err := srv.Seed(entries); err != nil {
			return nil, fmt.Errorf("seeding from the %s: %w", src.what, err)
		}
		for _, e := range entries {
			names = append(names, e.Name)
		}
	}
	return names, nil
}

func serve(ctx context.Context, ln net.Listener, h http.Handler, shutdownTimeout time.Duration, logger *slog.Logger) error {
	httpSrv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- httpSrv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	logger.Info("fake-secretsmanager shutting down")
	// A fresh context: the one that ended is the signal to stop, and the
	// in-flight requests still get their time.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := httpSrv.Shutdown(sctx); err != nil {
		// Requests held by injected latency can outlast the timeout.
		_ = httpSrv.Close()
		return fmt.Errorf("shutting down: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving: %w", err)
	}
	return nil
}
