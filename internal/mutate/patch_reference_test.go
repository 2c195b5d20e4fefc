package mutate

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// The reference construction below marshals a view of the pod before and
// after Apply and diffs the two with jsonpatch.CreatePatch; it was the
// handler's until buildPatch replaced it (see docs/benchmarks.md).
//
// podView is the part of a pod that the webhook writes, in the pod's own
// JSON shape: the namespace (taken from the request), the status annotation,
// the secrets and env file volumes and the init container in full, the name
// of every other volume, and the name and volume mounts of every other
// container, with its env when the pod asks for variables (asksForEnv).
//
// The patch is computed by controller-runtime from the views of the pod
// before and after Apply, rather than from the whole documents. The answer is
// the same, because Apply writes nothing outside the view, but the documents
// compared are a fraction of the pod: decoding both into maps and comparing
// them was a third of the webhook's CPU time. Two more things follow:
//   - Both views come from the typed pod, so fields this webhook's API
//     version does not know are in neither, and the patch leaves them alone:
//     no round-trip "remove" operations to filter out.
//   - Arrays keep their length and order, so a path such as
//     /spec/containers/1/volumeMounts/2 means the same in the view and in
//     the pod. checkPaths makes sure that no operation writes what a view
//     leaves out.
type podView struct {
	Metadata struct {
		Namespace string `json:"namespace,omitempty"`
		// Annotations holds only AnnotationStatus. It is encoded even when
		// empty, so that the status is added as one key: the pod has
		// annotations already, since it opted in with one.
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		Volumes        []corev1.Volume    `json:"volumes,omitempty"`
		InitContainers []corev1.Container `json:"initContainers,omitempty"`
		Containers     []corev1.Container `json:"containers,omitempty"`
	} `json:"spec"`
}

// newPodView copies the view out of pod, so that mutating pod afterwards
// leaves the view as it was.
func newPodView(pod *corev1.Pod) *podView {
	v := &podView{}
	v.Metadata.Namespace = pod.Namespace
	v.Metadata.Annotations = map[string]string{}
	if status, ok := pod.Annotations[AnnotationStatus]; ok {
		v.Metadata.Annotations[AnnotationStatus] = status
	}
	if pod.Spec.Volumes != nil {
		v.Spec.Volumes = make([]corev1.Volume, len(pod.Spec.Volumes))
		for i := range pod.Spec.Volumes {
			if n := pod.Spec.Volumes[i].Name; n == VolumeName || n == EnvVolumeName {
				pod.Spec.Volumes[i].DeepCopyInto(&v.Spec.Volumes[i])
			} else {
				v.Spec.Volumes[i].Name = pod.Spec.Volumes[i].Name
			}
		}
	}
	withEnv := asksForEnv(pod)
	v.Spec.InitContainers = containerViews(pod.Spec.InitContainers, withEnv)
	v.Spec.Containers = containerViews(pod.Spec.Containers, withEnv)
	return v
}

// containerViews copies the init container in full, and the name and volume
// mounts of every other container, and its env when withEnv is set.
func containerViews(cs []corev1.Container, withEnv bool) []corev1.Container {
	if cs == nil {
		return nil
	}
	out := make([]corev1.Container, len(cs))
	for i := range cs {
		if ownContainer(cs[i].Name) {
			cs[i].DeepCopyInto(&out[i])
			continue
		}
		out[i] = corev1.Container{Name: cs[i].Name, VolumeMounts: slices.Clone(cs[i].VolumeMounts)}
		if withEnv {
			out[i].Env = cloneEnv(cs[i].Env)
		}
	}
	return out
}

// cloneEnv copies env deeply: Apply edits the entries it owns in place.
func cloneEnv(env []corev1.EnvVar) []corev1.EnvVar {
	if env == nil {
		return nil
	}
	out := make([]corev1.EnvVar, len(env))
	for i := range env {
		env[i].DeepCopyInto(&out[i])
	}
	return out
}

