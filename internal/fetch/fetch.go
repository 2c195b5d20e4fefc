// Package fetch reads the secrets of a plan from AWS Secrets Manager.
//
// It fetches every secret before the caller writes any: Fetch returns all
// values in memory, or an error and no values. It retries only what can
// succeed (throttling, 5xx, connection errors, timeouts) with jittered
// exponential backoff inside the caller's deadline, and fails at once on
// everything else. Values are returned as byte slices that the caller zeroes
// after use (see ZeroAll).
//
// What Go cannot promise: the SDK reads the response body into buffers of its
// own, decodes SecretString into an immutable Go string and SecretBinary from
// base64 text, and encoding/json copies strings while a key is extracted.
// None of those copies can be reached to zero them; they stay in memory until
// the garbage collector reuses it. Zeroing the slices this package hands out
// still shortens the life of the copies that are reachable.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cenkalti/backoff/v4"

	"github.com/secretfetch/secretfetch/internal/plan"
)

// API is the one Secrets Manager call the fetcher makes, with the SDK
// client's exact signature, so a test can stand in for the client without
// HTTP. *secretsmanager.Client satisfies it.
type API interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// ClientFunc returns the client for one region. The empty region means the
// region of the SDK's default configuration (AWS_REGION and friends). Fetch
// calls it once per distinct region of a plan.
type ClientFunc func(region string) (API, error)

// DefaultConcurrency is how many requests are made at once unless
// Options.Concurrency says otherwise. Secrets Manager allows thousands of
// GetSecretValue calls a second per account, so 8 is far from throttling and
// already hides most of the per-request latency of a typical pod's handful of
// secrets.
const DefaultConcurrency = 8

// DefaultAttemptTimeout bounds a single GetSecretValue attempt, so that one
// hung connection is retried instead of eating the whole deadline.
const DefaultAttemptTimeout = 20 * time.Second

// Options tune Fetch. The zero value is ready to use.
type Options struct {
	// Concurrency is the most requests made at once; 0 means
	// DefaultConcurrency.
	Concurrency int
	// Clients makes the client for a region; nil means SDKClients over
	// the SDK's default configuration chain (config.LoadDefaultConfig).
	Clients ClientFunc
	// NewBackOff returns the wait schedule between attempts of one secret;
	// nil means DefaultBackOff. The overall deadline comes from the context
	// passed to Fetch, not from the schedule.
	NewBackOff func() backoff.BackOff
	// NewThrottleBackOff returns the wait schedule used after a throttling
	// answer instead; nil means DefaultThrottleBackOff when NewBackOff is
	// nil too, and NewBackOff's schedule otherwise.
	NewThrottleBackOff func() backoff.BackOff
	// AttemptTimeout bounds one attempt; 0 means DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// OnRetry, when set, is called before each wait between two attempts,
	// for logging. It may be called from several goroutines at once.
	OnRetry func(Retry)
	// PrimaryAttempts is how many retryable failures in a row move a
	// request from its region to the plan's failover region; 0 means
	// DefaultPrimaryAttempts.
	PrimaryAttempts int
	// OnFailover, when set, is called when a request moves to the
	// failover region, and OnBatchFallback when secrets of a
	// BatchGetSecretValue call are asked again one by one. Either may be
	// called from several goroutines at once.
	OnFailover      func(Failover)
	OnBatchFallback func(BatchFallback)
	// Calls, when set, counts every call made.
	Calls *Calls
}

// Retry describes the wait before the next attempt of one request.
type Retry struct {
	ID     string   // the secret ID asked for
	Files  []string // the files the request is for
	Region string   // where the attempt was made
	// Attempt is how many attempts were made; Code and Err are the last
	// one's failure.
	Attempt int
	Code    string
	Err     error
	Wait    time.Duration
}

