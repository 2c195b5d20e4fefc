package plan

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"
)

// Refresh settings cross from the webhook to the refresh sidecar as flags of
// init-fetch, not in the plan: they say when to look again, not what to
// fetch, and the init container that runs the same plan has no use for them.
// Both sides check them with these functions.

// The downward-API variables that the webhook sets on its containers and
// init-fetch reads, so that every AWS call names the pod that made it (the
// SDK's user agent, and the IRSA role session name).
const (
	EnvPodNamespace = "SECRETFETCH_POD_NAMESPACE"
	EnvPodName      = "SECRETFETCH_POD_NAME"
)

// EnvFailoverEndpoint is the Secrets Manager endpoint URL that init-fetch
// uses in the plan's failover region, which the webhook sets from
// --failover-secretsmanager-endpoint: AWS_ENDPOINT_URL_SECRETS_MANAGER
// names one endpoint for every region, and a replica's region needs its
// own (a VPC endpoint there, or a second fake).
const EnvFailoverEndpoint = "SECRETFETCH_FAILOVER_ENDPOINT_URL"

// EnvFailoverSTSEndpoint is the STS endpoint URL from which init-fetch gets
// IRSA credentials for the failover region (--failover-sts-endpoint), for
// the same reason: AWS_ENDPOINT_URL_STS names one endpoint for every
// region.
const EnvFailoverSTSEndpoint = "SECRETFETCH_FAILOVER_STS_ENDPOINT_URL"

// MaxRefreshInterval is the longest refresh interval.
const MaxRefreshInterval = 24 * time.Hour

// ValidateRefreshInterval checks a refresh interval against the bounds
// [min, MaxRefreshInterval].
func ValidateRefreshInterval(d, min time.Duration) error {
	if d <= 0 || d < min || d > MaxRefreshInterval {
		return fmt.Errorf("%v is outside the allowed range: use a Go duration between %v and %v", d, min, MaxRefreshInterval)
	}
	return nil
}

// ValidateNotifyURL checks the URL the refresh sidecar POSTs to after each
// swap: http to a loopback address with an explicit port, such as
// http://127.0.0.1:8080/reload. The containers of a pod share one network
// namespace, so a loopback URL reaches the pod's own app and nothing else;
// a name (even localhost) is refused, because a resolver decides where it
// goes.
func ValidateNotifyURL(s string) error {
	const want = "use http://127.0.0.1:<port>/<path> (or http://[::1]:<port>/<path>)"
	// First, so that no message below quotes an unbounded value.
	if len(s) > 2048 {
		return fmt.Errorf("the URL is longer than 2048 characters; %s", want)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL; %s", s, want)
	}
	switch {
	case u.Scheme != "http":
		return fmt.Errorf("%q: the scheme must be http (the request never leaves the pod); %s", s, want)
	case u.User != nil:
		return fmt.Errorf("%q: user information is not allowed; %s", s, want)
	case u.Opaque != "" || u.Fragment != "":
		return fmt.Errorf("%q is not a plain http URL; %s", s, want)
	}
	host, port := u.Hostname(), u.Port()
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q: the host must be a loopback address such as 127.0.0.1 or ::1, not %q; %s", s, host, want)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: an explicit port between 1 and 65535 is required; %s", s, want)
	}
	return nil
}

// Restart on change (secretfetch.io/refresh-restart). The refresh sidecar
// exits with RestartExitCode once it has checked a new version of a secret
// the pod uses, and the webhook gives the sidecar a restartPolicyRules entry
// (RestartAllContainers on that code, Kubernetes 1.36+) so that the kubelet
// runs the init container again and restarts every container in place.
const (
	// RestartExitCode is the refresh sidecar's exit code that asks the
	// kubelet to restart the pod's containers. No other exit of init-fetch
	// uses it.
	RestartExitCode = 85

	// MaxRestartWindow is the longest window over which the restarts of one
	// workload's pods are spread.
	MaxRestartWindow = 24 * time.Hour
	// MinRestartSpacing is the shortest time allowed between two restarts
	// of one pod caused by rotation.
	MinRestartSpacing = time.Minute
	// MaxRestartSpacing is the longest.
	MaxRestartSpacing = 7 * 24 * time.Hour
)

// ValidateRestartWindow checks the window over which restarts are spread:
// 0 (restart at once) up to MaxRestartWindow.
func ValidateRestartWindow(d time.Duration) error {
	if d < 0 || d > MaxRestartWindow {
		return fmt.Errorf("%v is outside the allowed range: use a Go duration between 0s (at once) and %v", d, MaxRestartWindow)
	}
	return nil
}

// ValidateRestartSpacing checks the least time between two restarts of one
// pod.
func ValidateRestartSpacing(d time.Duration) error {
	if d < MinRestartSpacing || d > MaxRestartSpacing {
		return fmt.Errorf("%v is outside the allowed range: use a Go duration between %v and %v", d, MinRestartSpacing, MaxRestartSpacing)
	}
	return nil
}
