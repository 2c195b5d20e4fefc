//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	mwcName = "secretfetch"
	// policyParams is the ConfigMap that the policies' bindings read.
	policyParams = "secretfetch-policy-params"
)

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

// TestPolicyInitImageUpgrade: an upgrade that moves the init image from A
// (the suite's) to B. kubectl apply lands the policies' new parameters at
// once, while the old webhook replicas go on injecting A until the new ones
// are ready. With A in PREVIOUS_INIT_IMAGES, a pod mutated with A in that
// window is admitted and runs, the new webhook's pods with B are admitted,
// and an init container with any other image is still denied. The suite's
// deployment is put back at the end, even on failure.
//
// B is A's repository with another tag, which no node holds: its pods are
// only ever created as dry runs.
func TestPolicyInitImageUpgrade(t *testing.T) {
	ns := newNamespace(t, "upgrade")
	ctx := context.Background()
	params, err := env.cs.CoreV1().ConfigMaps(webhookNS).Get(ctx, policyParams, metav1.GetOptions{})
	requireNoErr(t, err, "reading the policies' parameters")
	imageA := params.Data["INIT_IMAGE"]
	if imageA == "" {
		t.Fatalf("ConfigMap %s has no INIT_IMAGE", policyParams)
	}
	repository := imageRepository(imageA)
	imageB := repository + ":e2e-upgrade"
	const unrelated = "example.com/not-secretfetch/init-fetch:v1"
	putSecret(t, ns+"/db", canary(t, "upgrade"))
	ann := annotations(map[string]string{"db": ns + "/db"}, nil)

	// Before: a Deployment's pod, mutated with A, runs.
	rollOut(t, ns, deployment("app", 1, ann, podSpec(true, e2eRoleARN)))
	if got := initImageOf(runningPods(t, ns, "app")[0]); got != imageA {
		t.Fatalf("the running pod's secretfetch-init runs %q, want %q", got, imageA)
	}
	probe := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "probe", Annotations: ann}, Spec: podSpec(true, e2eRoleARN)}
	mutatedA, err := dryRun(ns, probe)
	requireNoErr(t, err, "a dry run of an opted-in pod")
	if got := initImageOf(*mutatedA); got != imageA {
		t.Fatalf("the webhook injected %q, want %q", got, imageA)
	}

	t.Cleanup(func() { restoreOverlay(t) })

	// The upgrade lands: the parameters say B and keep A, and the old
	// replicas still inject A.
	setPolicyParams(t, map[string]string{"INIT_IMAGE": imageB, "PREVIOUS_INIT_IMAGES": imageA})
	// A pod that the webhook never saw (its own namespace is excluded)
	// shows what the policy decides on its own: B admitted once the new
	// parameters are in force, A still admitted, any other image denied.
	unmutated := func(image string) error {
		p := mutatedA.DeepCopy()
		p.ObjectMeta = metav1.ObjectMeta{Name: "unmutated", Namespace: webhookNS, Annotations: mutatedA.Annotations}
		// The priority admission plugin fills these in again.
		p.Spec.Priority, p.Spec.PreemptionPolicy = nil, nil
		for i := range p.Spec.InitContainers {
			if p.Spec.InitContainers[i].Name == "secretfetch-init" {
				p.Spec.InitContainers[i].Image = image
			}
		}
		_, err := env.cs.CoreV1().Pods(webhookNS).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	}
	requireNoErr(t, retry(ctx, 60*time.Second, func() error { return unmutated(imageB) }), "waiting for the policy to admit B")
	requireNoErr(t, unmutated(imageA), "a pod injected with A by an old replica")
	err = unmutated(unrelated)
	if err == nil || !strings.Contains(err.Error(), "secretfetch-injected") {
		t.Fatalf("a pod injected with %s: err = %v, want a denial by secretfetch-injected", unrelated, err)
	}
	for _, want := range []string{"the init container secretfetch-init with the image " + imageB + " or " + imageA, "(it has " + unrelated + ")"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the denial does not say %q: %v", want, err)
		}
	}
	// The same holds through the webhook: a new pod of the Deployment,
	// mutated with A by the old replicas, is admitted and runs.
	_, err = kubectl(ctx, nil, "-n", ns, "scale", "deployment/app", "--replicas=2")
	requireNoErr(t, err, "scaling the Deployment")
	_, err = kubectl(ctx, nil, "-n", ns, "rollout", "status", "deployment/app", "--timeout=120s")
	requireNoErr(t, err, "a second pod mutated with A")
	for _, p := range runningPods(t, ns, "app") {
		if got := initImageOf(p); got != imageA {
			t.Errorf("pod %s runs secretfetch-init with %q, want %q", p.Name, got, imageA)
		}
	}

	// The rollout: the webhook moves to B, as an overlay with an `images:`
	// entry and the old image merged into PREVIOUS_INIT_IMAGES does it.
	overlay := filepath.Join(env.tmp, "overlay-upgrade")
	requireNoErr(t, os.MkdirAll(overlay, 0o755), "making the upgrade overlay")
	kustomization := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [../overlay]
