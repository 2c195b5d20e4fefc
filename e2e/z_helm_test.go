//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const helmRelease = "secretfetch"

// TestHelmInstall (in z_helm_test.go, so that go test runs it after every
// other scenario: it is the one that replaces the system under test) swaps the kustomize deployment for the chart (default,
// self-signed TLS, with the NetworkPolicy on) and runs the happy path through
// it; checks that the PodDisruptionBudget and the NetworkPolicy apply and
// that the webhook answers with the NetworkPolicy in place; and that
// `helm upgrade` keeps the generated CA. The kustomize deployment is put back
// at the end, even on failure.
//
// The local cluster's bridge CNI does not enforce NetworkPolicy, so this
// shows that the policy applies and does not break the webhook on a cluster
// that ignores it, not that it admits the API server on one that enforces it.
func TestHelmInstall(t *testing.T) {
	helm := os.Getenv("HELM")
	if helm == "" {
		t.Skip("HELM is not set; hack/e2e.sh builds the pinned Helm (make bin/helm) and sets it")
	}
	ctx := context.Background()

	// The chart and the kustomize base make the same cluster-scoped objects,
	// and Helm adopts nothing it did not make: take the kustomize ones away
	// first (all but the namespace, which the chart expects to exist).
	overlay := filepath.Join(env.tmp, "overlay")
	rendered, err := kubectl(ctx, nil, "kustomize", overlay)
	requireNoErr(t, err, "rendering the kustomize deployment")
	t.Cleanup(func() { restoreKustomize(t, helm) })
	_, err = kubectl(ctx, strings.NewReader(withoutNamespace(rendered)), "delete", "--wait", "--ignore-not-found", "-f", "-")
	requireNoErr(t, err, "deleting the kustomize deployment")

	endpoint := fmt.Sprintf("http://%s.%s.svc.cluster.local:%d", fakeName, fakeNS, fakePort)
	values := []string{
		"--set", "image.repository=secretfetch.local/webhook", "--set", "image.tag=dev",
		"--set", "initImage.repository=secretfetch.local/init-fetch", "--set", "initImage.tag=dev",
		"--set", "config.defaultRegion=" + e2eRegion,
		"--set", "config.secretsManagerEndpoint=" + endpoint, "--set", "config.stsEndpoint=" + endpoint,
		"--set", "networkPolicy.enabled=true",
	}
	chart := filepath.Join(env.root, "charts", "secretfetch")
	_, err = runHelm(ctx, helm, append([]string{"install", helmRelease, chart, "--namespace", webhookNS, "--wait", "--timeout", "180s"}, values...)...)
	requireNoErr(t, err, "helm install")
	requireNoErr(t, env.waitWebhookServing(ctx), "waiting for the chart's webhook")
	caBefore := caBundle(t)

	t.Run("happy path", func(t *testing.T) {
		ns := newNamespace(t, "helm")
		value := canary(t, "helm")
		putSecret(t, ns+"/db", value)
		rollOut(t, ns, deployment("app", 1, annotations(map[string]string{"db": ns + "/db"}, nil), podSpec(true, e2eRoleARN)))
		pods := runningPods(t, ns, "app")
		if len(pods) != 1 {
			t.Fatalf("got %d running pods, want 1", len(pods))
		}
		f, ok := readSecrets(t, ns, pods[0].Name).file("db")
		if !ok || string(f.Value) != value || f.Mode != "0400" {
			t.Errorf("file db: present %v, %d bytes, mode %s; want the %d bytes of the secret, 0400", ok, len(f.Value), f.Mode, len(value))
		}
	})

	t.Run("PodDisruptionBudget and NetworkPolicy", func(t *testing.T) {
		requireNoErr(t, retry(ctx, 60*time.Second, func() error {
			pdb, err := env.cs.PolicyV1().PodDisruptionBudgets(webhookNS).Get(ctx, webhookName, metav1.GetOptions{})
			if err != nil {
				return err
			}
			// The disruption controller has counted the webhook's pods.
			if pdb.Status.ExpectedPods < 2 || pdb.Status.CurrentHealthy < 2 {
				return errNotYet(fmt.Sprintf("PDB sees %d of %d pods healthy", pdb.Status.CurrentHealthy, pdb.Status.ExpectedPods))
			}
			return nil
		}), "waiting for the PodDisruptionBudget to count the webhook's pods")
		_, err := env.cs.NetworkingV1().NetworkPolicies(webhookNS).Get(ctx, webhookName, metav1.GetOptions{})
		requireNoErr(t, err, "reading the NetworkPolicy")
		// The happy path above ran with it in place; one more mutation now.
		requireNoErr(t, env.waitWebhookServing(ctx), "the webhook answering with the NetworkPolicy in place")
	})

	t.Run("upgrade keeps the CA", func(t *testing.T) {
		_, err := runHelm(ctx, helm, append([]string{"upgrade", helmRelease, chart, "--namespace", webhookNS, "--wait", "--timeout", "180s",
			"--set", "logLevel=debug"}, values...)...)
		requireNoErr(t, err, "helm upgrade")
		if after := caBundle(t); !bytes.Equal(after, caBefore) {
			t.Error("helm upgrade replaced the generated CA; running pods' webhook calls would fail until the new certificate is mounted")
		}
		requireNoErr(t, env.waitWebhookServing(ctx), "the webhook answering after the upgrade")
	})
}

