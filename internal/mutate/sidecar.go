package mutate

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"github.com/secretfetch/secretfetch/internal/plan"
)

// Flags of init-fetch's refresh mode.
const (
	flagRefreshInterval = "--refresh-interval="
	flagRefreshNotify   = "--refresh-notify="
)

// validateRefresh checks --min-refresh-interval.
func (c Config) validateRefresh() error {
	if c.MinRefreshInterval < 0 || c.MinRefreshInterval > plan.MaxRefreshInterval {
		return fmt.Errorf("--min-refresh-interval: %v is outside the allowed range; use a Go duration between 1s and %v (0 for the default, %v)",
			c.MinRefreshInterval, plan.MaxRefreshInterval, DefaultMinRefreshInterval)
	}
	if c.MinRefreshInterval > 0 && c.MinRefreshInterval < minMinRefreshInterval {
		return fmt.Errorf("--min-refresh-interval: %v is shorter than %v", c.MinRefreshInterval, minMinRefreshInterval)
	}
	return nil
}

// minMinRefreshInterval is the floor of --min-refresh-interval: init-fetch
// refuses a shorter interval itself.
const minMinRefreshInterval = time.Second

// applyRefresh is Apply's step for refresh: it names the pod in the init
// container's environment and, when inj asks for refresh, adds the refresh
// sidecar or brings it up to date. It runs after the init container is
// complete, and builds the sidecar from it.
func applyRefresh(pod *corev1.Pod, inj *Injection) {
	init := ownInitContainer(pod)
	if init == nil {
		return
	}
	setPodIdentityEnv(init)
	if inj.Refresh == nil {
		return
	}
	sidecar := refreshSidecar(init, inj.Refresh)
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == RefreshContainerName {
			pod.Spec.InitContainers[i] = sidecar
			return
		}
	}
	// Right after the init container, so that it starts once the files
	// are there, and before any sidecar of the user's that reads them.
	at := 0
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == InitContainerName {
			at = i + 1
		}
	}
	pod.Spec.InitContainers = append(pod.Spec.InitContainers[:at], append([]corev1.Container{sidecar}, pod.Spec.InitContainers[at:]...)...)
}

// refreshSidecar is the init container as Apply built it (image, command,
// plan, endpoints, copied credentials and their mounts, security context,
// the read-write mount), turned into a native sidecar that runs init-fetch
// in refresh mode. Everything is built afresh on each pass, so a
// reinvocation brings the copied credentials up to date here too.
func refreshSidecar(init *corev1.Container, r *Refresh) corev1.Container {
	c := *init.DeepCopy()
	c.Name = RefreshContainerName
	// A native sidecar: it starts after the init container, runs next to
	// the app, is restarted if it exits, and is stopped once the main
	// containers of a Job have finished.
	c.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
	c.Args = []string{flagRefreshInterval + r.Interval.String()}
	if r.NotifyURL != "" {
		c.Args = append(c.Args, flagRefreshNotify+r.NotifyURL)
	}
	applyRestart(&c, r.Restart)
	c.Resources = sidecarResources(init.Resources)
	return c
}

// sidecarResources are the init container's, with a small CPU request and
// limit: the sidecar sleeps between polls. The memory stays the init
// container's (which grows with the volume, and which --init-resources may
// raise), because the tmpfs pages of each new set count against the cgroup
// of the process that writes them, which is now the sidecar's.
func sidecarResources(init corev1.ResourceRequirements) corev1.ResourceRequirements {
	r := *init.DeepCopy()
	r.Requests[corev1.ResourceCPU] = resource.MustParse("5m")
	r.Limits[corev1.ResourceCPU] = resource.MustParse("100m")
	return r
}

// ownInitContainer returns the webhook's init container, or nil.
func ownInitContainer(pod *corev1.Pod) *corev1.Container {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == InitContainerName {
			return &pod.Spec.InitContainers[i]
		}
	}
	return nil
}

// setPodIdentityEnv sets the downward-API variables that name the pod.
func setPodIdentityEnv(c *corev1.Container) {
	for _, v := range []struct{ name, path string }{{plan.EnvPodNamespace, "metadata.namespace"}, {plan.EnvPodName, "metadata.name"}} {
		src := &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: v.path}}
		setEnvVar(c, corev1.EnvVar{Name: v.name, ValueFrom: src}, nil)
	}
}
