package fetch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Target is one region a call can be made in: its client, and the secret ID
// to name there (a replica's ARN carries its own region; see
// plan.ReplicaID). The first target of a call is the primary region, the
// second, if any, the failover region.
type Target[A any] struct {
	Region string
	ID     string
	API    A
}

// DefaultPrimaryAttempts is how many attempts a call makes in the primary
// region, each failing in a way that another attempt could fix, before it
// moves to the failover region. Three attempts are about a second of
// DefaultBackOff, or three seconds of throttling under
// DefaultThrottleBackOff: long enough that a lost packet or one throttled
// second does not move a pod to its replica, short enough that a region
// that is down costs a pod's start a few seconds, not its deadline.
const DefaultPrimaryAttempts = 3

// Call is how one call is retried, failed over and counted.
type Call struct {
	// Op is the API's name, for the retry log and the counts.
	Op string
	// Files are the files the call is for, for the retry log.
	Files []string
	// NewBackOff and NewThrottleBackOff are the wait schedules (see
	// Options); NewBackOff is required.
	NewBackOff, NewThrottleBackOff func() backoff.BackOff
	// AttemptTimeout bounds one attempt; 0 means DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// PrimaryAttempts is how many retryable failures in a region move the
	// call to the next target; 0 means DefaultPrimaryAttempts.
	PrimaryAttempts int
	// OnRetry is called before each wait, and OnFailover when the call
	// moves to the next target; either may be nil.
	OnRetry    func(Retry)
	OnFailover func(Failover)
	// Calls, when set, counts every attempt by API, region and result.
	Calls *Calls
}

// Failover says that a call moved from one region to the next.
type Failover struct {
	ID        string // the secret ID asked for in the primary region
	Files     []string
	Op        string
	From, To  string // the regions
	Attempts  int    // made in From
	Code      string // the last failure in From
	Err       error
	ReplicaID string // the secret ID asked for in To
}

// Outcome is how a call ended.
type Outcome struct {
	Region   string // the region that answered last ("" for the SDK's default)
	Attempts int    // every attempt, in every region
	Code     string // on failure, the code that explains it best
	// FailedOver says the call moved to the failover region.
	FailedOver bool
}

// Do makes op against targets[0], retrying what can succeed with backoff
// inside ctx's deadline, and moves to the next target after
// PrimaryAttempts retryable failures in a row: a connection error, a
// timeout, a 5xx or throttling. A permanent answer (AccessDenied,
// ResourceNotFound, a bad value, ...) ends the call where it came from:
// it is the region's word on the secret, and a replica must not overrule
// it. The last target keeps the rest of the deadline.
func Do[A, O any](ctx context.Context, c Call, targets []Target[A], op func(ctx context.Context, t Target[A]) (O, error)) (O, Outcome, error) {
	var zero O
	var oc Outcome
	if len(targets) == 0 {
		return zero, oc, errors.New("no region to call")
	}
	oc.Region = targets[0].Region
	if err := ctx.Err(); err != nil {
		// Send nothing once the deadline has passed or a signal came.
		oc.Code = contextCode(err)
		return zero, oc, fmt.Errorf("not started: %w", err)
	}
	timeout := c.AttemptTimeout
	if timeout <= 0 {
		timeout = DefaultAttemptTimeout
	}
	budget := c.PrimaryAttempts
	if budget <= 0 {
		budget = DefaultPrimaryAttempts
	}
	var throttled bool
	schedule := backoff.WithContext(Schedule(c.NewBackOff, c.NewThrottleBackOff, &throttled), ctx)
	schedule.Reset()
	var lastErr error // the last answer of the service or the network
	cur, inTarget := 0, 0
	for {
		t := targets[cur]
		oc.Region = t.Region
		oc.Attempts++
		inTarget++
		actx, cancel := context.WithTimeout(ctx, timeout)
		out, err := op(actx, t)
		cancel()
		c.Calls.Add(c.Op, t.Region, ResultOf(err))
		if err == nil {
			return out, oc, nil
		}
		if ctx.Err() != nil {
			// The overall deadline or a signal cut this attempt short; its
			// error says nothing about the secret, so keep the previous one.
			break
		}
		lastErr = err
		throttled = Throttled(err)
		if !Retryable(err) {
			oc.Code = Code(err)
			return zero, oc, fmt.Errorf("calling %s%s: %w", c.Op, inRegion(oc), err)
		}
		var wait time.Duration
		if inTarget < budget {
			wait = schedule.NextBackOff()
		}
		// The region's budget is spent: its attempts, or its schedule
		// (one that never retries throttling moves on at once).
		if ctx.Err() != nil {
			break
		}
		if cur+1 < len(targets) && (inTarget >= budget || wait == backoff.Stop) {
			next := targets[cur+1]
			if c.OnFailover != nil {
				c.OnFailover(Failover{ID: t.ID, Files: c.Files, Op: c.Op, From: t.Region, To: next.Region,
					Attempts: inTarget, Code: Code(err), Err: err, ReplicaID: next.ID})
			}
			cur, inTarget, oc.FailedOver = cur+1, 0, true
			// A new region starts a new schedule, at once.
			schedule.Reset()
			continue
		}
		if inTarget >= budget {
			// The last region keeps retrying until the deadline.
			wait = schedule.NextBackOff()
		}
		if wait == backoff.Stop {
			break
		}
		if c.OnRetry != nil {
			c.OnRetry(Retry{ID: t.ID, Files: c.Files, Region: t.Region, Attempt: oc.Attempts, Code: Code(err), Err: err, Wait: wait})
		}
		if Sleep(ctx, wait) != nil {
			break
		}
	}
	cerr := ctx.Err()
	if cerr == nil {
		// The schedule stopped by itself.
		oc.Code = Code(lastErr)
		return zero, oc, fmt.Errorf("calling %s%s: %w", c.Op, inRegion(oc), lastErr)
	}
	if lastErr != nil {
		// The last real answer (say ThrottlingException) explains more
		// than "deadline exceeded" does.
		oc.Code = Code(lastErr)
		return zero, oc, fmt.Errorf("giving up%s: %w; last error: %w", inRegion(oc), cerr, lastErr)
	}
	oc.Code = contextCode(cerr)
	return zero, oc, fmt.Errorf("giving up: %w", cerr)
}

// inRegion names the region of an outcome in an error, once the call has
// failed over: without a failover the region is the plan's, as before.
func inRegion(oc Outcome) string {
	if !oc.FailedOver {
		return ""
	}
	return " in failover region " + oc.Region
}

// Sleep waits for d, or until ctx ends (then it returns ctx.Err()): the
// wait between retries here, and between polls in the refresh sidecar.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
