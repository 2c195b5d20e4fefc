// Package refresh keeps the files of a plan current after init-fetch wrote
// them: each interval it asks Secrets Manager whether a secret's version
// moved, fetches only what moved, and swaps the new set in atomically.
//
//	read the state stored with the current set -> DescribeSecret per secret
//	(not for pinned versions) -> GetSecretValue by VersionId for the ones
//	that moved -> tmpfs.WriteSet (new files written, the rest kept) -> log
//	one line, POST to the notify URL
//
// Failures never cost the app its files: a failed poll or fetch, or a new
// version that fails its pattern or key, keeps the current files, and the
// next interval tries again. The decisions are made per request (the files
// cut from one secret and version), so files cut from one secret always
// switch together, from one version.
//
// It polls with DescribeSecret (a 40,000 req/s quota, against 10,000 for
// GetSecretValue). Where the pod's role may not call it, it falls back to
// GetSecretValue for that secret and compares version IDs, says once in the
// log which permission is missing, and asks DescribeSecret again after a few
// polls (IAM is eventually consistent), ever more rarely while it stays
// denied (maxDescribeSkip).
//
// A version ID is compared, stored and sent to the app, so one that does
// not have the shape of a version ID (fetch.CheckVersionID) is refused,
// from DescribeSecret as from GetSecretValue.
//
// With restart on change (Options.Restart), the pod's containers are
// restarted for a new version, so that apps that read a file once, or take
// the value as an environment variable, get it too:
//
//	env-only secrets are polled as well -> a new version is checked as the
//	init container would check it (pattern, key, rendering, and the env
//	file's rules for a variable) -> files swap as usual -> the rotation goes
//	to the restart.Scheduler -> when it is due, one more poll finds every
//	secret good -> the marker is written -> Run returns a *restart.Error
//
// A version that would fail the init container restarts nothing: the pod
// would not come back up. For the same reason a due restart waits while
// any polled secret fails.
package refresh

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cenkalti/backoff/v4"

	"github.com/secretfetch/secretfetch/internal/envfile"
	"github.com/secretfetch/secretfetch/internal/fetch"
	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/render"
	"github.com/secretfetch/secretfetch/internal/restart"
	"github.com/secretfetch/secretfetch/internal/tmpfs"
)

// API is what refresh calls, with the SDK client's exact signatures, so a
// test can stand in for the client without HTTP. *secretsmanager.Client
// satisfies it.
type API interface {
	fetch.API
	DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
}

// ClientFunc returns the client for one region ("" for the SDK's default).
type ClientFunc func(region string) (API, error)

// SDKClients returns a ClientFunc over fetch.SDKClients: the same clients,
// with the SDK's retryer off, that the first fetch uses.
func SDKClients(cfg aws.Config, extra ...func(*secretsmanager.Options)) ClientFunc {
	clients := fetch.SDKClients(cfg, extra...)
	return func(region string) (API, error) {
		c, err := clients(region)
		if err != nil {
			return nil, err
		}
		api, ok := c.(API)
		if !ok {
			return nil, fmt.Errorf("the Secrets Manager client %T has no DescribeSecret", c)
		}
		return api, nil
	}
}

// DescribeSecretPermission is the IAM action whose absence the fallback
// logs.
const DescribeSecretPermission = "secretsmanager:DescribeSecret"

// DefaultJitter spreads each wait by up to ±10%, so that the sidecars of
// pods started together do not poll in step.
const DefaultJitter = 0.1

// maxPollTimeout bounds one poll, retries included, for long intervals.
const maxPollTimeout = 2 * time.Minute

// maxDescribeSkip bounds how many polls go through GetSecretValue before
// DescribeSecret, once denied, is asked again. After the n-th denial in a
// row, the next min(2^(n-1), maxDescribeSkip) polls of the secret use
// GetSecretValue: a permission that IAM has not yet propagated is found
// within a poll or two, and one that is never granted costs one denied
// DescribeSecret every 33 polls, about 3% more calls.
const maxDescribeSkip = 32

