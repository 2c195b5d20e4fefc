//go:build envtest

package charts_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestPolicyModeInstall: helm upgrade --set mode=policy turns a webhook
// install into the policy mode against a real API server (envtest's
// kube-apiserver, which runs admission policies itself): the webhook's
// server and its MutatingWebhookConfiguration go, and an opted-in pod,
// created with a dry run, comes back injected by the API server with the
// chart's init image and settings; a typo is denied at admission.
func TestPolicyModeInstall(t *testing.T) {
	helm := findHelm(t)
	cs, kubeconfigPath := startAPIServer(t)
	ctx := t.Context()
	const app = "shop"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: app}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	values := []string{"--set", "initImage.tag=dev", "--set", "config.defaultRegion=eu-west-1"}
	for _, step := range []struct{ verb, mode string }{{"install", "webhook"}, {"upgrade", "policy"}} {
		args := slices.Concat([]string{step.verb, release, chartDir, "--namespace", namespace, "--kubeconfig", kubeconfigPath,
			"--set", "mode=" + step.mode}, values)
		if out, err := run(ctx, helm, args...); err != nil {
			t.Fatalf("helm %s with mode %s: %v\n%s", step.verb, step.mode, err, out)
		}
	}

	// Nothing of the webhook's server is left.
	deps, err := cs.AppsV1().Deployments(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mwcs, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := cs.CoreV1().Services(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(deps.Items)+len(mwcs.Items)+len(svcs.Items) != 0 {
		t.Errorf("after the upgrade to mode: policy: %d Deployments, %d MutatingWebhookConfigurations, %d Services; want none",
			len(deps.Items), len(mwcs.Items), len(svcs.Items))
	}

	// The API server loads new policies in the background: retry until the
	// pod comes back injected.
	var got *corev1.Pod
	eventually(t, func() error {
		p, err := cs.CoreV1().Pods(app).Create(ctx, optedIn("secretfetch.io/secret-db", "prod/db"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return err
		}
		if p.Annotations["secretfetch.io/status"] != "injected" {
			return errors.New("the pod was admitted without the status annotation secretfetch.io/status: injected")
		}
		got = p
		return nil
	})
	if len(got.Spec.InitContainers) == 0 || got.Spec.InitContainers[0].Name != "secretfetch-init" {
		t.Fatalf("init containers %v, want secretfetch-init first", names(got.Spec.InitContainers))
	}
	init := got.Spec.InitContainers[0]
	if init.Image != "ghcr.io/secretfetch/init-fetch:dev" {
		t.Errorf("init image %q, want the chart's initImage ghcr.io/secretfetch/init-fetch:dev", init.Image)
	}
	if !slices.ContainsFunc(init.Env, func(e corev1.EnvVar) bool { return e.Name == "SECRETFETCH_DEFAULT_REGION" && e.Value == "eu-west-1" }) {
		t.Errorf("init env %v lacks SECRETFETCH_DEFAULT_REGION=eu-west-1 (config.defaultRegion)", init.Env)
	}
	if !slices.ContainsFunc(got.Spec.Volumes, func(v corev1.Volume) bool {
		return v.Name == "secretfetch-secrets" && v.EmptyDir != nil && v.EmptyDir.Medium == corev1.StorageMediumMemory
	}) {
		t.Errorf("volumes %+v lack the memory-backed secretfetch-secrets", got.Spec.Volumes)
	}
	if !slices.ContainsFunc(got.Spec.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.Name == "secretfetch-secrets" && m.MountPath == "/var/run/secrets/app" && m.ReadOnly
	}) {
		t.Errorf("app mounts %+v lack secretfetch-secrets read-only at /var/run/secrets/app", got.Spec.Containers[0].VolumeMounts)
	}

	// secretfetch-policy-checks denies a typo, naming it, with the
	// webhook's message.
	eventually(t, func() error {
		_, err := cs.CoreV1().Pods(app).Create(ctx, optedIn("secretfetch.io/secret-db", "prod/db", "secretfetch.io/secert-cache", "prod/cache"),
			metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		want := "metadata.annotations[secretfetch.io/secert-cache]: Invalid value: this is not a secretfetch.io annotation"
		if err == nil || !strings.Contains(err.Error(), want) {
			return fmt.Errorf("a pod with the typo secretfetch.io/secert-cache: err = %v, want a denial saying %q", err, want)
		}
		return nil
	})
}

// optedIn is a pod in that opts in with the given annotations, run as a
// non-root user so that the files have an owner.
func optedIn(annotations ...string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Annotations: map[string]string{"secretfetch.io/inject": "true"}},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{RunAsUser: new(int64(1000))},
			Containers:      []corev1.Container{{Name: "app", Image: "registry.example.com/app:1"}},
		},
	}
	for i := 0; i+1 < len(annotations); i += 2 {
		p.Annotations[annotations[i]] = annotations[i+1]
	}
	return p
}

func names(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

// eventually retries f for up to a minute.
func eventually(t *testing.T, f func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for {
		err := f()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("still after a minute: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
