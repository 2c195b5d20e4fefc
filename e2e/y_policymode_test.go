//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// TestPolicyMode (in y_policymode_test.go, so that go test runs it after the
// scenarios that need the webhook, and before TestHelmInstall) takes the
// webhook away (its Deployment, Service and MutatingWebhookConfiguration)
// and installs the policy mode, manifests/overlays/policy, in its place. The
// API server then injects by itself: a Deployment gets its files and env
// vars, refresh works, a typo is denied at admission with the webhook's
// message, what only the grammar can check fails the init container with
// that message, and secretfetch-injected denies a pod the policy missed. The
// webhook is put back at the end, even on failure.
//
// The pods get their AWS identity from the test double of the EKS pod
// identity webhook, which (like the real one) gives it to init containers
// too: the policy runs before every mutating webhook, so secretfetch-init is
// in the pod when the credentials are added.
func TestPolicyMode(t *testing.T) {
	if _, minor := serverVersion(t); minor < 36 {
		t.Skipf("the policy mode needs MutatingAdmissionPolicy (Kubernetes 1.36+); this cluster is 1.%d", minor)
	}
	ctx := context.Background()
	overlay := filepath.Join(env.tmp, "overlay")
	rendered, err := kubectl(ctx, nil, "kustomize", overlay)
	requireNoErr(t, err, "rendering the webhook's deployment")
	policy := policyOverlay(t)
	t.Cleanup(func() { restoreWebhook(t, policy) })
	_, err = kubectl(ctx, strings.NewReader(withoutNamespace(rendered)), "delete", "--wait", "--ignore-not-found", "-f", "-")
	requireNoErr(t, err, "deleting the webhook")
	_, err = kubectl(ctx, nil, "apply", "-k", policy)
	requireNoErr(t, err, "installing the policy mode")
	requireNoErr(t, waitPolicyServing(ctx), "waiting for the policy to inject")
	deployIRSAWebhook(t)

	t.Run("no webhook is left", func(t *testing.T) {
		if _, err := env.cs.AppsV1().Deployments(webhookNS).Get(ctx, webhookName, metav1.GetOptions{}); err == nil {
			t.Error("the webhook's Deployment is still there")
		}
		mwcs, err := env.cs.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
		requireNoErr(t, err, "listing the MutatingWebhookConfigurations")
		for _, m := range mwcs.Items {
			if strings.HasPrefix(m.Name, "secretfetch") {
				t.Errorf("the MutatingWebhookConfiguration %s is still there", m.Name)
			}
		}
	})

	t.Run("files and env vars", func(t *testing.T) {
		ns := newNamespace(t, "policy")
		db, apiKey := canary(t, "policy-db"), canary(t, "policy-api")
		putSecret(t, ns+"/db", db)
		putSecret(t, ns+"/api", apiKey)
		ann := policyAnnotations(map[string]string{"db": ns + "/db", "api-key": ns + "/api"},
			map[string]string{"secretfetch.io/env-api-key": "API_KEY"})
		rollOut(t, ns, deployment("app", 1, ann, podSpec(false, "")))
		pods := runningPods(t, ns, "app")
		if len(pods) != 1 {
			t.Fatalf("got %d running pods, want 1", len(pods))
		}
		l := readEnv(t, ns, pods[0].Name, "API_KEY")
		for name, want := range map[string]string{"db": db, "api-key": apiKey} {
			f, ok := l.file(name)
			if !ok || string(f.Value) != want || f.Mode != "0400" {
				t.Errorf("file %s: present %v, %d bytes, mode %s; want the %d bytes of the secret, 0400", name, ok, len(f.Value), f.Mode, len(want))
			}
		}
		if got, set := l.env("API_KEY"); !set || string(got) != apiKey {
			t.Errorf("API_KEY: set %v, %d bytes; want the %d bytes of the secret", set, len(got), len(apiKey))
		}
		pod := getPod(t, ns, pods[0].Name)
		if pod.Annotations["secretfetch.io/status"] != "injected" || len(pod.Spec.InitContainers) == 0 ||
			pod.Spec.InitContainers[0].Name != "secretfetch-init" {
			t.Errorf("the pod was not injected by the policy: status %q, init containers %v",
				pod.Annotations["secretfetch.io/status"], initNames(pod))
		}
		for _, e := range pod.Spec.InitContainers[0].Env {
			if e.Name == "SECRETFETCH_PLAN" {
				t.Error("secretfetch-init has SECRETFETCH_PLAN; the policy mode passes the annotations file instead")
			}
		}
		raw, err := env.cs.CoreV1().RESTClient().Get().Namespace(ns).Resource("pods").Name(pods[0].Name).DoRaw(ctx)
		requireNoErr(t, err, "reading the pod")
		dump := etcdDump(t)
		for _, v := range []string{db, apiKey} {
			if strings.Contains(string(raw), v) || strings.Contains(string(dump), v) {
				t.Error("a secret value is in the pod object or in etcd")
			}
		}
	})

	t.Run("refresh", func(t *testing.T) {
		ns := newNamespace(t, "policy-refresh")
		putSecret(t, ns+"/db", canary(t, "policy-v1"))
		ann := policyAnnotations(map[string]string{"db": ns + "/db"},
			map[string]string{"secretfetch.io/refresh-interval": "3s"})
		rollOut(t, ns, deployment("app", 1, ann, podSpec(false, "")))
		v2 := canary(t, "policy-v2")
		putVersion(t, ns+"/db", v2)
		waitValue(t, ns, "app", "db", v2, 60*time.Second)
	})

	t.Run("a typo is denied at admission", func(t *testing.T) {
		ns := newNamespace(t, "policy-typo")
		_, err := dryRun(ns, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "typo", Annotations: policyAnnotations(map[string]string{"db": ns + "/db"},
				map[string]string{"secretfetch.io/secrte-api": ns + "/api"})},
			Spec: podSpec(false, ""),
		})
		want := "metadata.annotations[secretfetch.io/secrte-api]: Invalid value: this is not a secretfetch.io annotation"
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "secretfetch-policy-checks") {
			t.Errorf("got %v, want a denial by secretfetch-policy-checks saying %q", err, want)
		}
	})

	t.Run("what only the grammar checks fails the init container", func(t *testing.T) {
		ns := newNamespace(t, "policy-arn")
		bad := "arn:aws:ssm:us-east-1:111122223333:parameter/db"
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "app", Annotations: policyAnnotations(map[string]string{"db": bad}, nil)},
			Spec:       podSpec(false, ""),
		}
		_, err := env.cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		requireNoErr(t, err, "creating the pod (admitted: CEL cannot check an ARN's shape)")
		term := waitInitFailed(t, ns, "app")
		want := "metadata.annotations[secretfetch.io/secret-db]: Invalid value: \"" + bad + "\" is not an ARN of the form"
		if !strings.Contains(term.Message, want) {
			t.Errorf("secretfetch-init ended with %q; want the webhook's message %q", term.Message, want)
		}
	})

	t.Run("secretfetch-injected denies a pod the policy missed", func(t *testing.T) {
		ns := newNamespace(t, "policy-missed")
		// A pod that claims to be injected is skipped by the policy, and
		// has no init container.
		_, err := dryRun(ns, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "missed", Annotations: policyAnnotations(map[string]string{"db": ns + "/db"},
				map[string]string{"secretfetch.io/status": "injected"})},
			Spec: podSpec(false, ""),
		})
		want := "the MutatingAdmissionPolicy secretfetch-inject did not run"
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "the init container secretfetch-init") {
			t.Errorf("got %v, want a denial saying %q", err, want)
		}
	})
}

