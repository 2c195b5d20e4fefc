package mutate

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/secretfetch/secretfetch/internal/grammar"
)

// WithEnvFiles says whether the cluster supports EnvFiles (fileKeyRef),
// from --env-files. Without it, env-<name> is denied.
func WithEnvFiles(enabled bool) ParseOption {
	return func(s *grammar.Settings) { s.NoEnvFiles = !enabled }
}

// withEnvFilesWhy says why EnvFiles is off, for the denial of env-<name>.
func withEnvFilesWhy(why string) ParseOption {
	return func(s *grammar.Settings) { s.NoEnvFilesWhy = why }
}

// ParseOptions are the ParseOptions that the settings imply: Parse with
// them checks a pod as the webhook with these settings does.
func (c Config) ParseOptions() []ParseOption {
	return []ParseOption{WithMinRefreshInterval(c.MinRefreshInterval), WithEnvFiles(!c.NoEnvFiles), withEnvFilesWhy(c.NoEnvFilesWhy), WithRestart(c.Restart),
		WithDefaultFailoverRegion(c.DefaultFailoverRegion)}
}

// parseOptions is ParseOptions, for the handler.
func (c Config) parseOptions() []ParseOption { return c.ParseOptions() }

// foreignEnvRefs refuses a fileKeyRef into the env file that the webhook
// does not make. The env file's volume need not be mounted to be read that
// way, so an entry in a container that is not a reader would hand it the
// values that the pod gave only to the readers (foreignMounts refuses the
// same for the secrets volume). In a reader, an entry named as one of the
// pod's variables is the webhook's own, from an earlier pass, and Apply
// rebuilds it; any other would survive Apply, and is refused too. vars maps
// the pod's variables to their secrets (nil for none).
func foreignEnvRefs(pod *corev1.Pod, readers []string, vars map[string]string) field.ErrorList {
	var errs field.ErrorList
	check := func(cs []corev1.Container, base *field.Path, init bool) {
		for i := range cs {
			c := &cs[i]
			if init && ownContainer(c.Name) {
				continue // rebuilt by Apply; an app container of that name is the pod's
			}
			// Found lazily: few containers have such an entry at all. The
			// name is cut once, not quoted whole per entry.
			var reader *bool
			name := ""
			for j, e := range c.Env {
				if !isOurEnv(e) {
					continue
				}
				if reader == nil {
					reader, name = ptr.To(slices.Contains(readers, c.Name)), truncate(c.Name, maxQuoted)
				}
				ep := base.Index(i).Child("env").Index(j)
				switch _, ours := vars[e.Name]; {
				case !*reader:
					errs = append(errs, field.Forbidden(ep, fmt.Sprintf(
						"container %q reads secretfetch's env file (volume %s) through fileKeyRef, but it is not one of the containers that read the secrets; remove the entry, or list the container in %s",
						name, EnvVolumeName, AnnotationContainers)))
				case !ours:
					errs = append(errs, field.Forbidden(ep, fmt.Sprintf(
						"container %q reads key %q of secretfetch's env file as %s; the webhook sets each variable of %s<name> itself, so remove this entry",
						name, truncate(e.ValueFrom.FileKeyRef.Key, maxQuoted), truncate(e.Name, maxQuoted), EnvPrefix)))
				}
			}
		}
	}
	check(pod.Spec.InitContainers, field.NewPath("spec", "initContainers"), true)
	check(pod.Spec.Containers, field.NewPath("spec", "containers"), false)
	return errs
}

// envClashes refuses a variable that a reader already sets through env: the
// pod would define it twice, and one value would silently win. Our own
// fileKeyRef entries, from an earlier pass, do not count. envFrom is not
// checked: its keys live in ConfigMaps and Secrets that the webhook does not
// read, and an env entry takes precedence over envFrom anyway.
func envClashes(pod *corev1.Pod, readers []string, ep *field.Path, name string) field.ErrorList {
	var errs field.ErrorList
	for _, r := range readers {
		c, cp := containerAt(pod, r)
		quoted := truncate(r, maxQuoted) // cut once, not quoted whole per entry
		for j, e := range c.Env {
			if e.Name == name && !isOurEnv(e) {
				errs = append(errs, field.Invalid(ep, name,
					fmt.Sprintf("container %q already sets this variable (%s); remove it there, or choose another name",
						quoted, cp.Child("env").Index(j))))
			}
		}
	}
	return errs
}

// isOurEnv reports whether an env entry is one the webhook added.
func isOurEnv(e corev1.EnvVar) bool {
	return e.ValueFrom != nil && e.ValueFrom.FileKeyRef != nil && e.ValueFrom.FileKeyRef.VolumeName == EnvVolumeName
}

// envVolumeMisuse refuses a pod that uses the env file's volume name for
// another volume, or mounts it in a container: the env file is for the
// kubelet alone.
func envVolumeMisuse(pod *corev1.Pod) field.ErrorList {
	var errs field.ErrorList
	for i, v := range pod.Spec.Volumes {
		if v.Name == EnvVolumeName && v.EmptyDir == nil {
			errs = append(errs, field.Invalid(field.NewPath("spec", "volumes").Index(i).Child("name"), v.Name,
				"this volume name is reserved for secretfetch's env file; rename the volume"))
		}
	}
	check := func(cs []corev1.Container, list string) {
		for i, c := range cs {
			if c.Name == InitContainerName {
				continue
			}
			for j, m := range c.VolumeMounts {
				if m.Name == EnvVolumeName {
					errs = append(errs, field.Forbidden(field.NewPath("spec", list).Index(i).Child("volumeMounts").Index(j),
						"the volume "+EnvVolumeName+" holds secretfetch's env file, which only the kubelet reads; remove the mount"))
				}
			}
		}
	}
	check(pod.Spec.InitContainers, "initContainers")
	check(pod.Spec.Containers, "containers")
	return errs
}
