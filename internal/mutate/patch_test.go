package mutate

import (
	"testing"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
)

// TestCheckPaths: an operation may write anything of the webhook's own init
// container, but only the volume mounts of any other container.
func TestCheckPaths(t *testing.T) {
	after := &podView{}
	after.Spec.InitContainers = []corev1.Container{{Name: InitContainerName}, {Name: "migrate"}}
	after.Spec.Containers = []corev1.Container{{Name: "app"}}
	for _, tt := range []struct {
		path string
		ok   bool
	}{
		{"/metadata/annotations/secretfetch.io~1status", true},
		{"/spec/volumes/2", true},
		{"/spec/initContainers", true},
		{"/spec/initContainers/0", true},
		{"/spec/initContainers/0/env/3/value", true},
		{"/spec/initContainers/1/volumeMounts", true},
		{"/spec/initContainers/1/volumeMounts/0/readOnly", true},
		{"/spec/containers/0/volumeMounts/4", true},
		{"/spec/initContainers/1", false},
		{"/spec/initContainers/1/image", false},
		{"/spec/containers/0", false},
		{"/spec/containers/0/env/0", false},
		{"/spec/containers/0/volumeMountsX", false},
		{"/spec/containers/7/volumeMounts", true},
		{"/spec/containers/x", false},
	} {
		err := checkPaths([]jsonpatch.Operation{jsonpatch.NewOperation("add", tt.path, 1)}, after)
		if (err == nil) != tt.ok {
			t.Errorf("checkPaths(%s) = %v, want ok=%v", tt.path, err, tt.ok)
		}
	}
}
