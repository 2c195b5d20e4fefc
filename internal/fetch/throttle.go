package fetch

import (
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Throttled reports whether err is a throttling answer, after which Fetch
// waits by its throttle schedule (DefaultThrottleBackOff) instead of the
// other one. The refresh sidecar's DescribeSecret retries decide the same
// way.
func Throttled(err error) bool { return isThrottleCode(Code(err)) }

// ThrottleCode reports whether code (a result of Calls) is a throttling
// answer.
func ThrottleCode(code string) bool { return isThrottleCode(code) }

// Schedule is the wait schedule of one call's retries: newBackOff's, or,
// when newThrottleBackOff is set, newThrottleBackOff's after an attempt that
// set *throttled and newBackOff's after any other. Fetch and the refresh
// sidecar's DescribeSecret retries both wait by it.
func Schedule(newBackOff, newThrottleBackOff func() backoff.BackOff, throttled *bool) backoff.BackOff {
	if newThrottleBackOff == nil {
		return newBackOff()
	}
	return &byCode{other: newBackOff(), throttle: newThrottleBackOff(), throttled: throttled}
}

// byCode picks the next wait from one of two schedules: the throttling one
// after a throttling answer, the other after anything else. Each advances
// only when it is used.
type byCode struct {
	other, throttle backoff.BackOff
	throttled       *bool // set by the attempt that just failed
}

func (b *byCode) NextBackOff() time.Duration {
	if *b.throttled {
		return b.throttle.NextBackOff()
	}
	return b.other.NextBackOff()
}

func (b *byCode) Reset() {
	b.other.Reset()
	b.throttle.Reset()
}
