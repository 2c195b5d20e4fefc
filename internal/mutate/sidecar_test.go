package mutate

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/secretfetch/secretfetch/internal/plan"
)

// checkRefreshSidecar checks, in a mutated pod that asked for refresh, what
// the golden files alone would not make plain: the sidecar is a native
// sidecar right after the init container, the same as it but for its name,
// restart policy, arguments and resources, it passes the restricted level,
// and no app container can write the volume.
func checkRefreshSidecar(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	i := slices.IndexFunc(pod.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == InitContainerName })
	if i < 0 || i+1 >= len(pod.Spec.InitContainers) || pod.Spec.InitContainers[i+1].Name != RefreshContainerName {
		t.Fatalf("the refresh sidecar is not right after %s", InitContainerName)
	}
	init, sidecar := pod.Spec.InitContainers[i], pod.Spec.InitContainers[i+1]
	if sidecar.RestartPolicy == nil || *sidecar.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Error("the refresh sidecar is not a native sidecar (restartPolicy: Always)")
	}
	if len(sidecar.Args) == 0 || sidecar.Args[0] != flagRefreshInterval+mustInterval(t, pod).String() {
		t.Errorf("sidecar args %q do not carry the interval", sidecar.Args)
	}
	checkRestartRules(t, pod, sidecar)
	same := sidecar.DeepCopy()
	same.Name, same.RestartPolicy, same.Args, same.Resources = init.Name, init.RestartPolicy, init.Args, init.Resources
	same.RestartPolicyRules = init.RestartPolicyRules
	// The env file is written once, by the init container: the kubelet
	// reads it only when a container starts, so the sidecar has no mount of
	// its volume.
	initFiles := init.DeepCopy()
	initFiles.VolumeMounts = slices.DeleteFunc(initFiles.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == EnvVolumeName })
	if diff := cmp.Diff(initFiles, same); diff != "" {
		t.Errorf("the sidecar differs from the init container beyond name, restart policy, args, resources and the env file's mount:\n%s", diff)
	}
	if !sidecar.Resources.Limits.Cpu().Equal(*sidecar.Resources.Limits.Cpu()) || sidecar.Resources.Limits.Cpu().MilliValue() > 200 {
		t.Errorf("sidecar CPU limit %s, want a small one", sidecar.Resources.Limits.Cpu())
	}
	if v := restrictedViolationsOf(t, pod, RefreshContainerName); len(v) > 0 {
		t.Errorf("the refresh sidecar breaks the restricted Pod Security Standard: %v", v)
	}
	for _, c := range append(slices.Clone(pod.Spec.Containers), pod.Spec.InitContainers...) {
		for _, m := range c.VolumeMounts {
			if m.Name == VolumeName && !m.ReadOnly && c.Name != InitContainerName && c.Name != RefreshContainerName {
				t.Errorf("container %s mounts the secrets volume read-write", c.Name)
			}
		}
	}
}

func mustInterval(t *testing.T, pod *corev1.Pod) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(pod.Annotations[AnnotationRefreshInterval])
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestConfigValidateMinRefreshInterval(t *testing.T) {
	for d, ok := range map[time.Duration]bool{0: true, time.Second: true, time.Minute: true, 24 * time.Hour: true,
		500 * time.Millisecond: false, 25 * time.Hour: false, -time.Second: false} {
		err := Config{InitImage: "i", MinRefreshInterval: d}.Validate()
		if (err == nil) != ok {
			t.Errorf("Validate with --min-refresh-interval %v = %v, want ok=%v", d, err, ok)
		}
	}
}

// checkRestartRules: with refresh-restart, the sidecar restarts every
// container on plan.RestartExitCode, and on nothing else; without it, it
// has no rules.
func checkRestartRules(t *testing.T, pod *corev1.Pod, sidecar corev1.Container) {
	t.Helper()
	if pod.Annotations[AnnotationRefreshRestart] != "true" {
		if len(sidecar.RestartPolicyRules) > 0 || slices.Contains(sidecar.Args, flagRefreshRestart) {
			t.Errorf("the sidecar restarts the pod, which did not ask for it: %v %q", sidecar.RestartPolicyRules, sidecar.Args)
		}
		return
	}
	want := []corev1.ContainerRestartRule{{
		Action: corev1.ContainerRestartRuleActionRestartAllContainers,
		ExitCodes: &corev1.ContainerRestartRuleOnExitCodes{
			Operator: corev1.ContainerRestartRuleOnExitCodesOpIn, Values: []int32{plan.RestartExitCode},
		},
	}}
	if diff := cmp.Diff(want, sidecar.RestartPolicyRules); diff != "" {
		t.Errorf("the sidecar's restart rules (-want +got):\n%s", diff)
	}
	if !slices.Contains(sidecar.Args, flagRefreshRestart) {
		t.Errorf("sidecar args %q do not turn restart mode on", sidecar.Args)
	}
}