// DefaultBackOff is jittered exponential backoff: about 200 ms, then doubling
// up to 10 s between attempts, each wait randomised by ±50% so that the init
// containers of many pods started together do not retry in step. It never
// stops by itself; the context's deadline ends the retries. After a
// throttling answer Fetch waits by DefaultThrottleBackOff instead.
func DefaultBackOff() backoff.BackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(200*time.Millisecond),
		backoff.WithRandomizationFactor(0.5),
		backoff.WithMultiplier(2),
		backoff.WithMaxInterval(10*time.Second),
		backoff.WithMaxElapsedTime(0),
	)
}

// DefaultThrottleBackOff is the wait schedule after a throttling answer:
// about 1 s, then doubling up to 20 s, each wait randomised by ±50%. A
// throttled call says the account's quota is spent for now, and asking
// again after 200 ms mostly spends another call: hack/storm measured
// 1.5 to 2.2 calls per process with DefaultBackOff alone (200 processes,
// 50 calls a second). The SDK's own retryer also waits about a second
// after its first throttled attempt.
func DefaultThrottleBackOff() backoff.BackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(time.Second),
		backoff.WithRandomizationFactor(0.5),
		backoff.WithMultiplier(2),
		backoff.WithMaxInterval(20*time.Second),
		backoff.WithMaxElapsedTime(0),
	)
}

// Result is one fetched secret.
type Result struct {
	Secret    plan.Secret
	VersionID string
	// Value is what goes into the file: the whole SecretString or
	// SecretBinary, or the field selected by Secret.Key. Zero it after use.
	Value []byte
	// Binary says Value came from SecretBinary, which an env var cannot
	// carry and a format cannot render.
	Binary   bool
	Attempts int
	Duration time.Duration
	// Region is the region that served the value: the secret's own, or
	// the plan's failover region.
	Region string
	// Batched says the value came from a BatchGetSecretValue call.
	Batched bool
}

// ZeroAll overwrites every value with zeros.
func ZeroAll(results []Result) {
	for i := range results {
		clear(results[i].Value)
	}
}

// SDKClients returns a ClientFunc that makes Secrets Manager clients from
// cfg, one per call, with the SDK's retryer switched off.
//
// The SDK's retryer is replaced by aws.NopRetryer rather than set to one
// attempt with RetryMaxAttempts=1: NopRetryer declares every error not
// retryable and takes no tokens from the standard retryer's retry-quota
// bucket, so the only retries are Fetch's own, under its backoff and
// deadline. Retries therefore never multiply (the SDK's default of 3 under
// our loop would make every throttled attempt 3 requests), and attempt counts
// in logs are the real request counts. RetryMaxAttempts is reset so that
// AWS_MAX_ATTEMPTS cannot wrap the NopRetryer again; it would make no
// difference, but the intent stays plain. The credential providers (STS for
// IRSA, the Pod Identity agent) keep the SDK's own retries: they run inside
// one of our attempts and are not re-driven by it.
//
// Every client caps the response bodies it reads (CapResponseBodies), also
// when cfg was not made by LoadConfig.
//
// extra options are applied last; tests use them to set BaseEndpoint.
func SDKClients(cfg aws.Config, extra ...func(*secretsmanager.Options)) ClientFunc {
	return func(region string) (API, error) {
		if region == "" {
			region = cfg.Region
		}
		if region == "" {
			return nil, ErrNoRegion
		}
		opts := append([]func(*secretsmanager.Options){func(o *secretsmanager.Options) {
			o.Region = region
			o.Retryer = aws.NopRetryer{}
			o.RetryMaxAttempts = 0
			o.APIOptions = append(slices.Clip(o.APIOptions), CapResponseBodies)
		}}, extra...)
		return secretsmanager.NewFromConfig(cfg, opts...), nil
	}
}

// ErrNoRegion is returned by the ClientFunc of SDKClients for a secret that
// is not an ARN when neither the plan nor the SDK's configuration names a
// region.
var ErrNoRegion = errors.New("no AWS region: give an ARN, set the plan's region, or set AWS_REGION")

