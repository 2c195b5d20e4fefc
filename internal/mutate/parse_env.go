package mutate

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/secretfetch/secretfetch/internal/plan"
)

// WithEnvFiles says whether the cluster supports EnvFiles (fileKeyRef),
// from --env-files. Without it, env-<name> is denied.
func WithEnvFiles(enabled bool) ParseOption {
	return func(s *parseSettings) { s.noEnvFiles = !enabled }
}

// parseOptions are the ParseOptions that cfg implies.
func (c Config) parseOptions() []ParseOption {
	return []ParseOption{WithMinRefreshInterval(c.MinRefreshInterval), WithEnvFiles(!c.NoEnvFiles), WithRestart(c.Restart)}
}

// parseOutputs reads env-<name>, file-<name>, format-<name> and
// allow-keys-<name> into the plan's secrets, and checks them against the
// pod: what each secret is delivered as (a file, a rendered file, an
// environment variable) is decided here and nowhere else.
func parseOutputs(pod *corev1.Pod, p *plan.Plan, secrets map[string]*secretKeys, readers []string, st parseSettings) field.ErrorList {
	var errs field.ErrorList
	var envOwner map[string]string // variable -> the name whose env- key sets it; made on first use
	// Checked first: envClashes looks through every reader per variable.
	vars := 0
	for _, s := range secrets {
		if _, ok := s.other[EnvPrefix]; ok {
			vars++
		}
	}
	tooMany := vars*len(readers) > MaxEnvEntries
	if tooMany {
		errs = append(errs, field.Invalid(annotationsPath, omit, fmt.Sprintf(
			"%d variables (%s<name>) in %d containers would add %d env entries; a pod may get at most %d: list the containers that need them in %s, or use fewer variables",
			vars, EnvPrefix, len(readers), vars*len(readers), MaxEnvEntries, AnnotationContainers)))
	}
	for i := range p.Secrets {
		sec := &p.Secrets[i]
		s := secrets[sec.File]
		if v, ok := s.other[FilePrefix]; ok {
			switch v {
			case "true":
			case "false":
				sec.NoFile = true
			default:
				errs = append(errs, field.NotSupported(annotationPath(FilePrefix+sec.File), v, []string{"true", "false"}))
			}
		}
		if v, ok := s.other[FormatPrefix]; ok {
			fp := annotationPath(FormatPrefix + sec.File)
			if f, err := plan.ParseFormat(v); err != nil {
				errs = append(errs, field.NotSupported(fp, v, []string{"dotenv", "json", "properties", "yaml"}))
			} else {
				sec.Format = f
			}
			if sec.NoFile {
				errs = append(errs, field.Forbidden(fp, fmt.Sprintf("%s%s is \"false\", so there is no file to render; remove one of the two", FilePrefix, sec.File)))
			}
		}
		if v, ok := s.other[AllowKeysPrefix]; ok {
			keys, allowErrs := parseAllowKeys(sec, v, s.other)
			sec.AllowKeys = keys
			errs = append(errs, allowErrs...)
		}
		if _, ok := s.other[ModePrefix]; ok && sec.NoFile {
			errs = append(errs, field.Forbidden(annotationPath(ModePrefix+sec.File),
				fmt.Sprintf("%s%s is \"false\", so there is no file to give a mode; remove one of the two", FilePrefix, sec.File)))
		}
		v, ok := s.other[EnvPrefix]
		if !ok {
			if sec.NoFile {
				errs = append(errs, field.Invalid(annotationPath(FilePrefix+sec.File), "false",
					fmt.Sprintf("with no file, the secret goes nowhere: add %s%s to deliver it as an environment variable, or remove this key", EnvPrefix, sec.File)))
			}
			continue
		}
		ep := annotationPath(EnvPrefix + sec.File)
		if st.noEnvFiles {
			errs = append(errs, field.Forbidden(ep,
				"EnvFiles needs Kubernetes 1.35 or later, and this webhook runs with --env-files=false; deliver the secret as a file instead"))
			continue
		}
		if msgs := validation.IsEnvVarName(v); len(msgs) > 0 {
			errs = append(errs, field.Invalid(ep, v, strings.Join(msgs, "; ")))
			continue
		}
		if other, dup := envOwner[v]; dup {
			errs = append(errs, field.Invalid(ep, v, fmt.Sprintf("%s%s already sets this variable; variable names must be unique in the pod", EnvPrefix, other)))
			continue
		}
		if envOwner == nil {
			envOwner = map[string]string{}
		}
		envOwner[v] = sec.File
		if sec.Format != "" {
			errs = append(errs, field.Forbidden(ep, fmt.Sprintf("%s%s renders a file of many keys, and a variable takes one value; use %s%s to pick one field",
				FormatPrefix, sec.File, KeyPrefix, sec.File)))
		}
		if !tooMany {
			errs = append(errs, envClashes(pod, readers, ep, v)...)
		}
		sec.Env = v
	}
	if len(envOwner) > 0 {
		p.EnvDir = EnvMountPath
		if within(p.Dir, EnvMountPath) || within(EnvMountPath, p.Dir) {
			errs = append(errs, field.Invalid(annotationPath(AnnotationMountPath), p.Dir,
				fmt.Sprintf("overlaps %s, where the init container writes the env file; choose another directory", EnvMountPath)))
		}
	}
	errs = append(errs, foreignEnvRefs(pod, readers, envOwner)...)
	return append(errs, envVolumeMisuse(pod)...)
}

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
