package mutate

import (
	"fmt"
	"path"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/secretfetch/secretfetch/internal/grammar"
	"github.com/secretfetch/secretfetch/internal/plan"
)

// Injection is a pod's validated request for secrets: the plan that
// init-fetch runs, and the pod-level settings the mutation needs. Only Parse
// makes one; Apply takes it as given.
type Injection struct {
	// Plan is what init-fetch fetches and where it writes it. Plan.Dir is
	// also the mount path in the readers.
	Plan plan.Plan
	// Readers are the names of the containers (init containers included)
	// that get the read-only mount. Kubernetes keeps container names unique
	// across a pod, so a name is enough.
	Readers []string
	// UID and GID are what the init container runs as, and so the owner of
	// the files (see the package comment).
	UID, GID int64
	// Refresh, when not nil, adds the refresh sidecar (sidecar.go).
	Refresh *Refresh

	// encoded is Plan as plan.Encode wrote it while Parse validated it, so
	// that Apply need not validate (and compile every pattern) again.
	encoded string
}

var annotationsPath = field.NewPath("metadata", "annotations")

func annotationPath(key string) *field.Path { return annotationsPath.Key(key) }

// omit leaves the bad value out of a field.Invalid message, for details
// that already quote it (the plan package's errors do).
var omit = field.OmitValueType{}

// Requested reports whether the pod opted in: true for "true", false for
// "false" or no annotation, and an error for any other value.
func Requested(pod *corev1.Pod) (bool, *field.Error) {
	ok, err := grammar.Requested(pod.Annotations)
	if err != nil {
		return false, toFieldError(err)
	}
	return ok, nil
}

// Parse reads every secretfetch.io annotation of an opted-in pod into a
// validated Injection, with the grammar package, and checks the pod spec
// against it. It reports every problem it finds, not only the first: one
// field.Error per bad annotation, and for the pod spec the field to set.
// defaultRegion is the webhook's --default-region ("" for none).
//
// A pod beyond the limits (see grammar.CheckLimits) gets one problem, the
// limit, and no further parsing.
func Parse(pod *corev1.Pod, defaultRegion string, opts ...ParseOption) (*Injection, field.ErrorList) {
	settings := newParseSettings(opts)
	settings.DefaultRegion = defaultRegion
	checks := &podChecks{pod: pod}
	res, gerrs := grammar.Parse(grammarInput(pod), settings, checks)
	if len(gerrs) > 0 {
		return nil, toFieldErrors(gerrs)
	}
	return &Injection{Plan: res.Plan, Readers: res.Readers, UID: checks.uid, GID: checks.gid,
		Refresh: res.Refresh, encoded: res.Encoded}, nil
}

// grammarInput is what the grammar reads of the pod.
func grammarInput(pod *corev1.Pod) grammar.Input {
	in := grammar.Input{Annotations: pod.Annotations,
		Containers:     make([]string, len(pod.Spec.Containers)),
		InitContainers: make([]string, len(pod.Spec.InitContainers))}
	for i, c := range pod.Spec.Containers {
		in.Containers[i] = c.Name
	}
	for i, c := range pod.Spec.InitContainers {
		in.InitContainers[i] = c.Name
	}
	return in
}

// podChecks are the checks of the pod spec that the grammar cannot make
// from annotations and container names; the grammar calls them in the order
// of the problems. Owner keeps the UID and GID it resolves.
type podChecks struct {
	pod      *corev1.Pod
	uid, gid int64
}

var _ grammar.PodChecks = (*podChecks)(nil)

func (c *podChecks) Mounts(readers []string, readersOK bool, mountPath string, mountPathOK bool) grammar.ErrorList {
	errs := reservedNames(c.pod)
	if readersOK {
		errs = append(errs, foreignMounts(c.pod, readers)...)
		if mountPathOK {
			errs = append(errs, mountCollisions(c.pod, readers, mountPath)...)
		}
	}
	return fromFieldErrors(errs)
}

func (c *podChecks) EnvVar(readers []string, key, name string) grammar.ErrorList {
	return fromFieldErrors(envClashes(c.pod, readers, annotationPath(key), name))
}

func (c *podChecks) EnvRefs(readers []string, vars map[string]string) grammar.ErrorList {
	return fromFieldErrors(append(foreignEnvRefs(c.pod, readers, vars), envVolumeMisuse(c.pod)...))
}

func (c *podChecks) RestartInPlace() grammar.ErrorList {
	return fromFieldErrors(runsToCompletion(c.pod))
}

func (c *podChecks) Owner(readers []string, secrets []plan.Secret) grammar.ErrorList {
	uid, gid, errs := resolveOwner(c.pod, readers, secrets)
	c.uid, c.gid = uid, gid
	return fromFieldErrors(errs)
}

func (c *podChecks) Platform() grammar.ErrorList {
	if os := c.pod.Spec.OS; os != nil && os.Name == corev1.Windows {
		return fromFieldErrors(field.ErrorList{field.Forbidden(field.NewPath("spec", "os", "name"),
			"secretfetch supports Linux pods only: its init container and memory-backed volume are Linux features")})
	}
	return nil
}

// toFieldError converts the grammar's problem into the field.Error of the
// same text: the two have the same fields and error types.
func toFieldError(e *grammar.Error) *field.Error {
	v := e.BadValue
	if _, ok := v.(grammar.OmitValueType); ok {
		v = omit
	}
	return &field.Error{Type: field.ErrorType(e.Type), Field: e.Field, BadValue: v, Detail: e.Detail}
}