// SecretError is the failure of one secret. It carries what a termination
// message needs without parsing text. Err never holds the secret's value.
type SecretError struct {
	ID   string
	File string
	// Region is the region that answered last.
	Region string
	// Code is the AWS error code (for example AccessDeniedException) or one
	// of the Code constants of this package.
	Code     string
	Attempts int
	Err      error
}

// Codes for failures that are not AWS error codes.
const (
	CodeConnection      = "ConnectionError"  // could not reach the endpoint
	CodeTimeout         = "Timeout"          // an attempt or the network timed out
	CodeDeadline        = "DeadlineExceeded" // the overall deadline ran out before any answer
	CodeCanceled        = "Canceled"         // the context was canceled (a signal)
	CodeMissingRegion   = "MissingRegion"    // no region for a secret that is not an ARN
	CodeNoValue         = "NoValue"          // neither SecretString nor SecretBinary
	CodeNotJSON         = "NotJSON"          // a key was asked of a value that is not a JSON object
	CodeKeyNotFound     = "KeyNotFound"      // the key path does not exist in the JSON
	CodePatternMismatch = "PatternMismatch"  // the value does not match the plan's pattern
	CodeNoCredentials   = "NoCredentials"    // the pod has no IRSA or Pod Identity settings
	// CodeValueTooLarge: the value is over Secrets Manager's MaxValueBytes.
	CodeValueTooLarge = "ValueTooLarge"
	// CodeResponseTooLarge: a response body was over MaxResponseBytes.
	CodeResponseTooLarge = "ResponseTooLarge"
	// CodeMalformed stands for an error code that does not have the shape
	// of an AWS code (see ValidCode); the text itself is never repeated.
	CodeMalformed = "MalformedErrorCode"
	// CodeMalformedVersionID: an answer's version ID does not have the
	// shape of one (see CheckVersionID); it is never repeated either.
	CodeMalformedVersionID = "MalformedVersionId"
	CodeUnknown            = "Error" // anything else
)

// Error names the secret, the code and the cause; the cause's text is cut
// to MaxErrorText, since it may quote whatever the endpoint sent.
func (e *SecretError) Error() string {
	return fmt.Sprintf("secret %s (file %s): %s after %d attempt(s): %s", e.ID, e.File, e.Code, e.Attempts, ErrorText(e.Err))
}

func (e *SecretError) Unwrap() error { return e.Err }

// Error is returned by Fetch when one or more secrets failed. Failures are in
// plan order.
type Error struct {
	Failures []*SecretError
	Total    int // how many secrets the plan asked for
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Failures))
	for i, f := range e.Failures {
		parts[i] = f.Error()
	}
	return fmt.Sprintf("fetching %d of %d secrets failed: %s", len(e.Failures), e.Total, strings.Join(parts, "; "))
}

// Unwrap lets errors.Is and errors.As look into every failure.
func (e *Error) Unwrap() []error {
	errs := make([]error, len(e.Failures))
	for i, f := range e.Failures {
		errs[i] = f
	}
	return errs
}

// Fetch fetches every secret of p. It returns one Result per secret in plan
// order, or a nil slice and an error. When secrets fail it still lets the
// others finish, so the returned *Error names every failure at once rather
// than one per restart of the init container; the values of the secrets that
// did succeed are zeroed before it returns.
//
// Secrets that name the same secret ID, version and region share one
// request (see requests), so that files cut from one JSON secret with
// different keys always come from the same version of it, even while it is
// being rotated.
//
// The deadline of ctx bounds everything, retries included.
func Fetch(ctx context.Context, p *plan.Plan, o Options) ([]Result, error) {
	results, failures, err := FetchEach(ctx, p, o)
	if err != nil {
		return nil, err
	}
	var failed []*SecretError
	for _, f := range failures {
		if f != nil {
			failed = append(failed, f)
		}
	}
	if len(failed) > 0 {
		ZeroAll(results)
		return nil, &Error{Failures: failed, Total: len(p.Secrets)}
	}
	return results, nil
}