// policyAnnotations are annotations() plus the test IRSA webhook's, for the
// app and init containers both.
func policyAnnotations(secrets, extra map[string]string) map[string]string {
	a := annotations(secrets, extra)
	a[irsaWebhookAnnotation] = e2eRoleARN
	a["e2e.secretfetch.io/irsa-init-containers"] = "true"
	return a
}

// policyOverlay writes a kustomization of overlays/policy with the local
// images and the fake's endpoints, next to the webhook's overlay.
func policyOverlay(t testing.TB) string {
	t.Helper()
	endpoint := fmt.Sprintf("http://%s.%s.svc.cluster.local:%d", fakeName, fakeNS, fakePort)
	dir := filepath.Join(env.tmp, "policy-overlay")
	requireNoErr(t, os.MkdirAll(dir, 0o755), "making the policy overlay")
	k := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- ../manifests/overlays/policy
images:
- name: ghcr.io/secretfetch/init-fetch
  newName: secretfetch.local/init-fetch
  newTag: dev
configMapGenerator:
- name: secretfetch-policy-params
  namespace: %s
  behavior: merge
  literals:
  - DEFAULT_REGION=%s
  - SECRETSMANAGER_ENDPOINT=%s
  - STS_ENDPOINT=%s
  - MIN_REFRESH_INTERVAL=2s
`, webhookNS, e2eRegion, endpoint, endpoint)
	requireNoErr(t, os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644), "writing the policy overlay")
	return dir
}

// waitPolicyServing waits until the API server has loaded the policies: a
// dry run of an opted-in pod comes back with secretfetch-init, and one with
// a typo is denied.
func waitPolicyServing(ctx context.Context) error {
	probe := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "probe", Annotations: annotations(map[string]string{"probe": "probe"}, nil)},
		Spec:       podSpec(false, ""),
	}
	typo := probe.DeepCopy()
	typo.Annotations["secretfetch.io/secrte-probe"] = "probe"
	return retry(ctx, 60*time.Second, func() error {
		p, err := dryRun("default", probe)
		if err != nil {
			return err
		}
		if len(p.Spec.InitContainers) == 0 || p.Spec.InitContainers[0].Name != "secretfetch-init" {
			return errNotYet("the policy has not injected the dry-run pod yet")
		}
		if _, err := dryRun("default", typo); err == nil {
			return errNotYet("secretfetch-policy-checks is not in force yet")
		}
		return nil
	})
}

// restoreWebhook takes the policy mode away and puts the webhook back.
func restoreWebhook(t testing.TB, policy string) {
	ctx := context.Background()
	rendered, err := kubectl(ctx, nil, "kustomize", policy)
	if err == nil {
		_, err = kubectl(ctx, strings.NewReader(withoutNamespace(rendered)), "delete", "--wait", "--ignore-not-found", "-f", "-")
	}
	if err != nil {
		t.Errorf("removing the policy mode: %v", err)
	}
	if _, err := kubectl(ctx, nil, "apply", "-k", filepath.Join(env.tmp, "overlay")); err != nil {
		t.Errorf("deploying the webhook again: %v", err)
		return
	}
	if _, err := kubectl(ctx, nil, "-n", webhookNS, "rollout", "status", "deployment/"+webhookName, "--timeout=180s"); err != nil {
		t.Errorf("waiting for the webhook: %v", err)
	}
	if err := env.waitWebhookServing(ctx); err != nil {
		t.Errorf("waiting for the webhook to serve: %v", err)
	}
}

func initNames(p corev1.Pod) []string {
	var names []string
	for _, c := range p.Spec.InitContainers {
		names = append(names, c.Name)
	}
	return names
}

// BenchmarkAdmissionModes measures what admission costs a pod in each mode,
// the same way and in one run: server-side dry-run creates of one opted-in
// pod (three secrets, refresh on), one after another from this host, first
// through the webhook, then through the policy mode, then through the
// webhook again; and of the same pod without the opt-in, as the baseline of
// an API server round trip. It reports the median and p99 of each.
//
//	go test -tags e2e -run '^$' -bench BenchmarkAdmissionModes -benchtime 1x ./e2e/
func BenchmarkAdmissionModes(b *testing.B) {
	if _, minor := serverVersion(b); minor < 36 {
		b.Skipf("the policy mode needs Kubernetes 1.36+; this cluster is 1.%d", minor)
	}
	const n = 300
	ctx := context.Background()
	ns := newNamespace(b, "admission-bench")
	ann := annotations(map[string]string{"db": ns + "/db", "api": ns + "/api", "cfg.json": ns + "/cfg"},
		map[string]string{"secretfetch.io/refresh-interval": "5m", "secretfetch.io/format-cfg.json": "json"})
	opted := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bench", Annotations: ann}, Spec: podSpec(true, e2eRoleARN)}
	plain := opted.DeepCopy()
	plain.Annotations = nil
	// A client of its own, without client-go's default limit of 5 requests
	// a second, which would be all that it measured.
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		clientcmd.NewDefaultClientConfigLoadingRules(), nil).ClientConfig()
	requireNoErr(b, err, "loading KUBECONFIG")
	cfg.QPS, cfg.Burst = 10000, 10000
	cs, err := kubernetes.NewForConfig(cfg)
	requireNoErr(b, err, "making a client")
	dryRun := func(ns string, p *corev1.Pod) (*corev1.Pod, error) {
		return cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	}
	measure := func(what string, p *corev1.Pod) {
		// A warm-up that waits out a binding whose parameters the API
		// server has not read yet.
		requireNoErr(b, retry(ctx, 60*time.Second, func() error { _, err := dryRun(ns, p); return err }), what+": warming up")
		d := make([]time.Duration, 0, n)
		for range n {
			start := time.Now()
			if _, err := dryRun(ns, p); err != nil {
				b.Fatalf("%s: %v", what, err)
			}
			d = append(d, time.Since(start))
		}
		slices.Sort(d)
		b.ReportMetric(float64(d[n/2].Microseconds()), what+"-p50-µs")
		b.ReportMetric(float64(d[n*99/100].Microseconds()), what+"-p99-µs")
	}
	for range b.N {
		measure("baseline", plain)
		measure("webhook", opted)
		overlay := filepath.Join(env.tmp, "overlay")
		rendered, err := kubectl(ctx, nil, "kustomize", overlay)
		requireNoErr(b, err, "rendering the webhook's deployment")
		policy := policyOverlay(b)
		_, err = kubectl(ctx, strings.NewReader(withoutNamespace(rendered)), "delete", "--wait", "--ignore-not-found", "-f", "-")
		requireNoErr(b, err, "deleting the webhook")
		_, err = kubectl(ctx, nil, "apply", "-k", policy)
		requireNoErr(b, err, "installing the policy mode")
		requireNoErr(b, waitPolicyServing(ctx), "waiting for the policy")
		measure("policy", opted)
		restoreWebhook(b, policy)
		measure("webhook-again", opted)
	}
}
