package fetch

// Throttled reports whether err is a throttling answer, after which Fetch
// waits by its throttle schedule (DefaultThrottleBackOff) instead of the
// other one. The refresh sidecar's DescribeSecret retries decide the same
// way.
func Throttled(err error) bool { return isThrottleCode(Code(err)) }