// Options tune a Refresher.
type Options struct {
	// Interval is the time between polls; required.
	Interval time.Duration
	// Jitter is the fraction by which each wait is randomised; 0 means
	// DefaultJitter, and a negative value none.
	Jitter float64
	// Clients makes the client for a region; required.
	Clients ClientFunc
	// NewBackOff is the wait schedule between attempts, and
	// NewThrottleBackOff the one after a throttling answer, as in
	// fetch.Options: both nil means fetch.DefaultBackOff and
	// NoThrottleRetries. A poll's deadline ends the retries.
	NewBackOff         func() backoff.BackOff
	NewThrottleBackOff func() backoff.BackOff
	// PollTimeout bounds one poll, retries included; 0 means the interval,
	// at most 2 minutes.
	PollTimeout time.Duration
	// AttemptTimeout bounds one DescribeSecret or GetSecretValue attempt,
	// so that one stalled answer is retried instead of using up the poll;
	// 0 means fetch.DefaultAttemptTimeout, as for the first fetch.
	AttemptTimeout time.Duration
	// NotifyURL, when set, receives a POST after each swap (see Notify).
	// It must pass plan.ValidateNotifyURL.
	NotifyURL string
	// HTTPClient sends the notification; nil means one with a 5 s timeout,
	// no proxy and no redirects.
	HTTPClient *http.Client
	// Log receives one JSON line per swap and per failure; nil discards.
	Log *slog.Logger
	// Restart, when set, restarts the pod for a new version (see the
	// package comment): Run returns the *restart.Error of the Scheduler
	// once the restart is due.
	Restart *restart.Scheduler
	// Calls, when set, counts every call made (see fetch.Calls); Run logs
	// the counts now and then (CallsLogEvery), and a poll that was
	// throttled stretches the next wait (see Run).
	Calls *fetch.Calls
	// PrimaryAttempts, OnFailover and OnBatchFallback are as in
	// fetch.Options: with the plan's failover region, a poll whose
	// primary region does not answer reads the replica.
	PrimaryAttempts int
	OnFailover      func(fetch.Failover)
	OnBatchFallback func(fetch.BatchFallback)
	// Now and Sleep are the clock Run reads and waits with; nil means the
	// real one. Sleep returns an error, and only then, when ctx ended
	// first. Tests pass a clock that moves on without waiting.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// Refresher polls and swaps the files of one plan in one directory. Only
// one may run per directory.
type Refresher struct {
	plan   *plan.Plan
	dir    *tmpfs.Dir
	opts   Options
	groups []*group

	mu      sync.Mutex
	clients map[string]API

	// seen holds, by file name, the version last checked of an env-only
	// secret, which the state of the set does not follow: the state keeps
	// the version the env file holds, and so the app. Only Poll uses it.
	seen map[string]FileState

	// stretch multiplies the interval while polls are throttled (see
	// Run); only Run uses it.
	stretch int
}

// group is the files of the plan that one GetSecretValue call serves: the
// same secret ID, version selector and region.
type group struct {
	region  string
	id      string
	stage   string // the requested stage, AWSCURRENT by default
	pinned  bool   // a version-id: never polled
	secrets []plan.Secret
	// describeDenials counts the denials of DescribeSecret in a row for
	// this secret, and describeSkip the polls left before it is asked
	// again; until then the secret is polled through GetSecretValue. IAM
	// is eventually consistent: a denial may not last.
	describeDenials, describeSkip int
}

// New returns a Refresher for p's files in dir, which init-fetch has
// written.
func New(p *plan.Plan, dir *tmpfs.Dir, o Options) (*Refresher, error) {
	if o.Interval <= 0 {
		return nil, fmt.Errorf("the refresh interval is %v; it must be positive", o.Interval)
	}
	if o.Clients == nil {
		return nil, errors.New("no Secrets Manager clients")
	}
	if o.NotifyURL != "" {
		if err := plan.ValidateNotifyURL(o.NotifyURL); err != nil {
			return nil, fmt.Errorf("the notify URL: %w", err)
		}
	}
	if o.Jitter == 0 {
		o.Jitter = DefaultJitter
	}
	if o.NewBackOff == nil {
		o.NewBackOff = fetch.DefaultBackOff
		if o.NewThrottleBackOff == nil {
			o.NewThrottleBackOff = NoThrottleRetries
		}
	}
	if o.PollTimeout <= 0 {
		o.PollTimeout = min(o.Interval, maxPollTimeout)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil},
			// Only the checked loopback URL is ever asked: a redirect could
			// name any host, and the answer is reported, not followed.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = fetch.Sleep
	}
	if o.Calls == nil {
		o.Calls = &fetch.Calls{}
	}
	if o.Restart == nil {
		p = withFiles(p)
	}
	return &Refresher{plan: p, dir: dir, opts: o, groups: groups(p), clients: map[string]API{}, seen: map[string]FileState{}, stretch: 1}, nil
}

// withFiles is p with only the secrets that have a file. An env-only secret
// (plan.Secret.NoFile) is read by the kubelet once, when a container starts,
// so without a restart there is nothing to refresh. (With one, it is polled,
// and its value never becomes a file either.)
func withFiles(p *plan.Plan) *plan.Plan {
	noFile := func(s plan.Secret) bool { return s.NoFile }
	if !slices.ContainsFunc(p.Secrets, noFile) {
		return p
	}
	c := *p
	c.Secrets = slices.DeleteFunc(slices.Clone(p.Secrets), noFile)
	return &c
}

