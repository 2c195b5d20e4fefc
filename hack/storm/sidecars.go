package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/secretfetch/secretfetch/internal/fetch"
	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/refresh"
	"github.com/secretfetch/secretfetch/internal/smfake"
	"github.com/secretfetch/secretfetch/internal/tmpfs"
)

// sidecarConfig is the sidecar storm: N refresh sidecars (the refresh
// package's Refresher, in this process, each over its own directory and SDK
// clients) started at once, as after a rollout or a node drain, polling S
// secrets every interval against the fake capped at a scaled-down account
// quota shared by DescribeSecret and GetSecretValue. Midway, the quota drops
// to burstRate for burstFor (another consumer spends it), then comes back.
type sidecarConfig struct {
	n, secrets          int
	interval            time.Duration
	rate, burstRate     float64
	burstFor, steadyFor time.Duration
	// naive polls as the sidecar did before the spread and the stretch: the
	// first poll an interval (±10%) after the start, and no stretch.
	naive bool
}

// second counts what the fake saw in one second of the run.
type second struct{ ok, throttled atomic.Int64 }

// timeline is the fake's answers, second by second.
type timeline struct {
	start time.Time
	secs  []second
}

func (tl *timeline) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		i := int(time.Since(tl.start) / time.Second)
		if i < 0 || i >= len(tl.secs) {
			return
		}
		// Only the quota answers 400 here: no other fault is injected.
		if rec.status == http.StatusBadRequest {
			tl.secs[i].throttled.Add(1)
		} else {
			tl.secs[i].ok.Add(1)
		}
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) { s.status = code; s.ResponseWriter.WriteHeader(code) }

// pod is one sidecar's directory and what its files must hold.
type pod struct {
	dir   string
	d     *tmpfs.Dir
	plan  *plan.Plan
	calls *fetch.Calls
}

