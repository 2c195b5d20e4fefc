package initfetch

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/secretfetch/secretfetch/internal/clip"
	"github.com/secretfetch/secretfetch/internal/fetch"
	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/refresh"
	"github.com/secretfetch/secretfetch/internal/restart"
	"github.com/secretfetch/secretfetch/internal/tmpfs"
)

// minRefreshInterval is the shortest interval init-fetch accepts itself; the
// webhook sets its own, stricter minimum (--min-refresh-interval).
const minRefreshInterval = time.Second

// The defaults of the restart flags, the webhook's own defaults. The
// webhook always passes both.
const (
	defaultRestartWindow  = 10 * time.Minute
	defaultRestartSpacing = 15 * time.Minute
)

// refreshFlags turn init-fetch into the refresh sidecar.
type refreshFlags struct {
	interval       time.Duration
	notify         string
	restart        bool
	restartWindow  time.Duration
	restartSpacing time.Duration
}

func (r *refreshFlags) bind(fs *flag.FlagSet) {
	fs.DurationVar(&r.interval, "refresh-interval", 0,
		"refresh mode: keep the files current, polling every interval (with jitter) until stopped; 0 fetches once and exits")
	fs.StringVar(&r.notify, "refresh-notify", "",
		"refresh mode: POST the changed files and their versions (never a value) to this loopback URL after each swap")
	fs.BoolVar(&r.restart, "refresh-restart", false,
		fmt.Sprintf("refresh mode: on a new version of any secret (env-only ones too) that passes every check, exit with %d at this pod's turn, "+
			"which the pod's restartPolicyRules turn into a restart of all its containers", plan.RestartExitCode))
	fs.DurationVar(&r.restartWindow, "refresh-restart-window", defaultRestartWindow,
		"with --refresh-restart: spread the restarts of a workload's pods over this window, each pod at an offset from a hash of its namespace and name (0s: at once)")
	fs.DurationVar(&r.restartSpacing, "refresh-restart-spacing", defaultRestartSpacing,
		"with --refresh-restart: the least time between two restarts of this pod for a rotation")
}

func (r *refreshFlags) on() bool { return r.interval != 0 }

// check checks the refresh flags; set holds the flags given explicitly.
func (r *refreshFlags) check(set map[string]bool) error {
	if r.notify != "" && !r.on() {
		return errors.New("--refresh-notify needs --refresh-interval")
	}
	if r.restart && !r.on() {
		return errors.New("--refresh-restart needs --refresh-interval")
	}
	for _, name := range []string{"refresh-restart-window", "refresh-restart-spacing"} {
		if set[name] && !r.restart {
			return fmt.Errorf("--%s needs --refresh-restart", name)
		}
	}
	if !r.on() {
		return nil
	}
	if err := plan.ValidateRefreshInterval(r.interval, minRefreshInterval); err != nil {
		return fmt.Errorf("--refresh-interval: %w", err)
	}
	if r.notify != "" {
		if err := plan.ValidateNotifyURL(r.notify); err != nil {
			return fmt.Errorf("--refresh-notify: %w", err)
		}
	}
	if r.restart {
		if err := plan.ValidateRestartWindow(r.restartWindow); err != nil {
			return fmt.Errorf("--refresh-restart-window: %w", err)
		}
		if err := plan.ValidateRestartSpacing(r.restartSpacing); err != nil {
			return fmt.Errorf("--refresh-restart-spacing: %w", err)
		}
	}
	return nil
}

// runRefresh is the refresh sidecar: the first fetch is the init
// container's; this keeps its files, in files, current until ctx ends (the
// pod stops). With --refresh-restart it may end earlier, with a
// *restart.Error; the marker goes into root, the volume's root, which the
// init container leaves alone.
func runRefresh(ctx context.Context, f *flags, p *plan.Plan, root, files *tmpfs.Dir, getenv func(string) string, log *slog.Logger, st *settings) error {
	clients, err := refreshClients(ctx, p, getenv, st)
	if err != nil {
		return err
	}
	o := refresh.Options{
		Interval:   f.refresh.interval,
		NotifyURL:  f.refresh.notify,
		Clients:    clients,
		NewBackOff: st.newBackOff,
		Log:        log,
		Now:        st.now,
		Sleep:      st.sleep,
		// The sidecar's metric: its counts of calls, logged now and then.
		Calls:           &fetch.Calls{},
		OnFailover:      logFailover(log),
		OnBatchFallback: logBatchFallback(log),
	}
	if f.refresh.restart {
		now := time.Now
		if st.now != nil {
			now = st.now
		}
		o.Restart, err = restart.Open(root, restart.Options{
			Window:    f.refresh.restartWindow,
			Spacing:   f.refresh.restartSpacing,
			Namespace: getenv(plan.EnvPodNamespace),
			Name:      getenv(plan.EnvPodName),
			Log:       log,
		}, now())
		if err != nil {
			return err
		}
	}
	r, err := refresh.New(p, files, o)
	if err != nil {
		return err
	}
	return r.Run(ctx)
}

// restartMessagePrefix starts the termination message of a restart, which
// `kubectl describe pod` shows as the sidecar's last state.
const restartMessagePrefix = "restarted for rotation: "

// reportRestart logs why the pod restarts, in one line that a platform team
// can count and alert on, and writes the termination message. Neither holds
// a value: IDs, names and version IDs only.
func reportRestart(log *slog.Logger, path string, explicit bool, e *restart.Error) {
	log.Info(RestartLogMessage, "exitCode", plan.RestartExitCode, "rotations", e.Rotations, "omitted", e.Omitted,
		"since", e.Since, "offsetMs", e.Offset.Milliseconds(), "waitedMs", e.Waited.Milliseconds())
	msg := clip.Marked(restartMessagePrefix+e.IDs(len(e.Rotations)), MaxTerminationMessage, " ...")
	if err := writeTerminationLog(path, explicit, msg); err != nil {
		log.Error("could not write the termination message", "path", path, "error", fetch.ErrorText(err))
	}
}

// RestartLogMessage is the message of the log line that says why the
// refresh sidecar restarts the pod.
const RestartLogMessage = "restarting the pod for rotation"

// refreshClients are the clients of WithClients, which must have
// DescribeSecret too, or SDK clients with the pod named in the user agent.
func refreshClients(ctx context.Context, p *plan.Plan, getenv func(string) string, st *settings) (refresh.ClientFunc, error) {
	if st.clients == nil {
		clients, err := sdkClients(ctx, p, getenv)
		if err != nil {
			return nil, err
		}
		return func(region string) (refresh.API, error) {
			c, err := clients(region)
			if err != nil {
				return nil, err
			}
			api, ok := c.(refresh.API)
			if !ok {
				return nil, fmt.Errorf("the Secrets Manager client %T has no DescribeSecret", c)
			}
			return api, nil
		}, nil
	}
	return func(region string) (refresh.API, error) {
		c, err := st.clients(region)
		if err != nil {
			return nil, err
		}
		api, ok := c.(refresh.API)
		if !ok {
			return nil, fmt.Errorf("the Secrets Manager client %T has no DescribeSecret", c)
		}
		return api, nil
	}, nil
}

// fetchClients are the clients of WithClients, or SDK clients with the pod
// named in the user agent.
func fetchClients(ctx context.Context, p *plan.Plan, getenv func(string) string, st *settings) (fetch.ClientFunc, error) {
	if st.clients != nil {
		return st.clients, nil
	}
	return sdkClients(ctx, p, getenv)
}
