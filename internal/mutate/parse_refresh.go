package mutate

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/secretfetch/secretfetch/internal/plan"
)

// DefaultMinRefreshInterval is the shortest refresh interval a pod may ask
// for unless --min-refresh-interval says otherwise. Each pod polls each of
// its secrets once per interval, so the minimum bounds what one namespace
// can cost the account's Secrets Manager quota.
const DefaultMinRefreshInterval = time.Minute

// Refresh is a pod's request to keep its files current.
type Refresh struct {
	// Interval is the time between polls.
	Interval time.Duration
	// NotifyURL, when set, receives a POST after each swap.
	NotifyURL string
	// Restart, when not nil, restarts the pod in place on a new version
	// (parse_restart.go).
	Restart *Restart
}

// ParseOption changes how Parse checks a pod against the webhook's settings.
type ParseOption func(*parseSettings)

type parseSettings struct {
	minRefreshInterval time.Duration
	// noEnvFiles denies env-<name> (see WithEnvFiles in parse_env.go).
	noEnvFiles bool
	// restart is the cluster's restart on change (see WithRestart).
	restart RestartConfig
}

// WithMinRefreshInterval sets the shortest refresh interval allowed
// (--min-refresh-interval); 0 means DefaultMinRefreshInterval.
func WithMinRefreshInterval(d time.Duration) ParseOption {
	return func(s *parseSettings) { s.minRefreshInterval = d }
}

func newParseSettings(opts []ParseOption) parseSettings {
	s := parseSettings{}
	for _, o := range opts {
		o(&s)
	}
	if s.minRefreshInterval <= 0 {
		s.minRefreshInterval = DefaultMinRefreshInterval
	}
	return s
}

// parseRefresh reads the refresh annotations: nil when refresh is off.
func parseRefresh(pod *corev1.Pod, s parseSettings) (*Refresh, field.ErrorList) {
	var errs field.ErrorList
	interval, hasInterval := pod.Annotations[AnnotationRefreshInterval]
	notify, hasNotify := pod.Annotations[AnnotationRefreshNotify]
	if !hasInterval {
		// Without refresh, Apply does not rebuild a container of this
		// name, so one that the pod declares would keep whatever it says,
		// a read-write mount of the volume included.
		for i, c := range pod.Spec.InitContainers {
			if c.Name == RefreshContainerName {
				errs = append(errs, field.Invalid(field.NewPath("spec", "initContainers").Index(i).Child("name"), c.Name,
					fmt.Sprintf("this container name is reserved for secretfetch's refresh sidecar, which %s adds; rename the container", AnnotationRefreshInterval)))
			}
		}
		if hasNotify {
			errs = append(errs, field.Required(annotationPath(AnnotationRefreshInterval),
				fmt.Sprintf("%s is set, so refresh must be on: set %s to a Go duration such as 5m, or remove %s",
					AnnotationRefreshNotify, AnnotationRefreshInterval, AnnotationRefreshNotify)))
		}
		return nil, errs
	}
	r := &Refresh{NotifyURL: notify}
	if len(interval) > 32 {
		errs = append(errs, field.Invalid(annotationPath(AnnotationRefreshInterval), omit,
			fmt.Sprintf("the value is longer than 32 characters; use a Go duration between %v and %v such as 5m", s.minRefreshInterval, plan.MaxRefreshInterval)))
	} else if d, err := time.ParseDuration(interval); err != nil {
		errs = append(errs, field.Invalid(annotationPath(AnnotationRefreshInterval), interval,
			fmt.Sprintf("not a Go duration; use one between %v and %v such as 5m", s.minRefreshInterval, plan.MaxRefreshInterval)))
	} else if err := plan.ValidateRefreshInterval(d, s.minRefreshInterval); err != nil {
		errs = append(errs, field.Invalid(annotationPath(AnnotationRefreshInterval), interval, err.Error()))
	} else {
		r.Interval = d
	}
	if hasNotify {
		if err := plan.ValidateNotifyURL(notify); err != nil {
			errs = append(errs, field.Invalid(annotationPath(AnnotationRefreshNotify), omit, err.Error()))
		}
	}
	for i, c := range pod.Spec.Containers {
		if c.Name == RefreshContainerName {
			errs = append(errs, field.Invalid(field.NewPath("spec", "containers").Index(i).Child("name"), c.Name,
				"this container name is reserved for secretfetch's refresh sidecar; rename the container"))
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return r, nil
}

// polls reports whether the refresh sidecar polls s: a secret whose version
// is not pinned, and that is a file, or an env var when the pod is restarted
// on a change (otherwise a variable is read once, when its container
// starts, and a new version could reach nobody).
func (r *Refresh) polls(s plan.Secret) bool {
	return s.VersionID == "" && (!s.NoFile || r.Restart != nil)
}