// groups splits the plan's secrets by request, in plan order, as fetch
// does (fetch.Groups).
func groups(p *plan.Plan) []*group {
	var out []*group
	for _, idx := range fetch.Groups(p) {
		s := p.Secrets[idx[0]]
		g := &group{region: p.RegionFor(s), id: s.ID, stage: s.VersionStage, pinned: s.VersionID != "", secrets: make([]plan.Secret, len(idx))}
		for j, i := range idx {
			g.secrets[j] = p.Secrets[i]
		}
		if g.stage == "" {
			g.stage = fetch.DefaultStage
		}
		out = append(out, g)
	}
	return out
}

// RestartedLogMessage is the message of the line that a refresh sidecar logs
// when it starts after the pod was restarted in place for a rotation: the
// secret IDs and version IDs of the last such restart, never a value.
// Alert on it, or on the sidecar's restart count.
const RestartedLogMessage = "the pod was restarted in place for rotation"

// Run polls every interval, with jitter, until ctx ends; then it returns
// nil. A failed poll is logged and never ends the loop. With
// Options.Restart, it also wakes when a pending restart is due, polls once
// more, and returns the *restart.Error to restart the pod with.
func (r *Refresher) Run(ctx context.Context) error {
	attrs := []any{"dir", r.plan.Dir, "intervalMs", r.opts.Interval.Milliseconds(),
		"secrets", len(r.plan.Secrets), "polled", r.polled(), "notify", r.opts.NotifyURL != "", "restart", r.opts.Restart != nil}
	if s := r.opts.Restart; s != nil {
		attrs = append(attrs, "restartWindowMs", s.Window().Milliseconds(), "restartSpacingMs", s.Spacing().Milliseconds(),
			"restartOffsetMs", s.Offset().Milliseconds())
		if due, ok := s.Due(); ok {
			attrs = append(attrs, "restartPendingSince", s.Marker().Pending.Since, "restartDue", due)
		}
	}
	r.opts.Log.Info("refreshing secrets", attrs...)
	if s := r.opts.Restart; s != nil && !s.Marker().LastRestart.IsZero() {
		// The kubelet removes every container for RestartAllContainers, the
		// sidecar's log of why with them: the sidecar that starts afterwards
		// says it again, from the marker, so that it stays in the log.
		m := s.Marker()
		r.opts.Log.Info(RestartedLogMessage, "lastRestart", m.LastRestart, "cause", m.Cause, "causeOmitted", m.CauseOmitted)
	}
	// The first poll comes at a random point of the first interval, not
	// an interval after the start: the pods of a rollout, a node drain or
	// a webhook coming back start together, and would otherwise poll
	// together for as long as they live (the jitter only widens the
	// crowd by ±10%).
	wait := r.firstWait()
	var lastCallsLog time.Time
	for first := true; ; first = false {
		if !first {
			wait = r.wait()
		}
		if s := r.opts.Restart; s != nil {
			if due, ok := s.Due(); ok {
				if until := due.Sub(r.opts.Now()); until > 0 && until < wait {
					wait = until
				}
			}
		}
		if r.opts.Sleep(ctx, wait) != nil {
			return nil
		}
		// The report's failures and swap are logged by Poll.
		throttledBefore := r.opts.Calls.Matching(throttledCall)
		rep, err := r.Poll(ctx)
		r.adjustStretch(r.opts.Calls.Matching(throttledCall) > throttledBefore)
		if now := r.opts.Now(); now.Sub(lastCallsLog) >= CallsLogEvery {
			r.opts.Log.Info(CallsLogMessage, "calls", r.opts.Calls.Counts())
			lastCallsLog = now
		}
		if r.opts.Restart == nil {
			continue
		}
		if rerr := r.restartIfDue(rep, err); rerr != nil {
			return rerr
		}
	}
}

