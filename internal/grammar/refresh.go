package grammar

import (
	"fmt"
	"time"

	"github.com/secretfetch/secretfetch/internal/plan"
)

// parseRefresh reads refresh-interval and refresh-notify: nil when refresh
// is off, or has problems.
func (p *parser) parseRefresh() *Refresh {
	interval, hasInterval := p.in.Annotations[AnnotationRefreshInterval]
	notify, hasNotify := p.in.Annotations[AnnotationRefreshNotify]
	if !hasInterval {
		p.refreshOff(hasNotify)
		return nil
	}
	before := len(p.errs)
	r := &Refresh{NotifyURL: notify}
	r.Interval = p.parseInterval(interval)
	if hasNotify {
		if err := plan.ValidateNotifyURL(notify); err != nil {
			p.add(invalid(annotation(AnnotationRefreshNotify), Omit, err.Error()))
		}
	}
	for i, c := range p.in.Containers {
		if c == RefreshContainerName {
			p.add(invalid(fmt.Sprintf("spec.containers[%d].name", i), c,
				"this container name is reserved for secretfetch's refresh sidecar; rename the container"))
		}
	}
	if len(p.errs) > before {
		return nil
	}
	return r
}

// refreshOff checks a pod without refresh-interval.
func (p *parser) refreshOff(hasNotify bool) {
	// Without refresh, the mutation does not rebuild a container of this
	// name, so one that the pod declares would keep whatever it says, a
	// read-write mount of the volume included.
	for i, c := range p.in.InitContainers {
		if c == RefreshContainerName {
			p.add(invalid(fmt.Sprintf("spec.initContainers[%d].name", i), c,
				fmt.Sprintf("this container name is reserved for secretfetch's refresh sidecar, which %s adds; rename the container", AnnotationRefreshInterval)))
		}
	}
	if hasNotify {
		p.add(required(annotation(AnnotationRefreshInterval),
			fmt.Sprintf("%s is set, so refresh must be on: set %s to a Go duration such as 5m, or remove %s",
				AnnotationRefreshNotify, AnnotationRefreshInterval, AnnotationRefreshNotify)))
	}
}

// parseInterval reads refresh-interval; 0 when it has a problem.
func (p *parser) parseInterval(v string) time.Duration {
	fp, min := annotation(AnnotationRefreshInterval), p.s.MinRefreshInterval
	if len(v) > 32 {
		p.add(invalid(fp, Omit,
			fmt.Sprintf("the value is longer than 32 characters; use a Go duration between %v and %v such as 5m", min, plan.MaxRefreshInterval)))
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		p.add(invalid(fp, v, fmt.Sprintf("not a Go duration; use one between %v and %v such as 5m", min, plan.MaxRefreshInterval)))
		return 0
	}
	if err := plan.ValidateRefreshInterval(d, min); err != nil {
		p.add(invalid(fp, v, err.Error()))
		return 0
	}
	return d
}
