package mutate

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// podView is the part of a pod that the webhook writes, in the pod's own
// JSON shape: the namespace (taken from the request), the annotations, the
// volumes, the webhook's init container in full, and only the name and
// volume mounts of every other container.
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
//     the pod. checkPaths makes sure that no operation touches the part of
//     a container the view leaves out.
type podView struct {
	Metadata struct {
		Namespace   string            `json:"namespace,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
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
	v.Metadata.Annotations = maps.Clone(pod.Annotations)
	if pod.Spec.Volumes != nil {
		v.Spec.Volumes = make([]corev1.Volume, len(pod.Spec.Volumes))
		for i := range pod.Spec.Volumes {
			pod.Spec.Volumes[i].DeepCopyInto(&v.Spec.Volumes[i])
		}
	}
	v.Spec.InitContainers = containerViews(pod.Spec.InitContainers)
	v.Spec.Containers = containerViews(pod.Spec.Containers)
	return v
}

// containerViews copies the webhook's init container in full, and the name
// and volume mounts of every other container.
func containerViews(cs []corev1.Container) []corev1.Container {
	if cs == nil {
		return nil
	}
	out := make([]corev1.Container, len(cs))
	for i := range cs {
		if cs[i].Name == InitContainerName {
			cs[i].DeepCopyInto(&out[i])
			continue
		}
		out[i] = corev1.Container{Name: cs[i].Name, VolumeMounts: slices.Clone(cs[i].VolumeMounts)}
	}
	return out
}

// patch answers with the JSON patch that turns the pod as it arrived into
// the mutated pod: before is the view of the pod as it arrived, pod the
// pod after Apply, and added tells whether Apply added the init container
// (at index 0) rather than updating the one that was there.
//
// An added init container is left out of both views and put in place by a
// last operation of its own: the operations computed from the views all
// address the pod as it arrived, and the patch library, which compares arrays
// position by position, would otherwise see every existing init container
// change. Leaving it out also spares decoding it twice to find it new.
func patch(before *podView, pod *corev1.Pod, added bool) (admission.Response, error) {
	original, err := json.Marshal(before)
	if err != nil {
		return admission.Response{}, fmt.Errorf("encoding the pod as it arrived: %w", err)
	}
	after := newPodView(pod)
	if added {
		after.Spec.InitContainers = after.Spec.InitContainers[1:]
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
	if !added {
		return resp, nil
	}
	// Into the existing list, or as a new list of one.
	path, value := "/spec/initContainers/0", any(&pod.Spec.InitContainers[0])
	if len(before.Spec.InitContainers) == 0 {
		path, value = "/spec/initContainers", pod.Spec.InitContainers[:1]
	}
	init, err := json.Marshal(value)
	if err != nil {
		return admission.Response{}, fmt.Errorf("encoding the init container: %w", err)
	}
	resp.Patches = append(resp.Patches, jsonpatch.NewOperation("add", path, json.RawMessage(init)))
	pt := admissionv1.PatchTypeJSONPatch
	resp.PatchType = &pt
	return resp, nil
}

// checkPaths fails if an operation would write a part of a container that
// the view leaves out: anything of another container but its volume mounts.
// Apply never does; this keeps a future change to Apply from corrupting
// pods quietly (the request fails instead, and with it the pod).
func checkPaths(ops []jsonpatch.Operation, after *podView) error {
	for _, op := range ops {
		for _, list := range []struct {
			prefix     string
			containers []corev1.Container
		}{
			{"/spec/initContainers/", after.Spec.InitContainers},
			{"/spec/containers/", after.Spec.Containers},
		} {
			rest, ok := strings.CutPrefix(op.Path, list.prefix)
			if !ok {
				continue
			}
			index, field, _ := strings.Cut(rest, "/")
			i, err := strconv.Atoi(index)
			if err == nil && i < len(list.containers) && list.containers[i].Name == InitContainerName {
				continue
			}
			if field != "volumeMounts" && !strings.HasPrefix(field, "volumeMounts/") {
				return fmt.Errorf("computing the patch: %s %s would write a part of a container that the webhook does not own", op.Operation, op.Path)
			}
		}
	}
	return nil
}