// restartIfDue hands a poll's rotations to the Scheduler, and returns the
// *restart.Error when the restart is due and nothing holds it back.
func (r *Refresher) restartIfDue(rep Report, pollErr error) error {
	s, now := r.opts.Restart, r.opts.Now()
	if len(rep.Rotations) > 0 {
		if err := s.Observe(now, rep.Rotations); err != nil {
			r.opts.Log.Error("could not write the pending restart to the marker; it is kept in memory", "error", fetch.ErrorText(err))
		}
		due, _ := s.Due()
		r.opts.Log.Info("a new version passed every check; the pod restarts at its turn", "rotations", rep.Rotations,
			"restartDue", due, "restartOffsetMs", s.Offset().Milliseconds())
	}
	due, ok := s.Due()
	if !ok || now.Before(due) {
		return nil
	}
	// The init container fetches every secret again on the way back up, and
	// one that fails keeps the app from starting: while any fails now, the
	// restart waits.
	if pollErr != nil || len(rep.Failures) > 0 {
		ids := make([]string, 0, len(rep.Failures))
		for _, f := range rep.Failures {
			ids = append(ids, f.ID)
		}
		r.opts.Log.Warn("holding the restart: the init container would fail now; trying again next interval",
			"failing", ids, "swapFailed", pollErr != nil)
		return nil
	}
	rerr, err := s.Restart(now)
	if err != nil {
		r.opts.Log.Error("holding the restart: the restart marker could not be written, and without it the spacing could not be kept; trying again next interval",
			"error", fetch.ErrorText(err))
		return nil
	}
	return rerr
}

// polled counts the secrets that are polled: all but the pinned ones.
func (r *Refresher) polled() int {
	n := 0
	for _, g := range r.groups {
		if !g.pinned {
			n++
		}
	}
	return n
}

// wait is the interval, stretched while throttled, randomised by the
// jitter.
func (r *Refresher) wait() time.Duration {
	interval := r.opts.Interval * time.Duration(max(r.stretch, 1))
	if r.opts.Jitter < 0 {
		return interval
	}
	f := 1 + r.opts.Jitter*(2*rand.Float64()-1)
	return time.Duration(float64(interval) * f)
}

// firstWait is uniform over (0, interval]: spread over the interval, the
// first polls of pods started together come at the rate of steady state.
// Without jitter (a negative Jitter, for tests) it is the interval.
func (r *Refresher) firstWait() time.Duration {
	if r.opts.Jitter < 0 {
		return r.opts.Interval
	}
	return time.Duration((1 - rand.Float64()) * float64(r.opts.Interval))
}

// NoThrottleRetries is the sidecar's schedule after a throttling answer:
// none. A throttled poll keeps the files and ends (or moves to the failover
// region at once), and the next one comes a stretched interval later (see
// Run): retrying within the poll, as the init container must, spends the
// quota again while it is spent. hack/storm --sidecars measured it: with
// retries, the second after a quota came back saw three times the quota.
func NoThrottleRetries() backoff.BackOff { return &backoff.StopBackOff{} }

// MaxStretch bounds how far a throttled sidecar stretches its interval.
const MaxStretch = 8

// CallsLogEvery is how often the sidecar logs its counts of calls.
const CallsLogEvery = 15 * time.Minute

// CallsLogMessage is the message of the counts' line, the init
// container's too.
const CallsLogMessage = "aws calls"

// throttledCall picks the counted calls that were throttled.
func throttledCall(c fetch.CallCount) bool { return fetch.ThrottleCode(c.Result) }

// adjustStretch doubles the stretch of the interval after a poll that was
// throttled, up to MaxStretch, and halves it after one that was not: a
// throttled account gets fewer calls from this pod at once, and the pod
// returns to its interval in a few polls once the quota has room.
func (r *Refresher) adjustStretch(throttled bool) {
	prev := r.stretch
	if throttled {
		r.stretch = min(r.stretch*2, MaxStretch)
	} else {
		r.stretch = max(r.stretch/2, 1)
	}
	switch {
	case r.stretch > prev:
		r.opts.Log.Warn("throttled by Secrets Manager; stretching the refresh interval", "intervalMs",
			(r.opts.Interval * time.Duration(r.stretch)).Milliseconds(), "stretch", r.stretch)
	case r.stretch < prev && r.stretch == 1:
		r.opts.Log.Info("no longer throttled; back to the refresh interval", "intervalMs", r.opts.Interval.Milliseconds())
	}
}

// Change is one file switched to a new version.
type Change struct {
	File          string `json:"file"`
	ID            string `json:"id"`
	VersionID     string `json:"versionId"`
	PrevVersionID string `json:"previousVersionId,omitempty"`
}

// Failure is one secret that could not be checked or fetched this round;
// its files were kept.
type Failure struct {
	ID        string
	Files     []string
	Code      string
	VersionID string // the version the files hold
	Err       error
}

// Report says what one poll did.
type Report struct {
	// Unchanged, Changed and Pinned count requests (files cut from one
	// secret and version count once).
	Unchanged, Changed, Pinned int
	// Changes lists the files switched, when a swap was made.
	Changes  []Change
	Failures []Failure
	// Rotations lists, with Options.Restart, the requests seen at a new
	// version that passed every check, files and env-only secrets alike,
	// when the poll kept or swapped its set whole. A request whose previous
	// version is not known (no state) is not one: the app may hold the new
	// version already.
	Rotations []restart.Rotation
}

