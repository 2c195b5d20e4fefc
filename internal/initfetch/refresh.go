package initfetch

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/secretfetch/secretfetch/internal/fetch"
	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/refresh"
	"github.com/secretfetch/secretfetch/internal/tmpfs"
)

// minRefreshInterval is the shortest interval init-fetch accepts itself; the
// webhook sets its own, stricter minimum (--min-refresh-interval).
const minRefreshInterval = time.Second

// refreshFlags turn init-fetch into the refresh sidecar.
type refreshFlags struct {
	interval time.Duration
	notify   string
}

func (r *refreshFlags) bind(fs *flag.FlagSet) {
	fs.DurationVar(&r.interval, "refresh-interval", 0,
		"refresh mode: keep the files current, polling every interval (with jitter) until stopped; 0 fetches once and exits")
	fs.StringVar(&r.notify, "refresh-notify", "",
		"refresh mode: POST the changed files and their versions (never a value) to this loopback URL after each swap")
}

func (r *refreshFlags) on() bool { return r.interval != 0 }

func (r *refreshFlags) check() error {
	if r.notify != "" && !r.on() {
		return errors.New("--refresh-notify needs --refresh-interval")
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
	return nil
}

// runRefresh is the refresh sidecar: the first fetch is the init
// container's; this keeps its files current until ctx ends (the pod stops).
func runRefresh(ctx context.Context, f *flags, p *plan.Plan, dir *tmpfs.Dir, getenv func(string) string, log *slog.Logger, st *settings) error {
	clients, err := refreshClients(ctx, getenv, st)
	if err != nil {
		return err
	}
	r, err := refresh.New(p, dir, refresh.Options{
		Interval:   f.refresh.interval,
		NotifyURL:  f.refresh.notify,
		Clients:    clients,
		NewBackOff: st.newBackOff,
		Log:        log,
	})
	if err != nil {
		return err
	}
	return r.Run(ctx)
}

// refreshClients are the clients of WithClients, which must have
// DescribeSecret too, or SDK clients with the pod named in the user agent.
func refreshClients(ctx context.Context, getenv func(string) string, st *settings) (refresh.ClientFunc, error) {
	if st.clients == nil {
		cfg, err := loadAWSConfig(ctx, getenv)
		if err != nil {
			return nil, err
		}
		return refresh.SDKClients(cfg), nil
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
func fetchClients(ctx context.Context, getenv func(string) string, st *settings) (fetch.ClientFunc, error) {
	if st.clients != nil {
		return st.clients, nil
	}
	cfg, err := loadAWSConfig(ctx, getenv)
	if err != nil {
		return nil, err
	}
	return fetch.SDKClients(cfg), nil
}