func sidecarStorm(ctx context.Context, c sidecarConfig, out io.Writer) error {
	fk := smfake.New()
	names := make([]string, c.secrets)
	values := map[string]string{}
	var seed []fetch.Result
	for i := range names {
		names[i] = fmt.Sprintf("storm/s%d", i)
		values[names[i]] = fmt.Sprintf("v1-of-%d", i)
		_, version, err := fk.CreateSecret(names[i], smfake.Value{String: values[names[i]]})
		if err != nil {
			return err
		}
		seed = append(seed, fetch.Result{Secret: plan.Secret{File: fmt.Sprintf("s%d", i), ID: names[i]}, VersionID: version})
	}
	// The account's quota, scaled down: DescribeSecret and GetSecretValue
	// share it, as they do in AWS.
	fk.LimitRate("", c.rate, max(1, int(c.rate)))

	restartPhase := 2 * c.interval
	burstAt := restartPhase + c.steadyFor
	total := burstAt + c.burstFor + 8*c.interval
	tl := &timeline{start: time.Now(), secs: make([]second, int(total/time.Second)+2)}
	url, stop, err := serve(tl.wrap(fk))
	if err != nil {
		return err
	}
	defer stop()

	work, done, err := workDir("storm-sidecars-", false, out)
	if err != nil {
		return err
	}
	defer done()
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(smfake.DefaultRegion),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(smfake.DefaultAccessKeyID, smfake.DefaultSecretAccessKey, "")))
	if err != nil {
		return err
	}
	clients := refresh.SDKClients(cfg, func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(url) })

	// Every pod's files as its init container left them.
	pods := make([]*pod, c.n)
	for i := range pods {
		dir := filepath.Join(work, fmt.Sprint(i))
		if err := os.Mkdir(dir, 0o700); err != nil {
			return err
		}
		d, err := tmpfs.OpenDir(dir)
		if err != nil {
			return err
		}
		defer d.Close()
		p := &plan.Plan{Version: plan.Version, Dir: dir, Region: smfake.DefaultRegion}
		var files []tmpfs.File
		for j, r := range seed {
			p.Secrets = append(p.Secrets, r.Secret)
			files = append(files, tmpfs.File{Name: r.Secret.File, Mode: 0o400, Data: []byte(values[names[j]])})
		}
		if err := d.WriteSet(tmpfs.Set{Files: files, State: refresh.NewState(seed)}); err != nil {
			return err
		}
		pods[i] = &pod{dir: dir, d: d, plan: p, calls: &fetch.Calls{}}
	}

	fmt.Fprintf(out, "sidecar storm: %d sidecars x %d secrets every %v (%.0f calls/s in steady state), quota %.0f calls/s; "+
		"at %v the quota drops to %.0f calls/s for %v; naive=%v\n",
		c.n, c.secrets, c.interval, float64(c.n*c.secrets)/c.interval.Seconds(), c.rate, burstAt, c.burstRate, c.burstFor, c.naive)

	// The timeline starts with the sidecars, not with the set-up of their
	// directories, so that its phases line up with the quota's changes.
	tl.start = time.Now()
	rctx, cancel := context.WithTimeout(ctx, total)
	defer cancel()
	var wg sync.WaitGroup
	var missing atomic.Int64 // reads of a pod's file that failed during the run
	for _, pd := range pods {
		o := refresh.Options{Interval: c.interval, Clients: clients, Calls: pd.calls, Log: slog.New(slog.DiscardHandler)}
		if c.naive {
			// Before: throttled calls retried within the poll, as in the
			// init container.
			o.NewBackOff, o.NewThrottleBackOff = fetch.DefaultBackOff, fetch.DefaultThrottleBackOff
		}
		r, err := refresh.New(pd.plan, pd.d, o)
		if err != nil {
			return err
		}
		wg.Go(func() {
			if c.naive {
				naivePoll(rctx, r, c.interval)
				return
			}
			r.Run(rctx)
		})
	}
	// The quota's burst, and a rotation in the steady phase that every pod
	// must pick up.
	rotated := names[0]
	wg.Go(func() {
		if fetch.Sleep(rctx, restartPhase+c.steadyFor/2) != nil {
			return
		}
		if _, err := fk.PutSecretValue(rotated, smfake.Value{String: "v2-of-0"}); err == nil {
			values[rotated] = "v2-of-0"
		}
	})
	wg.Go(func() {
		if fetch.Sleep(rctx, burstAt) != nil {
			return
		}
		fk.LimitRate("", c.burstRate, max(1, int(c.burstRate)))
		if fetch.Sleep(rctx, c.burstFor) != nil {
			return
		}
		fk.LimitRate("", c.rate, max(1, int(c.rate)))
	})
	// Every second, every pod's files must be readable: a poll that fails
	// keeps them.
	wg.Go(func() {
		for fetch.Sleep(rctx, time.Second) == nil {
			for _, pd := range pods {
				for _, s := range pd.plan.Secrets {
					if _, err := os.ReadFile(filepath.Join(pd.dir, s.File)); err != nil {
						missing.Add(1)
					}
				}
			}
		}
	})
	wg.Wait()

	// Every pod ends with every file, the rotated one at its new value.
	current := 0
	for _, pd := range pods {
		ok := true
		for j, s := range pd.plan.Secrets {
			b, err := os.ReadFile(filepath.Join(pd.dir, s.File))
			if err != nil || string(b) != values[names[j]] {
				ok = false
			}
		}
		if ok {
			current++
		}
	}

	phase := func(name string, from, to time.Duration) {
		var ok, thr, peak int64
		var throttledSecs int
		lo, hi := int(from/time.Second), min(int(to/time.Second), len(tl.secs))
		for i := lo; i < hi; i++ {
			o, t := tl.secs[i].ok.Load(), tl.secs[i].throttled.Load()
			ok, thr, peak = ok+o, thr+t, max(peak, o+t)
			if t > 0 {
				throttledSecs++
			}
		}
		secs := float64(max(hi-lo, 1))
		fmt.Fprintf(out, "  %-24s %4.0f-%4.0fs: %6.1f calls/s (peak %4d in one second), %5.1f throttled/s, throttled in %d of %d seconds\n",
			name, from.Seconds(), to.Seconds(), float64(ok+thr)/secs, peak, float64(thr)/secs, throttledSecs, hi-lo)
	}
	phase("mass restart", 0, restartPhase)
	phase("steady state", restartPhase, burstAt)
	phase("quota burst", burstAt, burstAt+c.burstFor)
	back := burstAt + c.burstFor
	phase("recovery, interval 1", back, back+c.interval)
	phase("recovery, intervals 2-4", back+c.interval, back+4*c.interval)
	phase("recovery, intervals 5-8", back+4*c.interval, total)
	var all fetch.Calls
	for _, pd := range pods {
		for _, cc := range pd.calls.Counts() {
			for range cc.Count {
				all.Add(cc.API, cc.Region, cc.Result)
			}
		}
	}
	fmt.Fprintf(out, "  calls by API and result: %v\n", all.Counts())
	fmt.Fprintf(out, "  files: %d of %d pods hold every file at its current value; %d failed reads of a file during the run\n",
		current, c.n, missing.Load())
	if current != c.n || missing.Load() > 0 {
		return errors.New("a pod lost or missed its files")
	}
	return nil
}

// naivePoll is the loop of the sidecar before the spread and the stretch:
// every interval ±10% from the start, throttled or not.
func naivePoll(ctx context.Context, r *refresh.Refresher, interval time.Duration) {
	for {
		wait := time.Duration(float64(interval) * (0.9 + 0.2*rand.Float64()))
		if fetch.Sleep(ctx, wait) != nil {
			return
		}
		r.Poll(ctx)
	}
}
