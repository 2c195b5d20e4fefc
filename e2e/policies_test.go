//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const mwcName = "secretfetch"

// TestPolicyWhenWebhookBypassed: with the MutatingWebhookConfiguration
// deleted, an opted-in pod reaches the API server unmutated, and the
// secretfetch-injected ValidatingAdmissionPolicy denies it, saying why. The
// configuration is put back even when the test fails.
func TestPolicyWhenWebhookBypassed(t *testing.T) {
	ns := newNamespace(t, "bypass")
	ctx := context.Background()
	mwcs := env.cs.AdmissionregistrationV1().MutatingWebhookConfigurations()
	saved, err := mwcs.Get(ctx, mwcName, metav1.GetOptions{})
	requireNoErr(t, err, "reading the MutatingWebhookConfiguration")
	restore := saved.DeepCopy()
	restore.ObjectMeta = metav1.ObjectMeta{Name: saved.Name, Labels: saved.Labels, Annotations: saved.Annotations}
	t.Cleanup(func() { restoreMWC(t, restore) })
	requireNoErr(t, mwcs.Delete(ctx, mwcName, metav1.DeleteOptions{}), "deleting the MutatingWebhookConfiguration")

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "bypassed", Annotations: annotations(map[string]string{"db": "some/secret"}, nil)},
		Spec:       podSpec(false, ""),
	}
	// The API server drops the webhook a moment after the deletion.
	var denial error
	requireNoErr(t, retry(ctx, 60*time.Second, func() error {
		_, err := env.cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil {
			return errNotYet("the opted-in pod was admitted without the webhook")
		}
		if !strings.Contains(err.Error(), "secretfetch-injected") {
			return err // still the webhook answering
		}
		denial = err
		return nil
	}), "waiting for the policy to deny the unmutated pod")
	for _, want := range []string{
		"secretfetch.io/status: injected", "the init container secretfetch-init",
		"the memory-backed volume secretfetch-secrets", "the secretfetch webhook did not run",
	} {
		if !strings.Contains(denial.Error(), want) {
			t.Errorf("the denial does not say %q: %v", want, denial)
		}
	}
	// A real create, not only a dry run, is refused too.
	if _, err := env.cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err == nil {
		t.Error("the opted-in pod was created without the webhook")
	}
	// Pods that did not opt in are untouched by the policy.
	plain := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "plain"}, Spec: podSpec(false, "")}
	_, err = env.cs.CoreV1().Pods(ns).Create(ctx, plain, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	requireNoErr(t, err, "creating a pod that did not opt in")
}

// restoreMWC puts the configuration back and waits until the webhook mutates
// again, so that the tests after this one find the system as it was.
func restoreMWC(t *testing.T, mwc *admissionregistrationv1.MutatingWebhookConfiguration) {
	ctx := context.Background()
	if _, err := env.cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		t.Errorf("putting the MutatingWebhookConfiguration back: %v", err)
		return
	}
	if err := env.waitWebhookServing(ctx); err != nil {
		t.Errorf("the webhook did not come back: %v", err)
	}
}

// TestAllowedSecrets: a namespace annotated secretfetch.io/allowed-secrets:
// team-a/ runs a pod that names team-a/db, and is refused one that names
// team-b/db, with a message that names the annotation, the value and the
// allowed prefixes.
func TestAllowedSecrets(t *testing.T) {
	ns := newNamespace(t, "allowed")
	ctx := context.Background()
	annotateNamespace(t, ns, map[string]string{"secretfetch.io/allowed-secrets": "team-a/"})
	value := canary(t, "allowed")
	putSecret(t, "team-a/db", value)

	t.Run("allowed", func(t *testing.T) {
		rollOut(t, ns, deployment("team-a", 1, annotations(map[string]string{"db": "team-a/db"}, nil), podSpec(true, e2eRoleARN)))
		pods := runningPods(t, ns, "team-a")
		if len(pods) != 1 {
			t.Fatalf("got %d running pods, want 1", len(pods))
		}
		f, ok := readSecrets(t, ns, pods[0].Name).file("db")
		if !ok || string(f.Value) != value {
			t.Errorf("file db: present %v, %d bytes, want the %d bytes of team-a/db", ok, len(f.Value), len(value))
		}
	})

	t.Run("denied", func(t *testing.T) {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "team-b", Annotations: annotations(map[string]string{"db": "team-b/db"}, nil)},
			Spec:       podSpec(true, e2eRoleARN),
		}
		// The policy reads the namespace from the API server's cache, which
		// sees the new annotation a moment later.
		var err error
		requireNoErr(t, retry(ctx, 30*time.Second, func() error {
			_, err = env.cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err == nil || !strings.Contains(err.Error(), "secretfetch-allowed-secrets") {
				return errNotYet("a pod naming team-b/db was admitted in a namespace that allows team-a/")
			}
			return nil
		}), "waiting for the denial")
		for _, want := range []string{"secretfetch-allowed-secrets", `secretfetch.io/secret-db="team-b/db"`,
			"secretfetch.io/allowed-secrets", `"team-a/"`} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the denial does not say %q: %v", want, err)
			}
		}
	})
}

func annotateNamespace(t *testing.T, ns string, annotations map[string]string) {
	t.Helper()
	ctx := context.Background()
	obj, err := env.cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	requireNoErr(t, err, "reading namespace "+ns)
	if obj.Annotations == nil {
		obj.Annotations = map[string]string{}
	}
	for k, v := range annotations {
		obj.Annotations[k] = v
	}
	_, err = env.cs.CoreV1().Namespaces().Update(ctx, obj, metav1.UpdateOptions{})
	requireNoErr(t, err, "annotating namespace "+ns)
}