// decision is what one poll found for one group.
type decision struct {
	g       *group
	version string         // the version the files hold ("" if unknown)
	next    string         // the version the stage points at now
	results []fetch.Result // the new values, when next != version
	failure *Failure
}

// Poll checks every polled secret once and swaps in what changed. It
// returns an error only when the set could not be swapped; failures of
// single secrets are in the report (and the log), and their files kept.
func (r *Refresher) Poll(ctx context.Context) (Report, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.PollTimeout)
	defer cancel()

	state := r.readState()
	// An env-only secret's versions are compared with the one last
	// checked, not the one the app holds: the rotation was reported then.
	compare := state
	if len(r.seen) > 0 {
		compare = maps.Clone(state)
		maps.Copy(compare, r.seen)
	}
	decisions := make([]*decision, 0, len(r.groups))
	var rep Report
	for _, g := range r.groups {
		if g.pinned {
			rep.Pinned++
			continue
		}
		decisions = append(decisions, &decision{g: g, version: currentVersion(compare, g)})
	}
	one := decisions
	if r.plan.Batch {
		one = r.pollBatch(ctx, decisions)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, fetch.DefaultConcurrency)
	for _, d := range one {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			r.decide(ctx, d)
		})
	}
	wg.Wait()

	var files []tmpfs.File
	var rotations []restart.Rotation
	seen := map[string]FileState{}
	changed := map[string]bool{}
	for _, d := range decisions {
		switch {
		case d.failure != nil:
			rep.Failures = append(rep.Failures, *d.failure)
			r.opts.Log.Error("refresh failed; keeping the current files", "id", d.failure.ID, "files", d.failure.Files,
				"code", d.failure.Code, "versionId", d.failure.VersionID, "error", fetch.ErrorText(d.failure.Err))
		case d.results == nil:
			rep.Unchanged++
		default:
			rep.Changed++
			rot := restart.Rotation{ID: d.g.id, PreviousVersionID: d.version, VersionID: d.results[0].VersionID}
			for _, res := range d.results {
				if res.Secret.Env != "" {
					rot.Envs = append(rot.Envs, res.Secret.Env)
				}
				if res.Secret.NoFile {
					// Checked, and never written here: the init container
					// writes it into the env file after the restart.
					clear(res.Value)
					seen[res.Secret.File] = FileState{File: res.Secret.File, ID: res.Secret.ID, VersionID: res.VersionID}
					continue
				}
				rot.Files = append(rot.Files, res.Secret.File)
				files = append(files, tmpfs.File{Name: res.Secret.File, Mode: res.Secret.FileMode(), Data: res.Value})
				changed[res.Secret.File] = true
				rep.Changes = append(rep.Changes, Change{File: res.Secret.File, ID: res.Secret.ID,
					VersionID: res.VersionID, PrevVersionID: state[res.Secret.File].VersionID})
			}
			if r.opts.Restart == nil {
				break
			}
			if d.version == "" {
				r.opts.Log.Warn("not restarting for this version: the version the app started with is not known",
					"id", rot.ID, "files", rot.Files, "envs", rot.Envs, "versionId", rot.VersionID)
				break
			}
			rotations = append(rotations, rot)
		}
	}
	defer tmpfs.Zero(files)
	if len(files) == 0 {
		maps.Copy(r.seen, seen)
		rep.Rotations = rotations
		return rep, nil
	}

	// The new state: every file's version after the swap. An env-only
	// secret keeps the version the env file holds.
	next := State{Version: stateVersion}
	var keep []string
	for _, s := range r.plan.Secrets {
		f, ok := state[s.File]
		if s.NoFile {
			if ok {
				next.Files = append(next.Files, f)
			}
			continue
		}
		if changed[s.File] {
			for _, c := range rep.Changes {
				if c.File == s.File {
					f = FileState{File: s.File, ID: s.ID, VersionID: c.VersionID}
				}
			}
		} else {
			keep = append(keep, s.File)
			f.File, f.ID = s.File, s.ID
		}
		next.Files = append(next.Files, f)
	}
	switch err := r.dir.WriteSet(tmpfs.Set{Files: files, Keep: keep, State: encodeState(next)}); {
	case errors.Is(err, tmpfs.ErrSwapped):
		// ..data points to the new set: the app reads the new files, so
		// it is told. What failed after the swap (a new name's link,
		// removing the previous set) is for the log; the next swap
		// removes what was left.
		r.opts.Log.Warn("swapped secrets, but a step after the swap failed", "dir", r.plan.Dir,
			"changes", rep.Changes, "error", fetch.ErrorText(err))
	case err != nil:
		r.opts.Log.Error("swapping in the new files failed; keeping the current files", "dir", r.plan.Dir,
			"changes", rep.Changes, "error", fetch.ErrorText(err))
		rep.Changes = nil
		return rep, fmt.Errorf("swapping in the new files: %w", err)
	default:
		r.opts.Log.Info("swapped secrets", "dir", r.plan.Dir, "changes", rep.Changes)
	}
	maps.Copy(r.seen, seen)
	rep.Rotations = rotations
	if r.opts.NotifyURL != "" {
		r.notify(ctx, rep.Changes)
	}
	return rep, nil
}

