package mutate

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Results and reasons of the pods counter. Both sets are small and fixed, so
// the counter's cardinality is bounded whatever the requests carry.
const (
	ResultInjected = "injected"
	ResultSkipped  = "skipped"
	ResultDenied   = "denied"
	// ResultError is an internal fault or an undecodable request (not a
	// user's mistake).
	ResultError = "error"

	// Injected: a new injection; a reinvocation that updated the pod; a
	// reinvocation that found nothing to change.
	ReasonNew       = "new"
	ReasonRefreshed = "refreshed"
	ReasonUnchanged = "unchanged"

	// Skipped: not a CREATE; not a pod; no inject annotation; inject "false".
	ReasonNotCreate    = "not-create"
	ReasonNotPod       = "not-pod"
	ReasonNotRequested = "not-requested"
	ReasonOptedOut     = "opted-out"

	// Denied: a bad annotation (possibly with pod-spec problems too); only
	// pod-spec problems (the files' owner, the OS).
	ReasonAnnotations = "annotations"
	ReasonPodSpec     = "pod-spec"

	// Error: the request could not be decoded; the webhook failed.
	ReasonDecode   = "decode"
	ReasonInternal = "internal"
	// ReasonCanceled: the request's context ended (the API server gave up)
	// before the webhook finished.
	ReasonCanceled = "canceled"
)

var allOutcomes = map[string][]string{
	ResultInjected: {ReasonNew, ReasonRefreshed, ReasonUnchanged},
	ResultSkipped:  {ReasonNotCreate, ReasonNotPod, ReasonNotRequested, ReasonOptedOut},
	ResultDenied:   {ReasonAnnotations, ReasonPodSpec},
	ResultError:    {ReasonDecode, ReasonInternal, ReasonCanceled},
}

// Metrics counts the webhook's decisions.
type Metrics struct {
	pods *prometheus.CounterVec
}

// NewMetrics registers secretfetch_webhook_pods_total on reg. Registering
// twice on one registry returns the counter already there, so a process
// may start the webhook more than once (tests do).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	pods := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "secretfetch_webhook_pods_total",
		Help: "Pods seen by the secretfetch webhook, by result (injected, skipped, denied, error) and reason. Dry-run requests count too.",
	}, []string{"result", "reason"})
	if err := reg.Register(pods); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, fmt.Errorf("registering the pods counter: %w", err)
		}
		existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
		if !ok {
			return nil, fmt.Errorf("registering the pods counter: %w", err)
		}
		pods = existing
	}
	// Start every series at zero so that rates and alerts see them before
	// the first event.
	for result, reasons := range allOutcomes {
		for _, reason := range reasons {
			pods.WithLabelValues(result, reason)
		}
	}
	return &Metrics{pods: pods}, nil
}

func (m *Metrics) count(result, reason string) {
	if m != nil {
		m.pods.WithLabelValues(result, reason).Inc()
	}
}