func toFieldErrors(errs grammar.ErrorList) field.ErrorList {
	if len(errs) == 0 {
		return nil
	}
	out := make(field.ErrorList, len(errs))
	for i, e := range errs {
		out[i] = toFieldError(e)
	}
	return out
}

// fromFieldErrors hands the pod checks' problems to the grammar, which lists
// them with its own; toFieldErrors turns them back unchanged.
func fromFieldErrors(errs field.ErrorList) grammar.ErrorList {
	if len(errs) == 0 {
		return nil
	}
	out := make(grammar.ErrorList, len(errs))
	for i, e := range errs {
		v := e.BadValue
		if _, ok := v.(field.OmitValueType); ok {
			v = grammar.Omit
		}
		out[i] = &grammar.Error{Type: grammar.ErrorType(e.Type), Field: e.Field, BadValue: v, Detail: e.Detail}
	}
	return out
}

// validateRegion checks a region name (--default-region).
func validateRegion(region string) error { return grammar.ValidateRegion(region) }

// within reports whether the clean absolute path p is dir or below it.
func within(p, dir string) bool { return grammar.Within(p, dir) }

// containerAt finds a container or init container by name.
func containerAt(pod *corev1.Pod, name string) (*corev1.Container, *field.Path) {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i], field.NewPath("spec", "containers").Index(i)
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i], field.NewPath("spec", "initContainers").Index(i)
		}
	}
	return nil, nil
}

// reservedNames refuses a pod that uses the webhook's names for something
// else, rather than silently replacing it.
func reservedNames(pod *corev1.Pod) field.ErrorList {
	var errs field.ErrorList
	for i, v := range pod.Spec.Volumes {
		if v.Name == VolumeName && v.EmptyDir == nil {
			errs = append(errs, field.Invalid(field.NewPath("spec", "volumes").Index(i).Child("name"), v.Name,
				"this volume name is reserved for secretfetch's memory-backed emptyDir; rename the volume"))
		}
	}
	for i, c := range pod.Spec.Containers {
		if c.Name == InitContainerName {
			errs = append(errs, field.Invalid(field.NewPath("spec", "containers").Index(i).Child("name"), c.Name,
				"this container name is reserved for secretfetch's init container; rename the container"))
		}
	}
	return errs
}

// foreignMounts refuses a mount of the secrets volume that the webhook did
// not make: one in a container that is not a reader (it would see the files
// the pod owner did not give it, or write them), or a second one in a
// reader (it could be read-write, or at another path). The one mount in each
// reader is the webhook's to set, read-only, at the mount path.
func foreignMounts(pod *corev1.Pod, readers []string) field.ErrorList {
	var errs field.ErrorList
	check := func(cs []corev1.Container, base *field.Path, init bool) {
		for i := range cs {
			c := &cs[i]
			if init && ownContainer(c.Name) {
				// Rebuilt by Apply (a stray refresh sidecar is denied by
				// the grammar). An app container of that name is the pod's.
				continue
			}
			reader, mounts := slices.Contains(readers, c.Name), 0
			// Cut once and quoted per mount: whole, one long name with
			// thousands of mounts made gigabytes of messages.
			name := truncate(c.Name, maxQuoted)
			for j, m := range c.VolumeMounts {
				if m.Name != VolumeName {
					continue
				}
				mounts++
				mp := base.Index(i).Child("volumeMounts").Index(j)
				switch {
				case !reader:
					errs = append(errs, field.Forbidden(mp, fmt.Sprintf(
						"container %q mounts the secrets volume %s, but it is not one of the containers that read the secrets; remove the mount, or list the container in %s",
						name, VolumeName, AnnotationContainers)))
				case mounts > 1:
					errs = append(errs, field.Forbidden(mp, fmt.Sprintf(
						"container %q mounts the secrets volume %s more than once; the webhook makes the one read-only mount itself, so remove this one",
						name, VolumeName)))
				}
			}
		}
	}
	check(pod.Spec.InitContainers, field.NewPath("spec", "initContainers"), true)
	check(pod.Spec.Containers, field.NewPath("spec", "containers"), false)
	return errs
}

// mountCollisions refuses a mount path that equals, contains or lies inside
// a path the reader already mounts something at: one of the two mounts
// would hide the other.
func mountCollisions(pod *corev1.Pod, readers []string, mountPath string) field.ErrorList {
	var errs field.ErrorList
	// What the messages quote is cut first: each colliding mount is one
	// message, and whole, a long mount path or container name is repeated
	// in every one of them.
	quotedPath := truncate(mountPath, maxQuoted)
	for _, name := range readers {
		c, cp := containerAt(pod, name)
		quotedName := truncate(name, maxQuoted)
		for i, m := range c.VolumeMounts {
			if m.Name == VolumeName {
				continue // ours, from an earlier invocation
			}
			mp := path.Clean(m.MountPath)
			if within(mountPath, mp) || within(mp, mountPath) {
				errs = append(errs, field.Invalid(annotationPath(AnnotationMountPath), omit,
					fmt.Sprintf("%q collides with the mount of volume %q at %q in container %q (%s); choose another directory",
						quotedPath, truncate(m.Name, maxQuoted), truncate(m.MountPath, maxQuoted), quotedName, cp.Child("volumeMounts").Index(i))))
			}
		}
	}
	return errs
}