// pollBatch decides, with BatchGetSecretValue, the groups that it can poll
// (those of the current version), MaxBatch secrets a call, and returns the
// decisions left to decide one by one. A batch answers with the values, so
// a new version costs no further call; a secret the batch did not deliver
// is asked alone by fetch, as in the init container.
//
// It is the cheaper poll in calls when a pod has two secrets or more:
// ceil(S/20) calls a poll against S DescribeSecret calls. It draws on
// another quota, though, BatchGetSecretValue's own (100 a second an
// account, against 10,000 for the others), and every poll transfers and
// decrypts every value (see the README's budget).
func (r *Refresher) pollBatch(ctx context.Context, ds []*decision) []*decision {
	sub := &plan.Plan{Version: r.plan.Version, Dir: r.plan.Dir, Region: r.plan.Region, FailoverRegion: r.plan.FailoverRegion, Batch: true}
	var batched, rest []*decision
	for _, d := range ds {
		if d.g.stage != fetch.DefaultStage {
			rest = append(rest, d)
			continue
		}
		batched = append(batched, d)
		for _, s := range d.g.secrets {
			s.VersionStage, s.VersionID = "", ""
			sub.Secrets = append(sub.Secrets, s)
		}
	}
	if len(batched) == 0 {
		return rest
	}
	results, failures, err := fetch.FetchEach(ctx, sub, r.fetchOptions("", nil))
	k := 0
	for _, d := range batched {
		g := d.g
		fail := func(code string, err error) {
			d.failure = &Failure{ID: g.id, Files: fileNames(g.secrets), Code: code, VersionID: d.version, Err: err}
		}
		if err != nil {
			fail(fetch.CodeUnknown, err)
			continue
		}
		n := len(g.secrets)
		res, fails := slices.Clone(results[k:k+n]), failures[k:k+n]
		k += n
		if i := slices.IndexFunc(fails, func(f *fetch.SecretError) bool { return f != nil }); i >= 0 {
			fetch.ZeroAll(res)
			fail(fails[i].Code, fails[i])
			continue
		}
		if res[0].VersionID == d.version {
			fetch.ZeroAll(res)
			continue
		}
		for i := range res {
			res[i].Secret = g.secrets[i]
		}
		if code, err := r.finish(res); err != nil {
			fail(code, err)
			continue
		}
		d.next, d.results = res[0].VersionID, res
	}
	return rest
}

// readState reads the versions the current files hold. Without a readable
// state every secret counts as changed, which fetches each once and writes
// a state: a correct answer at the price of one GetSecretValue each.
func (r *Refresher) readState() map[string]FileState {
	b, err := r.dir.ReadState()
	if err == nil {
		st, derr := decodeState(b)
		if derr == nil {
			return st
		}
		err = derr
	}
	if !errors.Is(err, fs.ErrNotExist) {
		r.opts.Log.Warn("cannot read the versions of the current files; fetching every secret once", "dir", r.plan.Dir, "error", fetch.ErrorText(err))
	} else {
		r.opts.Log.Warn("the current files carry no versions; fetching every secret once", "dir", r.plan.Dir)
	}
	return map[string]FileState{}
}

// currentVersion is the version a group's files hold, or "" when the state
// does not say, or its files disagree.
func currentVersion(state map[string]FileState, g *group) string {
	v := ""
	for i, s := range g.secrets {
		f, ok := state[s.File]
		if !ok || f.ID != s.ID || (i > 0 && f.VersionID != v) {
			return ""
		}
		v = f.VersionID
	}
	return v
}