images:
- name: %s
  newName: %s
  newTag: e2e-upgrade
configMapGenerator:
- name: secretfetch-policy-params
  namespace: %s
  behavior: merge
  literals: [PREVIOUS_INIT_IMAGES=%s]
`, repository, repository, webhookNS, imageA)
	requireNoErr(t, os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(kustomization), 0o644), "writing the upgrade overlay")
	_, err = kubectl(ctx, nil, "apply", "-k", overlay)
	requireNoErr(t, err, "applying the upgrade")
	_, err = kubectl(ctx, nil, "-n", webhookNS, "rollout", "status", "deployment/"+webhookName, "--timeout=180s")
	requireNoErr(t, err, "rolling the webhook out with B")
	// Every replica injects B now, and the policy admits its pods.
	requireNoErr(t, retry(ctx, 60*time.Second, func() error {
		p, err := dryRun(ns, probe)
		if err != nil {
			return err
		}
		if got := initImageOf(*p); got != imageB {
			return errNotYet("the webhook still injects " + got)
		}
		return nil
	}), "waiting for the webhook to inject B")
	requireNoErr(t, unmutated(imageA), "a pod injected with A after the rollout, with A still listed")
	if err := unmutated(unrelated); err == nil {
		t.Errorf("a pod injected with %s was admitted after the rollout", unrelated)
	}
}

// dryRun creates the pod in ns as a server-side dry run and returns it as
// the API server would store it: mutated by the webhook.
func dryRun(ns string, p *corev1.Pod) (*corev1.Pod, error) {
	return env.cs.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
}

// initImageOf is the image of the pod's secretfetch-init, or "".
func initImageOf(p corev1.Pod) string {
	for _, c := range p.Spec.InitContainers {
		if c.Name == "secretfetch-init" {
			return c.Image
		}
	}
	return ""
}

// imageRepository is an image reference without its digest and tag.
func imageRepository(image string) string {
	image, _, _ = strings.Cut(image, "@")
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[:i]
	}
	return image
}

// setPolicyParams merges data into the policies' parameters.
func setPolicyParams(t *testing.T, data map[string]string) {
	t.Helper()
	ctx := context.Background()
	cms := env.cs.CoreV1().ConfigMaps(webhookNS)
	cm, err := cms.Get(ctx, policyParams, metav1.GetOptions{})
	requireNoErr(t, err, "reading the policies' parameters")
	for k, v := range data {
		cm.Data[k] = v
	}
	_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	requireNoErr(t, err, "updating the policies' parameters")
}

// restoreOverlay applies the suite's kustomize overlay again (parameters
// included) and waits until the webhook serves from it.
func restoreOverlay(t *testing.T) {
	ctx := context.Background()
	if _, err := kubectl(ctx, nil, "apply", "-k", filepath.Join(env.tmp, "overlay")); err != nil {
		t.Errorf("applying the suite's overlay again: %v", err)
		return
	}
	if _, err := kubectl(ctx, nil, "-n", webhookNS, "rollout", "status", "deployment/"+webhookName, "--timeout=180s"); err != nil {
		t.Errorf("waiting for the suite's webhook: %v", err)
	}
	if err := env.waitWebhookServing(ctx); err != nil {
		t.Errorf("the suite's webhook does not answer: %v", err)
	}
	// kubectl apply prunes nothing: remove the webhook's ConfigMaps that
	// the Deployment no longer reads (the upgrade's, named by its hash).
	dep, err := env.cs.AppsV1().Deployments(webhookNS).Get(ctx, webhookName, metav1.GetOptions{})
	if err != nil {
		t.Errorf("reading the webhook's Deployment: %v", err)
		return
	}
	inUse := map[string]bool{}
	for _, c := range dep.Spec.Template.Spec.Containers {
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
				inUse[e.ValueFrom.ConfigMapKeyRef.Name] = true
			}
		}
	}
	cms, err := env.cs.CoreV1().ConfigMaps(webhookNS).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Errorf("listing the webhook's ConfigMaps: %v", err)
		return
	}
	for _, cm := range cms.Items {
		if strings.HasPrefix(cm.Name, "secretfetch-webhook-config-") && !inUse[cm.Name] && len(inUse) > 0 {
			if err := env.cs.CoreV1().ConfigMaps(webhookNS).Delete(ctx, cm.Name, metav1.DeleteOptions{}); err != nil {
				t.Errorf("deleting ConfigMap %s: %v", cm.Name, err)
			}
		}
	}
}
