//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/secretfetch/secretfetch/hack/certs/pki"
)

const (
	irsaWebhookNS         = "secretfetch-e2e-irsa"
	irsaWebhookAnnotation = "e2e.secretfetch.io/irsa-role"
	irsaWebhookRole       = "arn:aws:iam::111122223333:role/secretfetch-e2e-reinvoked"
)

var irsaOnce struct {
	sync.Once
	err error
}

// deployIRSAWebhook installs the test double of the EKS pod identity webhook
// (e2e/irsawebhook) once per suite. Its configuration's name sorts after
// "secretfetch", so the API server calls it second.
func deployIRSAWebhook(t testing.TB) {
	t.Helper()
	irsaOnce.Do(func() { irsaOnce.err = applyIRSAWebhook(context.Background()) })
	requireNoErr(t, irsaOnce.err, "deploying the test IRSA webhook")
}

func applyIRSAWebhook(ctx context.Context) error {
	svc := irsaHookName + "." + irsaWebhookNS + ".svc"
	bundle, err := pki.New(pki.Options{DNSNames: []string{svc}})
	if err != nil {
		return err
	}
	dir := filepath.Join(env.tmp, "irsa-webhook")
	if err := bundle.WriteDir(dir); err != nil {
		return err
	}
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  replicas: 1
  selector: {matchLabels: {app: %[2]s}}
  template:
    metadata: {labels: {app: %[2]s}}
    spec:
      automountServiceAccountToken: false
      securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: webhook
        image: secretfetch.local/e2e-irsa-webhook:dev
        imagePullPolicy: IfNotPresent
        args: [--cert-dir=/tls, --port=9443]
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
        volumeMounts: [{name: tls, mountPath: /tls, readOnly: true}]
      volumes: [{name: tls, secret: {secretName: tls, defaultMode: 0440}}]
---
apiVersion: v1
kind: Service
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  selector: {app: %[2]s}
  ports: [{port: 443, targetPort: 9443}]
`, irsaWebhookNS, irsaHookName)
	if _, err := kubectl(ctx, strings.NewReader(manifest), "apply", "-f", "-"); err != nil {
		return err
	}
	// Replace the serving certificate of an earlier run against the same
	// cluster (its CA is gone), and restart the webhook so that it serves
	// the new one.
	secret, err := kubectl(ctx, nil, "-n", irsaWebhookNS, "create", "secret", "tls", "tls", "--dry-run=client", "-o", "yaml",
		"--cert", filepath.Join(dir, pki.CertFile), "--key", filepath.Join(dir, pki.KeyFile))
	if err != nil {
		return err
	}
	if _, err := kubectl(ctx, strings.NewReader(secret), "apply", "-f", "-"); err != nil {
		return err
	}
	if _, err := kubectl(ctx, nil, "-n", irsaWebhookNS, "rollout", "restart", "deployment/"+irsaHookName); err != nil {
		return err
	}
	if _, err := kubectl(ctx, nil, "-n", irsaWebhookNS, "rollout", "status", "deployment/"+irsaHookName, "--timeout=120s"); err != nil {
		return err
	}
	caBundle, err := os.ReadFile(filepath.Join(dir, pki.CAFile))
	if err != nil {
		return err
	}
	config := map[string]any{
		"apiVersion": "admissionregistration.k8s.io/v1",
		"kind":       "MutatingWebhookConfiguration",
		"metadata":   map[string]any{"name": "zz-secretfetch-e2e-irsa"},
		"webhooks": []any{map[string]any{
			"name":                    "irsa.e2e.secretfetch.io",
			"admissionReviewVersions": []string{"v1"},
			"sideEffects":             "None",
			"failurePolicy":           "Fail",
			"reinvocationPolicy":      "Never",
			"timeoutSeconds":          5,
			"clientConfig": map[string]any{
				"caBundle": caBundle,
				"service":  map[string]any{"name": irsaHookName, "namespace": irsaWebhookNS, "path": "/mutate"},
			},
			"rules": []any{map[string]any{
				"operations": []string{"CREATE"}, "apiGroups": []string{""}, "apiVersions": []string{"v1"}, "resources": []string{"pods"},
			}},
			"matchConditions": []any{map[string]any{
				"name":       "asks-for-a-role",
				"expression": "has(object.metadata.annotations) && '" + irsaWebhookAnnotation + "' in object.metadata.annotations",
			}},
		}},
	}
	b, err := json.Marshal(config)
	if err != nil {
		return err
	}
	_, err = kubectl(ctx, strings.NewReader(string(b)), "apply", "-f", "-")
	return err
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	requireNoErr(t, err, "encoding JSON")
	return string(b)
}

func itoa(n int) string { return strconv.Itoa(n) }

// errNotYet is a retry's "keep waiting" answer.
func errNotYet(what string) error { return errors.New(what) }