// decide fills in d: unchanged, the new values, or a failure.
func (r *Refresher) decide(ctx context.Context, d *decision) {
	g := d.g
	fail := func(code string, err error) {
		d.results = nil
		d.failure = &Failure{ID: g.id, Files: fileNames(g.secrets), Code: code, VersionID: d.version, Err: err}
	}
	api, err := r.client(g.region)
	if err != nil {
		code := fetch.CodeUnknown
		if errors.Is(err, fetch.ErrNoRegion) {
			code = fetch.CodeMissingRegion
		}
		fail(code, fmt.Errorf("making a client: %w", err))
		return
	}

	if r.askDescribe(g) {
		next, code, err := r.describe(ctx, api, g)
		switch {
		case err == nil:
			r.describeAllowed(g)
			if next == d.version {
				return
			}
			d.next = next
			results, code, err := r.fetch(ctx, api, g, "", next)
			if err != nil {
				fail(code, err)
				return
			}
			d.results = results
			return
		case code == "AccessDeniedException":
			if r.describeDenied(g) == 1 {
				r.opts.Log.Warn("DescribeSecret is denied; comparing version IDs through GetSecretValue instead, and asking DescribeSecret again now and then. "+
					"Allow "+DescribeSecretPermission+" to poll at a quarter of the GetSecretValue quota's cost",
					"id", g.id, "missingPermission", DescribeSecretPermission)
			}
		default:
			fail(code, err)
			return
		}
	}

	// The fallback: fetch by stage and compare the version IDs.
	results, code, err := r.fetch(ctx, api, g, g.stage, "")
	if err != nil {
		fail(code, err)
		return
	}
	if results[0].VersionID == d.version {
		fetch.ZeroAll(results)
		return
	}
	d.next, d.results = results[0].VersionID, results
}

// askDescribe reports whether this poll of g asks DescribeSecret, and
// counts down the polls that skip it after a denial.
func (r *Refresher) askDescribe(g *group) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if g.describeSkip > 0 {
		g.describeSkip--
		return false
	}
	return true
}

// describeDenied records a denial of DescribeSecret for g and returns how
// many came in a row.
func (r *Refresher) describeDenied(g *group) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	g.describeDenials++
	g.describeSkip = min(1<<min(g.describeDenials-1, 30), maxDescribeSkip)
	return g.describeDenials
}

// describeAllowed records an answer of DescribeSecret for g, and says so
// in the log after denials.
func (r *Refresher) describeAllowed(g *group) {
	r.mu.Lock()
	denials := g.describeDenials
	g.describeDenials, g.describeSkip = 0, 0
	r.mu.Unlock()
	if denials > 0 {
		r.opts.Log.Info("DescribeSecret is allowed now; polling with it again", "id", g.id, "deniedBefore", denials)
	}
}

// client returns the region's client, made once.
func (r *Refresher) client(region string) (API, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.clients[region]; ok {
		return c, nil
	}
	c, err := r.opts.Clients(region)
	if err != nil {
		return nil, err
	}
	r.clients[region] = c
	return c, nil
}

// codeStageNotFound is the failure code when no version carries the stage.
const codeStageNotFound = "StageNotFound"

// describe returns the version the group's stage points at, with the same
// retries and classification as the first fetch.
func (r *Refresher) describe(ctx context.Context, api API, g *group) (string, string, error) {
	targets := []fetch.Target[API]{{Region: g.region, ID: g.id, API: api}}
	if region, id := r.plan.FailoverFor(g.secrets[0]); region != "" {
		if fapi, err := r.client(region); err == nil {
			targets = append(targets, fetch.Target[API]{Region: region, ID: id, API: fapi})
		}
	}
	c := fetch.Call{Op: "DescribeSecret", Files: fileNames(g.secrets), NewBackOff: r.opts.NewBackOff, NewThrottleBackOff: r.opts.NewThrottleBackOff,
		AttemptTimeout: cmp.Or(r.opts.AttemptTimeout, fetch.DefaultAttemptTimeout), PrimaryAttempts: r.opts.PrimaryAttempts,
		OnFailover: r.opts.OnFailover, Calls: r.opts.Calls,
		OnRetry: func(rt fetch.Retry) {
			r.opts.Log.Warn("retrying", "operation", "DescribeSecret", "id", rt.ID, "region", rt.Region, "code", rt.Code,
				"attempt", rt.Attempt, "waitMs", rt.Wait.Milliseconds(), "error", fetch.ErrorText(rt.Err))
		}}
	out, oc, err := fetch.Do(ctx, c, targets, func(ctx context.Context, t fetch.Target[API]) (*secretsmanager.DescribeSecretOutput, error) {
		return t.API.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(t.ID)})
	})
	if err != nil {
		return "", oc.Code, fmt.Errorf("calling DescribeSecret after %d attempt(s): %w", oc.Attempts, err)
	}
	// Sorted, so that a (malformed) answer with the stage twice decides the
	// same way every time.
	versions := make([]string, 0, len(out.VersionIdsToStages))
	for v := range out.VersionIdsToStages {
		versions = append(versions, v)
	}
	slices.Sort(versions)
	for _, v := range versions {
		if slices.Contains(out.VersionIdsToStages[v], g.stage) {
			if err := fetch.CheckVersionID(&v); err != nil {
				return "", fetch.CodeMalformedVersionID, fmt.Errorf("DescribeSecret: %w", err)
			}
			return v, "", nil
		}
	}
	return "", codeStageNotFound, fmt.Errorf("no version of the secret carries the stage %s", g.stage)
}

