package mutate

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/secretfetch/secretfetch/internal/grammar"
	"github.com/secretfetch/secretfetch/internal/plan"
)

// Defaults of restart on change (secretfetch.io/refresh-restart).
const (
	DefaultRestartWindow  = grammar.DefaultRestartWindow
	DefaultRestartSpacing = grammar.DefaultRestartSpacing
)

// RestartConfig holds the cluster-wide settings of restart on change, from
// the webhook's flags and the cluster's version. It converts to the
// grammar's RestartSettings as it is.
type RestartConfig struct {
	// Enabled says the cluster can restart a pod's containers in place
	// (restartPolicyRules with RestartAllContainers, Kubernetes 1.36+) and
	// the operator has not turned it off. The zero value, off, is the safe
	// one: the webhook turns it on from what the API server reports.
	Enabled bool
	// Why says, when Enabled is false, why: it ends the denial of a pod that
	// asks for refresh-restart.
	Why string
	// Window is the default of secretfetch.io/refresh-restart-window
	// (--refresh-restart-window); 0 means DefaultRestartWindow.
	Window time.Duration
	// Spacing is the least time between two rotation restarts of one pod
	// (--refresh-restart-spacing); 0 means DefaultRestartSpacing.
	Spacing time.Duration
}

// validate checks the operator's settings at start-up.
func (c RestartConfig) validate() error {
	if c.Window != 0 {
		if err := plan.ValidateRestartWindow(c.Window); err != nil {
			return fmt.Errorf("--refresh-restart-window: %w", err)
		}
	}
	if c.Spacing != 0 {
		if err := plan.ValidateRestartSpacing(c.Spacing); err != nil {
			return fmt.Errorf("--refresh-restart-spacing: %w", err)
		}
	}
	return nil
}

// WithRestart gives Parse the cluster's restart settings.
func WithRestart(c RestartConfig) ParseOption {
	return func(s *grammar.Settings) { s.Restart = grammar.RestartSettings(c) }
}

// runsToCompletion refuses restart on change for a pod that runs to
// completion.
func runsToCompletion(pod *corev1.Pod) field.ErrorList {
	if p := pod.Spec.RestartPolicy; p != "" && p != corev1.RestartPolicyAlways {
		return field.ErrorList{field.Forbidden(annotationPath(AnnotationRefreshRestart), fmt.Sprintf(
			"the pod has restartPolicy %s (a Job or a one-shot pod), which runs to completion: restarting it in place would run its work again; remove %s",
			p, AnnotationRefreshRestart))}
	}
	return nil
}

// Restart is a pod's request to be restarted in place when a secret changes.
type Restart = grammar.Restart

// Flags of init-fetch's refresh mode for restart on change.
const (
	flagRefreshRestart        = "--refresh-restart"
	flagRefreshRestartWindow  = "--refresh-restart-window="
	flagRefreshRestartSpacing = "--refresh-restart-spacing="
)

// applyRestart makes the refresh sidecar restart the pod: the flags that
// turn restart mode on, and the rule that has the kubelet restart every
// container in place when the sidecar exits with plan.RestartExitCode.
func applyRestart(c *corev1.Container, r *Restart) {
	if r == nil {
		return
	}
	c.Args = append(c.Args, flagRefreshRestart,
		flagRefreshRestartWindow+r.Window.String(),
		flagRefreshRestartSpacing+r.Spacing.String())
	c.RestartPolicyRules = []corev1.ContainerRestartRule{{
		Action: corev1.ContainerRestartRuleActionRestartAllContainers,
		ExitCodes: &corev1.ContainerRestartRuleOnExitCodes{
			Operator: corev1.ContainerRestartRuleOnExitCodesOpIn,
			Values:   []int32{plan.RestartExitCode},
		},
	}}
	// The rules need an explicit restartPolicy; the sidecar's is Always.
	c.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
}
