// Command storm measures init-fetch, the built binary, under two kinds of
// stress, all on loopback.
//
// The storm (the default): N init-fetch processes start at once, as the
// init containers of a large rollout do, against the fake Secrets Manager
// (internal/smfake) capped at R GetSecretValue calls a second, answering
// ThrottlingException over it as AWS does. It prints how many succeeded, the
// calls the fake saw, the amplification (calls per process; 1 is ideal) and
// the wall time against the ideal, N/R seconds less the first second's
// burst. With --cut-every K, every K-th answer is cut off halfway through
// its body, as a connection dropped under load is.
//
//	go run ./hack/storm --init-fetch bin/init-fetch --n 200 --rate 50
//
// A huge answer (--huge-bytes B): one init-fetch process against an endpoint
// that answers GetSecretValue with B bytes of SecretString (or, with
// --huge-status 400, a ThrottlingException whose message is B bytes long). It
// prints how the process ended, the size of its stderr, and its peak RSS
// (the kernel's ru_maxrss, the figure /usr/bin/time -v calls "Maximum
// resident set size").
//
//	go run ./hack/storm --init-fetch bin/init-fetch --huge-bytes 100000000
//
// The sidecar storm (--sidecars N): N refresh sidecars (the refresh
// package's Refresher in this process, each with its own directory and SDK
// clients) start at once, as after a rollout or a node drain, each polling
// --secrets secrets every --interval against the fake capped at --rate calls
// a second for DescribeSecret and GetSecretValue together (a scaled-down
// account quota). After the restart and a steady state, the quota drops to
// --burst-rate for --burst-for, as when another consumer spends it, then
// comes back. It prints the calls and throttling of each phase, second by
// second as the fake saw them, the calls by API and result as the
// sidecars counted them, and whether every pod kept every file (read every
// second) and ended with a rotation made midway. --naive polls as the
// sidecar did before the first poll was spread and the interval stretched.
//
//	go run ./hack/storm --sidecars 300 --secrets 3 --interval 15s --rate 100 --burst-rate 20
//
// Every server it starts listens on 127.0.0.1 and is stopped before it
// returns; every process it starts is its own child, waited for. hack/storm.sh
// builds init-fetch and runs both.
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

type config struct {
	initFetch  string
	n          int
	rate       float64
	burst      int
	timeout    time.Duration
	hugeBytes  int64
	hugeStatus int
	cutEvery   int
	keep       bool
	sidecars   sidecarConfig
}

func main() {
	var c config
	flag.StringVar(&c.initFetch, "init-fetch", "", "path of the built init-fetch binary (required)")
	flag.IntVar(&c.n, "n", 200, "storm: init-fetch processes started at once")
	flag.Float64Var(&c.rate, "rate", 50, "storm: GetSecretValue calls a second the fake allows")
	flag.IntVar(&c.burst, "burst", 0, "storm: calls the fake allows at once before the rate applies (0: one second's worth)")
	flag.DurationVar(&c.timeout, "timeout", 2*time.Minute, "init-fetch --timeout (its default is 2m, as in a pod)")
	flag.Int64Var(&c.hugeBytes, "huge-bytes", 0, "if set, measure one process against an answer of this many bytes instead of the storm")
	flag.IntVar(&c.hugeStatus, "huge-status", 200, "huge answer: 200 (a SecretString) or 400 (a ThrottlingException message)")
	flag.IntVar(&c.cutEvery, "cut-every", 0, "storm: cut every K-th answer mid-body, as a dropped connection does (0: never)")
	flag.BoolVar(&c.keep, "keep", false, "keep the work directory (the processes' stderr) and print its path")
	flag.IntVar(&c.sidecars.n, "sidecars", 0, "if set, run the sidecar storm with this many refresh sidecars instead (--rate is then the account's quota for DescribeSecret and GetSecretValue together)")
	flag.IntVar(&c.sidecars.secrets, "secrets", 3, "sidecar storm: secrets per pod")
	flag.DurationVar(&c.sidecars.interval, "interval", 15*time.Second, "sidecar storm: the refresh interval")
	flag.Float64Var(&c.sidecars.burstRate, "burst-rate", 20, "sidecar storm: the quota while another consumer spends it")
	flag.DurationVar(&c.sidecars.burstFor, "burst-for", 15*time.Second, "sidecar storm: how long the quota stays at --burst-rate")
	flag.DurationVar(&c.sidecars.steadyFor, "steady-for", 30*time.Second, "sidecar storm: the steady state between the restart and the burst")
	flag.BoolVar(&c.sidecars.naive, "naive", false, "sidecar storm: poll as before the spread and the stretch (first poll an interval after the start, never stretched), for comparison")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "storm:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config) error {
	if c.initFetch == "" && c.sidecars.n == 0 {
		return fmt.Errorf("--init-fetch is required: the path of a built init-fetch (go build -o bin/init-fetch ./cmd/init-fetch)")
	}
	if _, err := os.Stat(c.initFetch); err != nil && c.sidecars.n == 0 {
		return fmt.Errorf("--init-fetch: %w", err)
	}
	if c.sidecars.n > 0 {
		if c.rate <= 0 || c.sidecars.secrets < 1 || c.sidecars.interval <= 0 || c.sidecars.burstRate <= 0 {
			return fmt.Errorf("the sidecar storm needs a positive --rate, --secrets, --interval and --burst-rate")
		}
		c.sidecars.rate = c.rate
		return sidecarStorm(ctx, c.sidecars, os.Stdout)
	}
	if c.hugeBytes > 0 {
		if c.hugeStatus != 200 && c.hugeStatus != 400 {
			return fmt.Errorf("--huge-status is %d; it must be 200 or 400", c.hugeStatus)
		}
		return huge(ctx, c, os.Stdout)
	}
	if c.n < 1 || c.rate <= 0 {
		return fmt.Errorf("--n must be at least 1 and --rate positive (got %d and %g)", c.n, c.rate)
	}
	if c.burst <= 0 {
		c.burst = max(1, int(c.rate))
	}
	return storm(ctx, c, os.Stdout)
}
