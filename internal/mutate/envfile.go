package mutate

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/secretfetch/secretfetch/internal/plan"
)

// applyEnvFiles adds what the secrets' environment variables need: the
// env file's memory-backed volume, its mount in the init container only,
// and a fileKeyRef entry per variable in every reader. Each edit is
// add-if-absent or an update in place. A pod without env- keys is left as
// it is.
func applyEnvFiles(pod *corev1.Pod, inj *Injection) {
	if inj.Plan.EnvDir == "" {
		return
	}
	var vars []string
	for _, s := range inj.Plan.Secrets {
		if s.Env != "" {
			vars = append(vars, s.Env)
		}
	}
	ensureVolume(pod, EnvVolumeName, envVolumeSize(len(vars)))
	for i := range pod.Spec.InitContainers {
		if c := &pod.Spec.InitContainers[i]; c.Name == InitContainerName {
			setNamedMount(c, EnvVolumeName, inj.Plan.EnvDir)
		}
	}
	for _, name := range inj.Readers {
		if c, _ := containerAt(pod, name); c != nil {
			setFileKeyRefs(c, vars)
		}
	}
}

// envVolumeSize bounds the env file: each value is at most AWS's 64 KiB,
// and it is written to a temporary file and renamed, so it can briefly take
// twice its size.
func envVolumeSize(n int) resource.Quantity {
	return *resource.NewQuantity(max(minVolumeSize, int64(n)*2*maxSecretSize), resource.BinarySI)
}

// setNamedMount mounts a volume read-write at dir, or moves the existing
// mount of it there.
func setNamedMount(c *corev1.Container, volume, dir string) {
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].Name == volume {
			c.VolumeMounts[i].MountPath, c.VolumeMounts[i].ReadOnly = dir, false
			return
		}
	}
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: volume, MountPath: dir})
}

// setFileKeyRefs adds one fileKeyRef entry per variable after the
// container's own env, in plan order, or updates the entry of an earlier
// pass in place; Parse has refused any other entry of the same name. They
// go last, not first, so that the patch only adds: putting them in front
// would shift every entry of the container's own. (So a $(VAR) reference
// in the container's own env does not see them.)
func setFileKeyRefs(c *corev1.Container, vars []string) {
	for _, name := range vars {
		ref := &corev1.EnvVarSource{FileKeyRef: &corev1.FileKeySelector{
			VolumeName: EnvVolumeName, Path: plan.EnvFileName, Key: name}}
		setEnvVar(c, corev1.EnvVar{Name: name, ValueFrom: ref}, isOurEnv)
	}
}
