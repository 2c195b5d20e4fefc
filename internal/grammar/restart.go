package grammar

import (
	"fmt"
	"time"

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

// RestartSettings are the cluster-wide settings of restart on change.
type RestartSettings struct {
	// Enabled says the cluster can restart a pod's containers in place
	// (restartPolicyRules with RestartAllContainers, Kubernetes 1.36+) and
	// the operator has not turned it off.
	Enabled bool
	// Why says, when Enabled is false, why: it ends the denial of a pod that
	// asks for refresh-restart.
	Why string
	// Window is the default of secretfetch.io/refresh-restart-window; 0
	// means DefaultRestartWindow.
	Window time.Duration
	// Spacing is the least time between two rotation restarts of one pod;
	// 0 means DefaultRestartSpacing.
	Spacing time.Duration
}

func (c RestartSettings) window() time.Duration {
	if c.Window == 0 {
		return DefaultRestartWindow
	}
	return c.Window
}

func (c RestartSettings) spacing() time.Duration {
	if c.Spacing == 0 {
		return DefaultRestartSpacing
	}
	return c.Spacing
}

// parseRestart reads refresh-restart and refresh-restart-window into r (the
// pod's refresh, nil when refresh is off or has problems).
func (p *parser) parseRestart(r *Refresh) {
	restart, hasRestart := p.in.Annotations[AnnotationRefreshRestart]
	window, hasWindow := p.in.Annotations[AnnotationRefreshRestartWindow]
	restartPath := annotation(AnnotationRefreshRestart)
	if hasRestart && restart != "true" && restart != "false" {
		p.add(notSupported(restartPath, Truncate(restart, MaxQuoted), []string{"true", "false"}))
		return
	}
	if restart != "true" {
		if hasWindow {
			p.add(invalid(annotation(AnnotationRefreshRestartWindow), Omit,
				fmt.Sprintf("it spreads the restarts that %s: \"true\" asks for; set that too, or remove this", AnnotationRefreshRestart)))
		}
		return
	}
	before := len(p.errs)
	if _, hasInterval := p.in.Annotations[AnnotationRefreshInterval]; !hasInterval {
		p.add(required(annotation(AnnotationRefreshInterval),
			fmt.Sprintf("%s is set, and the refresh sidecar is what sees a new version: set %s to a Go duration such as 5m, or remove %s",
				AnnotationRefreshRestart, AnnotationRefreshInterval, AnnotationRefreshRestart)))
	}
	if !p.s.Restart.Enabled {
		p.add(forbidden(restartPath, "this cluster cannot restart a pod in place: "+p.s.Restart.Why+
			"; set "+AnnotationRefreshNotify+" to have the app reload its files, or roll the workload out after a rotation"))
	}
	p.add(p.pod.RestartInPlace()...)
	d := p.s.Restart.window()
	if hasWindow {
		d = p.parseWindow(window, d)
	}
	if r != nil && len(p.errs) == before {
		r.Restart = &Restart{Window: d, Spacing: p.s.Restart.spacing()}
	}
}

// parseWindow reads refresh-restart-window; def when it has a problem.
func (p *parser) parseWindow(v string, def time.Duration) time.Duration {
	fp := annotation(AnnotationRefreshRestartWindow)
	if len(v) > 32 {
		p.add(invalid(fp, Omit, "the value is longer than 32 characters; use a Go duration such as 10m, or 0s to restart at once"))
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		p.add(invalid(fp, v, "not a Go duration; use one such as 10m, or 0s to restart at once"))
		return def
	}
	if err := plan.ValidateRestartWindow(d); err != nil {
		p.add(invalid(fp, v, err.Error()))
	}
	return d
}