// FetchEach is Fetch for a caller that uses what succeeded when something
// else failed (the refresh sidecar): for each secret of p, by index, either
// its result or its failure. The error is for a plan it cannot start on.
// The caller zeroes the results.
func FetchEach(ctx context.Context, p *plan.Plan, o Options) ([]Result, []*SecretError, error) {
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.NewBackOff == nil {
		o.NewBackOff = DefaultBackOff
		if o.NewThrottleBackOff == nil {
			o.NewThrottleBackOff = DefaultThrottleBackOff
		}
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = DefaultAttemptTimeout
	}
	patterns := make([]*regexp.Regexp, len(p.Secrets))
	for i, s := range p.Secrets {
		if s.Pattern == "" {
			continue
		}
		re, err := plan.CompilePattern(s.Pattern)
		if err != nil {
			return nil, nil, fmt.Errorf("secrets[%d].pattern: %w", i, err)
		}
		patterns[i] = re
	}
	if o.Clients == nil {
		cfg, err := LoadConfig(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("loading the AWS SDK configuration: %w", err)
		}
		o.Clients = SDKClients(cfg)
	}

	// One client per region, made before any request so that a region
	// problem is reported for every secret it concerns.
	clients := make(map[string]clientOrErr)
	for _, s := range p.Secrets {
		for j, region := range []string{p.RegionFor(s), failoverRegion(p, s)} {
			if _, ok := clients[region]; !ok && (j == 0 || region != "") {
				api, err := o.Clients(region)
				clients[region] = clientOrErr{api, err}
			}
		}
	}

	f := &fetcher{p: p, o: &o, patterns: patterns, clients: clients,
		results: make([]Result, len(p.Secrets)), failures: make([]*SecretError, len(p.Secrets))}
	reqs := requests(p)
	if p.Batch {
		reqs = f.batch(ctx, reqs)
	}
	work := make(chan *request)
	var wg sync.WaitGroup
	for range min(o.Concurrency, len(reqs)) {
		wg.Go(func() {
			for r := range work {
				f.fetch(ctx, r)
			}
		})
	}
	for _, r := range reqs {
		work <- r
	}
	close(work)
	wg.Wait()
	return f.results, f.failures, nil
}

// failoverRegion is the failover region of s, or "" for none.
func failoverRegion(p *plan.Plan, s plan.Secret) string {
	region, _ := p.FailoverFor(s)
	return region
}

type clientOrErr struct {
	api API
	err error
}

// fetcher is one run of FetchEach: what every request reads and fills in.
type fetcher struct {
	p        *plan.Plan
	o        *Options
	patterns []*regexp.Regexp
	clients  map[string]clientOrErr
	results  []Result
	failures []*SecretError
}

// targets are the regions r can be asked in: its own, then the failover
// region's replica. A failover region without a client is left out.
func (f *fetcher) targets(r *request) ([]Target[API], error) {
	c := f.clients[r.region]
	if c.err != nil {
		return nil, c.err
	}
	t := []Target[API]{{Region: r.region, ID: aws.ToString(r.input.SecretId), API: c.api}}
	if region, id := f.p.FailoverFor(f.p.Secrets[r.secrets[0]]); region != "" {
		if fc := f.clients[region]; fc.err == nil {
			t = append(t, Target[API]{Region: region, ID: id, API: fc.api})
		}
	}
	return t, nil
}

// failAll records one failure for every secret of r.
func (f *fetcher) failAll(r *request, e SecretError) {
	for _, i := range r.secrets {
		s := f.p.Secrets[i]
		fe := e
		fe.ID, fe.File = s.ID, s.File
		f.failures[i] = &fe
	}
}

