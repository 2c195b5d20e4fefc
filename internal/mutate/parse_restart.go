package mutate

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/secretfetch/secretfetch/internal/plan"
)

// Defaults of restart on change (secretfetch.io/refresh-restart).
const (
	// DefaultRestartWindow spreads the restarts of one workload's pods over
	// ten minutes. With R replicas that each take T to restart, about
	// R x T / window pods restart at once: 10 replicas of 10 s, 0.17.
	DefaultRestartWindow = 10 * time.Minute
	// DefaultRestartSpacing is the least time between two rotation restarts
	// of one pod: a secret that flaps restarts it at most this often.
	DefaultRestartSpacing = 15 * time.Minute
)

// RestartConfig holds the cluster-wide settings of restart on change.
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

func (c RestartConfig) window() time.Duration {
	if c.Window == 0 {
		return DefaultRestartWindow
	}
	return c.Window
}

func (c RestartConfig) spacing() time.Duration {
	if c.Spacing == 0 {
		return DefaultRestartSpacing
	}
	return c.Spacing
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
	return func(s *parseSettings) { s.restart = c }
}

// parseRestart reads refresh-restart and refresh-restart-window into r (the
// pod's refresh, nil when refresh is off).
func parseRestart(pod *corev1.Pod, r *Refresh, s parseSettings) field.ErrorList {
	var errs field.ErrorList
	restart, hasRestart := pod.Annotations[AnnotationRefreshRestart]
	window, hasWindow := pod.Annotations[AnnotationRefreshRestartWindow]
	restartPath := annotationPath(AnnotationRefreshRestart)
	if hasRestart && restart != "true" && restart != "false" {
		errs = append(errs, field.NotSupported(restartPath, truncate(restart, maxQuoted), []string{"true", "false"}))
		return errs
	}
	on := restart == "true"
	if !on {
		if hasWindow {
			errs = append(errs, field.Invalid(annotationPath(AnnotationRefreshRestartWindow), omit,
				fmt.Sprintf("it spreads the restarts that %s: \"true\" asks for; set that too, or remove this", AnnotationRefreshRestart)))
		}
		return errs
	}
	if _, hasInterval := pod.Annotations[AnnotationRefreshInterval]; !hasInterval {
		errs = append(errs, field.Required(annotationPath(AnnotationRefreshInterval),
			fmt.Sprintf("%s is set, and the refresh sidecar is what sees a new version: set %s to a Go duration such as 5m, or remove %s",
				AnnotationRefreshRestart, AnnotationRefreshInterval, AnnotationRefreshRestart)))
	}
	if !s.restart.Enabled {
		errs = append(errs, field.Forbidden(restartPath, "this cluster cannot restart a pod in place: "+s.restart.Why+
			"; set "+AnnotationRefreshNotify+" to have the app reload its files, or roll the workload out after a rotation"))
	}
	if p := pod.Spec.RestartPolicy; p != "" && p != corev1.RestartPolicyAlways {
		errs = append(errs, field.Forbidden(restartPath, fmt.Sprintf(
			"the pod has restartPolicy %s (a Job or a one-shot pod), which runs to completion: restarting it in place would run its work again; remove %s",
			p, AnnotationRefreshRestart)))
	}
	d := s.restart.window()
	if hasWindow {
		parsed, err := time.ParseDuration(window)
		switch {
		case len(window) > 32:
			errs = append(errs, field.Invalid(annotationPath(AnnotationRefreshRestartWindow), omit,
				"the value is longer than 32 characters; use a Go duration such as 10m, or 0s to restart at once"))
		case err != nil:
			errs = append(errs, field.Invalid(annotationPath(AnnotationRefreshRestartWindow), window,
				"not a Go duration; use one such as 10m, or 0s to restart at once"))
		default:
			if err := plan.ValidateRestartWindow(parsed); err != nil {
				errs = append(errs, field.Invalid(annotationPath(AnnotationRefreshRestartWindow), window, err.Error()))
			}
			d = parsed
		}
	}
	if r != nil && len(errs) == 0 {
		r.Restart = &Restart{Window: d, Spacing: s.restart.spacing()}
	}
	return errs
}

// Restart is a pod's request to be restarted in place when a secret changes.
type Restart struct {
	// Window spreads the restarts of a workload's pods; 0 restarts at once.
	Window time.Duration
	// Spacing is the least time between two restarts of the pod.
	Spacing time.Duration
}

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