// fetch gets the group's files from one version (by ID, or by stage when
// versionID is ""), through fetch.Fetch: the same request grouping, key
// extraction, pattern checks, retries and classification as the first
// fetch.
func (r *Refresher) fetch(ctx context.Context, api API, g *group, stage, versionID string) ([]fetch.Result, string, error) {
	sub := &plan.Plan{Version: r.plan.Version, Dir: r.plan.Dir, Region: g.region, FailoverRegion: r.plan.FailoverRegion,
		Secrets: make([]plan.Secret, len(g.secrets))}
	for i, s := range g.secrets {
		s.VersionStage, s.VersionID = stage, versionID
		sub.Secrets[i] = s
	}
	results, err := fetch.Fetch(ctx, sub, r.fetchOptions(g.region, api))
	if err != nil {
		code := fetch.CodeUnknown
		var fe *fetch.Error
		if errors.As(err, &fe) && len(fe.Failures) > 0 {
			code = fe.Failures[0].Code
		}
		return nil, code, err
	}
	// The results carry the plan's own secrets again, not the copies made
	// to select the version.
	for i := range results {
		results[i].Secret = g.secrets[i]
	}
	code, err := r.finish(results)
	if err != nil {
		return nil, code, err
	}
	return results, "", nil
}

// fetchOptions are the options of the fetches of a poll: the clients of
// the Refresher (api for the group's own region), the same retries,
// failover and counts as every other call of the sidecar.
func (r *Refresher) fetchOptions(region string, api API) fetch.Options {
	return fetch.Options{
		Clients: func(rg string) (fetch.API, error) {
			if rg == region && api != nil {
				return api, nil
			}
			return r.client(rg)
		},
		AttemptTimeout:     r.opts.AttemptTimeout,
		NewBackOff:         r.opts.NewBackOff,
		NewThrottleBackOff: r.opts.NewThrottleBackOff,
		PrimaryAttempts:    r.opts.PrimaryAttempts,
		OnFailover:         r.opts.OnFailover,
		OnBatchFallback:    r.opts.OnBatchFallback,
		Calls:              r.opts.Calls,
		OnRetry: func(rt fetch.Retry) {
			r.opts.Log.Warn("retrying", "operation", "GetSecretValue", "id", rt.ID, "files", rt.Files, "region", rt.Region, "code", rt.Code,
				"attempt", rt.Attempt, "waitMs", rt.Wait.Milliseconds(), "error", fetch.ErrorText(rt.Err))
		},
	}
}

// finish renders the files of a group's new values and checks their env
// variables, as init-fetch would; on a failure it zeroes every result.
func (r *Refresher) finish(results []fetch.Result) (string, error) {
	// A rendered file (format-<name>) is rendered again from the new value,
	// as init-fetch renders it. A value that no longer renders keeps the
	// current files, like one that fails its pattern.
	for i := range results {
		if results[i].Secret.NoFile {
			continue
		}
		data, rendered, err := render.FileData(results[i].Secret, results[i].Value, results[i].Binary)
		if err != nil {
			fetch.ZeroAll(results)
			return render.ErrorCode(err), fmt.Errorf("file %s: %w", results[i].Secret.File, err)
		}
		if rendered {
			clear(results[i].Value)
			results[i].Value = data
		}
	}
	// With a restart, the variables are written again too: a value that
	// the env file can't carry would fail the init container, so it keeps
	// the current files and restarts nothing.
	if r.opts.Restart != nil {
		for i := range results {
			if code, err := checkEnv(results[i]); err != nil {
				fetch.ZeroAll(results)
				return code, fmt.Errorf("env %s (file %s): %w", results[i].Secret.Env, results[i].Secret.File, err)
			}
		}
	}
	return "", nil
}

// checkEnv checks a value for its environment variable, if it has one, as
// init-fetch does before it writes the env file: never SecretBinary, and
// only what the kubelet's env file parser reads back unchanged.
func checkEnv(res fetch.Result) (string, error) {
	s := res.Secret
	if s.Env == "" {
		return "", nil
	}
	if res.Binary {
		return envfile.CodeBinaryValue, envfile.ErrBinary
	}
	if err := envfile.Check(s.Env, res.Value); err != nil {
		return envfile.CodeUnsupportedValue, err
	}
	return "", nil
}

func fileNames(secrets []plan.Secret) []string {
	out := make([]string, len(secrets))
	for i, s := range secrets {
		out[i] = s.File
	}
	return out
}