// clientError is the failure of a request whose region has no client.
func clientError(err error) SecretError {
	code := CodeUnknown
	if errors.Is(err, ErrNoRegion) {
		code = CodeMissingRegion
	}
	return SecretError{Code: code, Err: fmt.Errorf("making a client: %w", err)}
}

// request is one GetSecretValue call, for every secret of the plan (by
// index) that names the same secret ID and version in the same region.
type request struct {
	region  string
	input   secretsmanager.GetSecretValueInput
	secrets []int
}

// DefaultStage is the staging label Secrets Manager answers with when a
// request names neither a stage nor a version ID.
const DefaultStage = "AWSCURRENT"

// Groups splits the plan's secrets (by index) into the requests Fetch
// makes, in plan order: one per secret ID, version stage, version ID and
// region. The refresh sidecar polls by the same groups.
//
// No stage and DefaultStage are one selector, so that a file with
// version-stage-<name>: AWSCURRENT and one without, cut from one secret,
// come from one version. The ID is compared as it is written: a secret's
// name and its ARN are two requests, because which ARN a name stands for
// (its account, its random suffix) is known only to Secrets Manager.
func Groups(p *plan.Plan) [][]int {
	type key struct{ region, id, stage, version string }
	byKey := make(map[key]int, len(p.Secrets))
	var groups [][]int
	for i, s := range p.Secrets {
		stage := s.VersionStage
		if stage == "" && s.VersionID == "" {
			stage = DefaultStage
		}
		k := key{p.RegionFor(s), s.ID, stage, s.VersionID}
		if g, ok := byKey[k]; ok {
			groups[g] = append(groups[g], i)
			continue
		}
		byKey[k] = len(groups)
		groups = append(groups, []int{i})
	}
	return groups
}

// requests groups the plan's secrets into requests, in plan order.
func requests(p *plan.Plan) []*request {
	groups := Groups(p)
	reqs := make([]*request, len(groups))
	for j, g := range groups {
		s := p.Secrets[g[0]]
		r := &request{region: p.RegionFor(s), secrets: g}
		r.input.SecretId = aws.String(s.ID)
		if s.VersionStage != "" {
			r.input.VersionStage = aws.String(s.VersionStage)
		}
		if s.VersionID != "" {
			r.input.VersionId = aws.String(s.VersionID)
		}
		reqs[j] = r
	}
	return reqs
}

// files lists the files a request is for.
func (r *request) files(p *plan.Plan) []string {
	files := make([]string, len(r.secrets))
	for j, i := range r.secrets {
		files[j] = p.Secrets[i].File
	}
	return files
}

// fetch makes the request, with retries and failover, and fills in the
// result or the failure of each of its secrets.
func (f *fetcher) fetch(ctx context.Context, r *request) {
	targets, err := f.targets(r)
	if err != nil {
		f.failAll(r, clientError(err))
		return
	}
	start := time.Now()
	out, oc, err := Do(ctx, f.call(r, "GetSecretValue"), targets,
		func(ctx context.Context, t Target[API]) (*secretsmanager.GetSecretValueOutput, error) {
			in := r.input
			in.SecretId = aws.String(t.ID)
			return t.API.GetSecretValue(ctx, &in)
		})
	if err != nil {
		f.failAll(r, SecretError{Region: oc.Region, Code: oc.Code, Attempts: oc.Attempts, Err: err})
		return
	}
	f.fill(r, out, oc, start, false)
}

// call is how a request's calls are retried, failed over and counted.
func (f *fetcher) call(r *request, op string) Call {
	return Call{Op: op, Files: r.files(f.p), NewBackOff: f.o.NewBackOff, NewThrottleBackOff: f.o.NewThrottleBackOff,
		AttemptTimeout: f.o.AttemptTimeout, PrimaryAttempts: f.o.PrimaryAttempts,
		OnRetry: f.o.OnRetry, OnFailover: f.o.OnFailover, Calls: f.o.Calls}
}