// referencePatch is the patch construction that the handler used before
// buildPatch (patch.go), kept as the reference that TestPatchDifferential
// and FuzzPatchDifferential hold buildPatch to: it answers with the JSON patch that turns the pod as it arrived into
// the mutated pod: before is the view of the pod as it arrived, pod the
// pod after Apply. The init container was added (at index 0) if the pod
// arrived without one, and updated in place otherwise; so was the refresh
// sidecar (right after it).
//
// An added init container (or sidecar) is left out of both views and put in place by a
// last operation of its own: the operations computed from the views all
// address the pod as it arrived, and the patch library, which compares arrays
// position by position, would otherwise see every existing init container
// change. Leaving it out also spares decoding it twice to find it new.
func referencePatch(before *podView, pod *corev1.Pod) (admission.Response, error) {
	had := func(name string) bool {
		return slices.ContainsFunc(before.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == name })
	}
	// added holds the indexes in pod of the webhook's containers that the
	// pod arrived without, in order.
	var added []int
	for i, c := range pod.Spec.InitContainers {
		if ownContainer(c.Name) && !had(c.Name) {
			added = append(added, i)
		}
	}
	if !had(InitContainerName) && (len(pod.Spec.InitContainers) == 0 || pod.Spec.InitContainers[0].Name != InitContainerName) {
		return admission.Response{}, fmt.Errorf("computing the patch: the added init container %s is not the first", InitContainerName)
	}
	original, err := json.Marshal(before)
	if err != nil {
		return admission.Response{}, fmt.Errorf("encoding the pod as it arrived: %w", err)
	}
	after := newPodView(pod)
	if len(added) > 0 {
		after.Spec.InitContainers = slices.DeleteFunc(after.Spec.InitContainers, func(c corev1.Container) bool { return ownContainer(c.Name) && !had(c.Name) })
		if len(after.Spec.InitContainers) == 0 {
			after.Spec.InitContainers = nil
		}
	}
	mutated, err := json.Marshal(after)
	if err != nil {
		return admission.Response{}, fmt.Errorf("encoding the mutated pod: %w", err)
	}
	resp := admission.PatchResponseFromRaw(original, mutated)
	if !resp.Allowed {
		return admission.Response{}, fmt.Errorf("computing the patch: %s", resp.Result.Message)
	}
	if err := checkPaths(resp.Patches, after); err != nil {
		return admission.Response{}, err
	}
	if len(added) == 0 {
		return resp, nil
	}
	// Into the existing list, or as a new list. Each goes in at its index in
	// the mutated pod: in increasing order, every container before it is
	// then in place, so the index is valid when the operation applies. The
	// value is encoded with the rest of the patch (Response.Complete).
	if len(before.Spec.InitContainers) == 0 {
		resp.Patches = append(resp.Patches, jsonpatch.NewOperation("add", "/spec/initContainers", pod.Spec.InitContainers[:len(added)]))
	} else {
		for _, i := range added {
			resp.Patches = append(resp.Patches, jsonpatch.NewOperation("add", "/spec/initContainers/"+strconv.Itoa(i), &pod.Spec.InitContainers[i]))
		}
	}
	pt := admissionv1.PatchTypeJSONPatch
	resp.PatchType = &pt
	return resp, nil
}

// checkPaths fails if an operation would write what the view leaves out of
// an element: anything of another volume, or anything of another container
// but its env and volume mounts. Apply never does; this keeps a future change to
// Apply from corrupting pods quietly (the request fails instead, and with it
// the pod).
func checkPaths(ops []jsonpatch.Operation, after *podView) error {
	volumeName := func(v *corev1.Volume) string { return v.Name }
	containerName := func(c *corev1.Container) string { return c.Name }
	isVolume := func(name string) bool { return name == VolumeName || name == EnvVolumeName }
	writable := []string{"volumeMounts", "env"}
	lists := []struct {
		prefix   string
		writable []string
		own      func(string) bool
		names    []string
	}{
		{"/spec/volumes/", nil, isVolume, names(after.Spec.Volumes, volumeName)},
		{"/spec/initContainers/", writable, ownContainer, names(after.Spec.InitContainers, containerName)},
		{"/spec/containers/", writable, ownContainer, names(after.Spec.Containers, containerName)},
	}
	for _, op := range ops {
		for _, l := range lists {
			rest, ok := strings.CutPrefix(op.Path, l.prefix)
			if !ok {
				continue
			}
			index, field, _ := strings.Cut(rest, "/")
			if i, err := strconv.Atoi(index); err == nil && i < len(l.names) && l.own(l.names[i]) {
				continue
			}
			if !slices.ContainsFunc(l.writable, func(w string) bool { return field == w || strings.HasPrefix(field, w+"/") }) {
				return fmt.Errorf("computing the patch: %s %s would write a part of the pod that the webhook does not own", op.Operation, op.Path)
			}
		}
	}
	return nil
}

func names[E any](list []E, name func(*E) string) []string {
	out := make([]string, len(list))
	for i := range list {
		out[i] = name(&list[i])
	}
	return out
}
