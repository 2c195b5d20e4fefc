// Package grammar reads a pod's secretfetch.io annotations into a plan.
//
// It is the one grammar behind three doors: the webhook (internal/mutate)
// parses an admitted pod with it; init-fetch parses the pod's annotations
// from a downward-API file with it when it finds no encoded plan (the policy
// mode); and the offline render command parses the pod templates of a
// manifest with it. So it takes no Kubernetes types: the annotations, the
// container names and the settings go in; a validated plan and the pod-level
// settings (readers, refresh, restart) come out, or every problem found, each
// naming its annotation and what is allowed.
//
// The checks that need more of the pod than names (its mounts, env entries,
// volumes, restart policy and security context) are the caller's, through
// PodChecks: the parser calls them where they belong in its order, so that a
// denial lists problems in the same order whichever door it comes through.
//
// It depends on the standard library and on secretfetch's own
// dependency-free packages only, because init-fetch links it.
package grammar

import (
	"time"

	"github.com/secretfetch/secretfetch/internal/plan"
)

// Input is what the grammar reads of a pod.
type Input struct {
	// Annotations are the pod's annotations; keys outside Prefix are
	// ignored.
	Annotations map[string]string
	// Containers and InitContainers are the names of the pod's containers
	// (spec.containers) and init containers, in order. The mutation's own
	// containers may be among the init containers.
	Containers     []string
	InitContainers []string
}

// Settings are the cluster-wide settings the grammar checks a pod against:
// the webhook's flags, or the policy's parameters.
type Settings struct {
	// DefaultRegion is the region for secrets given by name when the pod
	// sets no secretfetch.io/region ("" for none).
	DefaultRegion string
	// DefaultFailoverRegion is the region of the secrets' replicas when
	// the pod sets no secretfetch.io/failover-region ("" for none).
	DefaultFailoverRegion string
	// MinRefreshInterval is the shortest refresh interval allowed; 0 means
	// DefaultMinRefreshInterval.
	MinRefreshInterval time.Duration
	// NoEnvFiles says the cluster lacks EnvFiles (fileKeyRef): env-<name>
	// is then denied.
	NoEnvFiles bool
	// NoEnvFilesWhy says why, for the denial: the cluster's version, or
	// (when empty) the operator's --env-files=false.
	NoEnvFilesWhy string
	// Restart holds restart on change: whether the cluster can, and its
	// default window and spacing.
	Restart RestartSettings
}

// DefaultMinRefreshInterval is the shortest refresh interval a pod may ask
// for unless Settings.MinRefreshInterval says otherwise. Each pod polls each
// of its secrets once per interval, so the minimum bounds what one namespace
// can cost the account's Secrets Manager quota.
const DefaultMinRefreshInterval = time.Minute

func (s Settings) withDefaults() Settings {
	if s.MinRefreshInterval <= 0 {
		s.MinRefreshInterval = DefaultMinRefreshInterval
	}
	return s
}

// Result is a pod's validated request for secrets.
type Result struct {
	// Plan is what init-fetch fetches and where it writes it. Plan.Dir is
	// also the mount path in the readers.
	Plan plan.Plan
	// Encoded is Plan as plan.Encode wrote it while Parse validated it, so
	// that no caller need validate (and compile every pattern) again.
	Encoded string
	// Readers are the names of the containers (init containers included)
	// that get the read-only mount.
	Readers []string
	// Refresh, when not nil, asks for the refresh sidecar.
	Refresh *Refresh
}

// Refresh is a pod's request to keep its files current.
type Refresh struct {
	// Interval is the time between polls.
	Interval time.Duration
	// NotifyURL, when set, receives a POST after each swap.
	NotifyURL string
	// Restart, when not nil, restarts the pod in place on a new version.
	Restart *Restart
}

// Restart is a pod's request to be restarted in place when a secret changes.
type Restart struct {
	// Window spreads the restarts of a workload's pods; 0 restarts at once.
	Window time.Duration
	// Spacing is the least time between two restarts of the pod.
	Spacing time.Duration
}

// PodChecks are the checks that need more of the pod than its annotations
// and container names. Parse calls each at its place in the order of the
// problems, and adds what it returns. The webhook and the render command
// pass the pod's; init-fetch, which sees the pod only through the downward
// API, passes nil, and these checks are then the admission's alone.
type PodChecks interface {
	// Mounts checks the pod's volumes and mounts against the secrets
	// volume: readersOK is false when the containers annotation has
	// problems, and mountPathOK when the mount path has.
	Mounts(readers []string, readersOK bool, mountPath string, mountPathOK bool) ErrorList
	// EnvVar checks that no reader sets the variable name already; key is
	// the env-<name> annotation that asks for it.
	EnvVar(readers []string, key, name string) ErrorList
	// EnvRefs checks the pod's references to the env file: vars maps each
	// variable to the <name> of its secret (nil for none).
	EnvRefs(readers []string, vars map[string]string) ErrorList
	// RestartInPlace checks that the pod may be restarted in place, for
	// refresh-restart: "true".
	RestartInPlace() ErrorList
	// Owner resolves who owns the files, from the readers' security
	// context. It is called only when the readers and the file modes are
	// valid.
	Owner(readers []string, secrets []plan.Secret) ErrorList
	// Platform checks, last, that the pod runs where the mutation works.
	Platform() ErrorList
}

// noPodChecks is PodChecks for a caller that has only the annotations and
// the container names.
type noPodChecks struct{}

func (noPodChecks) Mounts([]string, bool, string, bool) ErrorList { return nil }
func (noPodChecks) EnvVar([]string, string, string) ErrorList     { return nil }
func (noPodChecks) EnvRefs([]string, map[string]string) ErrorList { return nil }
func (noPodChecks) RestartInPlace() ErrorList                     { return nil }
func (noPodChecks) Owner([]string, []plan.Secret) ErrorList       { return nil }
func (noPodChecks) Platform() ErrorList                           { return nil }

// Requested reports whether the pod opted in: true for "true", false for
// "false" or no annotation, and an error for any other value.
func Requested(annotations map[string]string) (bool, *Error) {
	v, ok := annotations[AnnotationInject]
	if !ok {
		return false, nil
	}
	switch v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, notSupported(annotation(AnnotationInject), v, []string{"true", "false"})
}