// fill cuts the files of r from one answer, checks them, and records the
// result or failure of each.
func (f *fetcher) fill(r *request, out *secretsmanager.GetSecretValueOutput, oc Outcome, start time.Time, batched bool) {
	// The SDK decoded SecretBinary for this request alone: each file gets
	// a copy, and this one is zeroed once they have.
	defer clear(out.SecretBinary)
	if err := CheckVersionID(out.VersionId); err != nil {
		f.failAll(r, SecretError{Region: oc.Region, Code: CodeMalformedVersionID, Attempts: oc.Attempts, Err: err})
		return
	}
	for _, i := range r.secrets {
		s := f.p.Secrets[i]
		value, code, err := valueOf(out, s)
		if err == nil && f.patterns[i] != nil && !f.patterns[i].Match(value) {
			clear(value)
			// The pattern is from the plan and not secret; the value is
			// never shown, not even its length.
			code, err = CodePatternMismatch, fmt.Errorf("the value does not match the pattern %q", s.Pattern)
		}
		if err != nil {
			f.failures[i] = &SecretError{ID: s.ID, File: s.File, Region: oc.Region, Code: code, Attempts: oc.Attempts, Err: err}
			continue
		}
		f.results[i] = Result{
			Secret:    s,
			VersionID: aws.ToString(out.VersionId),
			Value:     value,
			Binary:    out.SecretBinary != nil,
			Attempts:  oc.Attempts,
			Duration:  time.Since(start),
			Region:    oc.Region,
			Batched:   batched,
		}
	}
}

// CheckVersionID refuses a version ID from an answer of Secrets Manager
// that does not have the shape of one (plan.IsVersionID), or is missing:
// AWS sends one in every GetSecretValue answer. The ID is written to the
// refresh state, the logs and the app's notification, and compared on every
// poll, so one from a broken or hostile endpoint (say 200 KiB long) is not
// trusted. The error never quotes it, as the value of a malformed error code
// is never quoted; the code to report is CodeMalformedVersionID.
func CheckVersionID(v *string) error {
	switch {
	case v == nil:
		return errors.New("the answer holds no VersionId")
	case !plan.IsVersionID(*v):
		return fmt.Errorf("the answer's VersionId (%d bytes) is not a version ID of 32 to 64 letters, digits and '-'", len(*v))
	}
	return nil
}

// contextCode is the code of a context's error: a deadline, or a signal.
func contextCode(err error) string {
	if errors.Is(err, context.Canceled) {
		return CodeCanceled
	}
	return CodeDeadline
}

// valueOf returns the bytes to write for s from a GetSecretValue answer.
func valueOf(out *secretsmanager.GetSecretValueOutput, s plan.Secret) ([]byte, string, error) {
	// AWS never sends more; a larger value comes from something else
	// posing as Secrets Manager, and is not written. Its size is not
	// shown either.
	if len(out.SecretBinary) > MaxValueBytes || out.SecretString != nil && len(*out.SecretString) > MaxValueBytes {
		return nil, CodeValueTooLarge, fmt.Errorf("the value is larger than Secrets Manager's limit of %d bytes", MaxValueBytes)
	}
	var whole []byte
	switch {
	case out.SecretBinary != nil:
		if s.Key != "" {
			return nil, CodeNotJSON, fmt.Errorf("key %q needs a JSON SecretString, but the secret holds SecretBinary", s.Key)
		}
		// A copy: several files may be cut from one answer.
		return slices.Clone(out.SecretBinary), "", nil
	case out.SecretString != nil:
		whole = []byte(*out.SecretString)
	default:
		return nil, CodeNoValue, errors.New("the answer holds neither SecretString nor SecretBinary")
	}
	if s.Key == "" {
		return whole, "", nil
	}
	defer clear(whole)
	return extractKey(whole, s.Key)
}
