package mutate

import (
	"testing"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
)

// TestCheckPaths: an operation may write anything of the secrets and env
// file volumes and the init container, nothing of another volume, and only
// the env and volume mounts of another container.
func TestCheckPaths(t *testing.T) {
	after := &podView{}
	after.Spec.InitContainers = []corev1.Container{{Name: InitContainerName}, {Name: "migrate"}}
	after.Spec.Containers = []corev1.Container{{Name: "app"}}
	after.Spec.Volumes = []corev1.Volume{{Name: "data"}, {Name: VolumeName}, {Name: EnvVolumeName}}
	for _, tt := range []struct {
		path string
		ok   bool
	}{
		{"/metadata/annotations/secretfetch.io~1status", true},
		{"/spec/volumes", true},
		{"/spec/volumes/1", true},
		{"/spec/volumes/1/emptyDir/sizeLimit", true},
		{"/spec/volumes/0", false},
		{"/spec/volumes/0/name", false},
		{"/spec/volumes/2/emptyDir", true},
		{"/spec/volumes/3", false},
		{"/spec/initContainers", true},
		{"/spec/initContainers/0", true},
		{"/spec/initContainers/0/env/3/value", true},
		{"/spec/initContainers/1/volumeMounts", true},
		{"/spec/initContainers/1/volumeMounts/0/readOnly", true},
		{"/spec/containers/0/volumeMounts/4", true},
		{"/spec/initContainers/1", false},
		{"/spec/initContainers/1/image", false},
		{"/spec/containers/0", false},
		{"/spec/containers/0/env/0", true},
		{"/spec/containers/0/env", true},
		{"/spec/containers/0/envFrom", false},
		{"/spec/containers/0/environment", false},
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