// caBundle returns the caBundle of the webhook configuration.
func caBundle(t *testing.T) []byte {
	t.Helper()
	mwc, err := env.cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(context.Background(), mwcName, metav1.GetOptions{})
	requireNoErr(t, err, "reading the MutatingWebhookConfiguration")
	if len(mwc.Webhooks) != 1 || len(mwc.Webhooks[0].ClientConfig.CABundle) == 0 {
		t.Fatalf("the MutatingWebhookConfiguration has no caBundle")
	}
	return mwc.Webhooks[0].ClientConfig.CABundle
}

// restoreKustomize uninstalls the chart and applies the suite's kustomize
// overlay again.
func restoreKustomize(t *testing.T, helm string) {
	ctx := context.Background()
	if _, err := runHelm(ctx, helm, "uninstall", helmRelease, "--namespace", webhookNS, "--wait", "--ignore-not-found"); err != nil {
		t.Errorf("helm uninstall: %v", err)
	}
	// Helm deletes the Deployment without waiting for its pods.
	_ = retry(ctx, 60*time.Second, func() error {
		pods, err := env.cs.CoreV1().Pods(webhookNS).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=" + webhookName})
		if err != nil {
			return err
		}
		if len(pods.Items) > 0 {
			return errNotYet("the chart's webhook pods still exist")
		}
		return nil
	})
	// The overlay that setup rendered and applied, certificates included
	// (deployWebhook would copy the manifests again, onto themselves).
	overlay := filepath.Join(env.tmp, "overlay")
	if _, err := kubectl(ctx, nil, "apply", "-k", overlay); err != nil {
		t.Errorf("deploying the kustomize overlay again: %v", err)
		return
	}
	if _, err := kubectl(ctx, nil, "-n", webhookNS, "rollout", "status", "deployment/"+webhookName, "--timeout=180s"); err != nil {
		t.Errorf("waiting for the kustomize webhook: %v", err)
	}
	if err := env.waitWebhookServing(ctx); err != nil {
		t.Errorf("the kustomize webhook does not answer: %v", err)
	}
}

// withoutNamespace drops the Namespace documents from a YAML stream.
func withoutNamespace(stream string) string {
	docs := strings.Split(stream, "\n---\n")
	var kept []string
	for _, d := range docs {
		if strings.Contains("\n"+d, "\nkind: Namespace\n") {
			continue
		}
		kept = append(kept, d)
	}
	return strings.Join(kept, "\n---\n")
}

func runHelm(ctx context.Context, helm string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helm, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
