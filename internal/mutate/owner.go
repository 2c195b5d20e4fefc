package mutate

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/secretfetch/secretfetch/internal/plan"
)

// NonRootUID is the UID the init container runs as when the readers' own UID
// cannot own the files (they run as root, or they read through a group). It
// is distroless's "nonroot" user, the user of the secretfetch images.
const NonRootUID int64 = 65532

// reader is one selected container and the identity it runs with.
type reader struct {
	name     string
	path     *field.Path // the container, e.g. spec.containers[1]
	uid, gid *int64      // effective runAsUser and runAsGroup; nil when unset
	uidPath  *field.Path // where the effective runAsUser comes from, or would be set
}

// resolveOwner decides the UID and GID the init container runs as, so that
// the files it writes are readable by every reader. The rules are in the
// package comment.
func resolveOwner(pod *corev1.Pod, names []string, secrets []plan.Secret) (uid, gid int64, errs field.ErrorList) {
	podSC := pod.Spec.SecurityContext
	if podSC == nil {
		podSC = &corev1.PodSecurityContext{}
	}
	podUIDPath := field.NewPath("spec", "securityContext", "runAsUser")
	hasFSGroup := podSC.FSGroup != nil

	// groupReadable: every file can be read without being its owner, so the
	// owner does not have to be a reader. ownerOrGroup0440: some file is
	// 0440 without fsGroup, so its group must be the readers' group.
	groupReadable, ownerOrGroup0440 := true, false
	for _, s := range secrets {
		switch s.FileMode() {
		case 0o444:
		case 0o440:
			if !hasFSGroup {
				groupReadable, ownerOrGroup0440 = false, true
			}
		default:
			groupReadable = false
		}
	}

	readers := make([]reader, 0, len(names))
	for _, name := range names {
		c, cp := containerAt(pod, name)
		r := reader{name: name, path: cp, uid: podSC.RunAsUser, gid: podSC.RunAsGroup, uidPath: podUIDPath}
		if c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil {
			r.uid, r.uidPath = c.SecurityContext.RunAsUser, cp.Child("securityContext", "runAsUser")
		}
		if c.SecurityContext != nil && c.SecurityContext.RunAsGroup != nil {
			r.gid = c.SecurityContext.RunAsGroup
		}
		if r.uid == nil {
			r.uidPath = cp.Child("securityContext", "runAsUser")
		}
		readers = append(readers, r)
	}
	if len(readers) == 0 {
		return 0, 0, field.ErrorList{field.Required(field.NewPath("spec", "containers"),
			"the pod has no container to mount the secrets in")}
	}

	uids := distinct(readers, func(r reader) *int64 { return r.uid })
	missing := slices.ContainsFunc(readers, func(r reader) bool { return r.uid == nil })
	switch {
	case !missing && len(uids) == 1 && uids[0] != 0:
		uid = uids[0]
	case groupReadable:
		// The readers read through fsGroup or "other", so the owner only
		// has to be someone who is not root.
		uid = NonRootUID
	default:
		const alternative = `or give every secret mode 0440 (secretfetch.io/mode-<name>: "0440") and set spec.securityContext.fsGroup`
		for _, r := range readers {
			switch {
			case r.uid == nil:
				errs = append(errs, field.Required(r.uidPath, fmt.Sprintf(
					"container %q runs as its image's user, which the webhook cannot see, so it cannot make that user the owner of the 0400 files; "+
						"set spec.securityContext.runAsUser (or this container's runAsUser), %s", r.name, alternative)))
			case *r.uid == 0:
				errs = append(errs, field.Forbidden(r.uidPath, fmt.Sprintf(
					"container %q runs as root (UID 0), but the init container never runs as root: it writes the files as UID %d, "+
						"and root can read a 0400 file owned by another user only with CAP_DAC_OVERRIDE, which the webhook does not rely on; "+
						"run the container as a non-root UID, %s, or use mode 0444", r.name, NonRootUID, alternative)))
			}
		}
		if len(uids) > 1 {
			errs = append(errs, field.Invalid(podUIDPath, omit, fmt.Sprintf(
				"the containers that read the secrets run as different users (%s), and a 0400 file has one owner; "+
					"give them the same runAsUser, %s", describe(readers, func(r reader) *int64 { return r.uid }, "runAsUser"), alternative)))
		}
		return 0, 0, errs
	}

	gids := distinct(readers, func(r reader) *int64 { return r.gid })
	switch {
	case len(gids) == 1:
		gid = gids[0]
	case len(gids) == 0:
		// No reader names a group. fsGroup is the group every container
		// shares; without it, a 0400 file needs no group, and a 0440 file
		// is read by its owner.
		gid = uid
		if hasFSGroup {
			gid = *podSC.FSGroup
		}
	case ownerOrGroup0440:
		return 0, 0, field.ErrorList{field.Invalid(field.NewPath("spec", "securityContext", "runAsGroup"), omit, fmt.Sprintf(
			"the containers that read the secrets run with different groups (%s), and a 0440 file has one group; "+
				"give them the same runAsGroup, or set spec.securityContext.fsGroup", describe(readers, func(r reader) *int64 { return r.gid }, "runAsGroup")))}
	default:
		// The group does not decide who reads: fsGroup, "other" or the
		// owner does.
		gid = uid
		if hasFSGroup {
			gid = *podSC.FSGroup
		}
	}
	return uid, gid, nil
}

// distinct returns the distinct values of get over the readers that set it,
// in order of first appearance.
func distinct(readers []reader, get func(reader) *int64) []int64 {
	var out []int64
	for _, r := range readers {
		if v := get(r); v != nil && !slices.Contains(out, *v) {
			out = append(out, *v)
		}
	}
	return out
}

func describe(readers []reader, get func(reader) *int64, what string) string {
	var parts []string
	for _, r := range readers {
		if v := get(r); v != nil {
			parts = append(parts, fmt.Sprintf("%q %s %d", r.name, what, *v))
		} else {
			parts = append(parts, fmt.Sprintf("%q no %s", r.name, what))
		}
	}
	return strings.Join(parts, ", ")
}
