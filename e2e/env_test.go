//go:build e2e

// Package e2e proves secretfetch's promise on a real kubelet: secrets land as
// read-only files on tmpfs, a non-root app reads them, nothing reaches etcd,
// and every bad case fails closed.
//
// The suite runs against whatever KUBECONFIG points at: the local cluster
// that hack/local-cluster builds from source (make e2e), or kind
// (make kind-e2e). It deploys the webhook from manifests/overlays/local with a
// CA it makes itself, and the fake Secrets Manager as a pod and Service. The
// workloads carry IRSA-shaped credentials (a projected service-account token
// for sts.amazonaws.com, AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE), so the
// init container runs the real AWS credential chain against the fake's STS.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/secretfetch/secretfetch/hack/certs/pki"
)

const (
	webhookNS    = "secretfetch-system"
	webhookName  = "secretfetch-webhook"
	fakeNS       = "secretfetch-fake"
	fakeName     = "fake-secretsmanager"
	fakePort     = 4566
	e2eRoleARN   = "arn:aws:iam::111122223333:role/secretfetch-e2e"
	e2eRegion    = "us-east-1"
	appImage     = "secretfetch.local/demo-app:dev"
	irsaHookName = "e2e-irsa-webhook"
)

// env is the deployed system under test, shared by every scenario.
var env *environment

type environment struct {
	root    string // repository root
	tmp     string // scratch directory, removed at the end
	cs      kubernetes.Interface
	fakeURL string // the fake's Service, reachable from this host
}

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	e, err := setup(ctx)
	if err != nil {
		return 0, fmt.Errorf("setting up: %w", err)
	}
	env = e
	defer os.RemoveAll(e.tmp)
	return m.Run(), nil
}

func setup(ctx context.Context) (*environment, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "secretfetch-e2e-")
	if err != nil {
		return nil, err
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		clientcmd.NewDefaultClientConfigLoadingRules(), nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading KUBECONFIG: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	e := &environment{root: root, tmp: tmp, cs: cs}

	start := time.Now()
	if _, err := kubectl(ctx, nil, "apply", "-k", filepath.Join(root, "manifests/fake-secretsmanager")); err != nil {
		return nil, fmt.Errorf("deploying the fake Secrets Manager: %w", err)
	}
	if _, err := kubectl(ctx, nil, "-n", fakeNS, "rollout", "status", "deployment/"+fakeName, "--timeout=120s"); err != nil {
		return nil, fmt.Errorf("waiting for the fake Secrets Manager: %w", err)
	}
	svc, err := cs.CoreV1().Services(fakeNS).Get(ctx, fakeName, metav1GetOptions)
	if err != nil {
		return nil, fmt.Errorf("reading the fake's Service: %w", err)
	}
	e.fakeURL = fmt.Sprintf("http://%s:%d", svc.Spec.ClusterIP, fakePort)
	// A new Service needs a moment before kube-proxy routes it.
	if err := retry(ctx, 60*time.Second, func() error { return e.fakeGet(ctx, "/healthz", nil) }); err != nil {
		return nil, fmt.Errorf("reaching the fake at %s: %w", e.fakeURL, err)
	}

	if err := e.deployWebhook(ctx); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "e2e: environment ready in %s (fake at %s)\n", time.Since(start).Round(time.Millisecond), e.fakeURL)
	return e, nil
}

// deployWebhook renders manifests/overlays/local from a scratch copy of the
// manifests, with a CA and serving certificate made here, and points the init
// containers at the fake through the webhook's endpoint settings.
func (e *environment) deployWebhook(ctx context.Context) error {
	manifests := filepath.Join(e.tmp, "manifests")
	if err := os.CopyFS(manifests, os.DirFS(filepath.Join(e.root, "manifests"))); err != nil {
		return fmt.Errorf("copying the manifests: %w", err)
	}
	bundle, err := pki.New(pki.Options{DNSNames: []string{
		webhookName + "." + webhookNS + ".svc",
		webhookName + "." + webhookNS + ".svc.cluster.local",
	}})
	if err != nil {
		return err
	}
	if err := bundle.WriteDir(filepath.Join(manifests, "overlays/ca-bundle")); err != nil {
		return err
	}
	endpoint := fmt.Sprintf("http://%s.%s.svc.cluster.local:%d", fakeName, fakeNS, fakePort)
	overlay := filepath.Join(e.tmp, "overlay")
	if err := os.MkdirAll(overlay, 0o755); err != nil {
		return err
	}
	kustomization := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
# Relative: kustomize refuses an absolute path to a base.
- %s
configMapGenerator:
- name: secretfetch-webhook-config
  namespace: %s
  behavior: merge
  literals:
  - DEFAULT_REGION=%s
  - SECRETSMANAGER_ENDPOINT=%s
  - STS_ENDPOINT=%s
`, filepath.Join("..", overlayPath()), webhookNS, e2eRegion, endpoint, endpoint)
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(kustomization), 0o644); err != nil {
		return err
	}
	if _, err := kubectl(ctx, nil, "apply", "-k", overlay); err != nil {
		return fmt.Errorf("deploying the webhook: %w", err)
	}
	if _, err := kubectl(ctx, nil, "-n", webhookNS, "rollout", "status", "deployment/"+webhookName, "--timeout=180s"); err != nil {
		return fmt.Errorf("waiting for the webhook: %w", err)
	}
	return e.waitWebhookServing(ctx)
}

// waitWebhookServing waits until the API server really reaches the webhook:
// a server-side dry run of an opted-in pod comes back mutated.
func (e *environment) waitWebhookServing(ctx context.Context) error {
	probe := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"probe","namespace":"default","annotations":{
"secretfetch.io/inject":"true","secretfetch.io/secret-probe":"probe"}},
"spec":{"securityContext":{"runAsUser":1000,"runAsGroup":1000},"containers":[{"name":"app","image":"` + appImage + `"}]}}`
	return retry(ctx, 90*time.Second, func() error {
		out, err := kubectl(ctx, strings.NewReader(probe), "create", "--dry-run=server", "-o", "json", "-f", "-")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "secretfetch-init") {
			return fmt.Errorf("the dry-run pod was not mutated")
		}
		return nil
	})
}

// overlayPath is the webhook's overlay: manifests/overlays/local, or
// E2E_OVERLAY (manifests/overlays/kind for make kind-e2e).
func overlayPath() string {
	if o := os.Getenv("E2E_OVERLAY"); o != "" {
		return o
	}
	return "manifests/overlays/local"
}

// kubectl runs kubectl with the test's KUBECONFIG and returns its stdout. An
// error carries stderr, which is where kubectl prints admission denials.
func kubectl(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "kubectl", args...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// retry calls f until it succeeds or the timeout passes, returning f's last
// error.
func retry(ctx context.Context, timeout time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var err error
	for {
		if err = f(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s: %w", timeout, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// fakeGet and fakePost talk to the fake's admin API (/_fake/...).
func (e *environment) fakeGet(ctx context.Context, path string, out any) error {
	return e.fakeDo(ctx, http.MethodGet, path, nil, out)
}

func (e *environment) fakePost(ctx context.Context, path string, in any) error {
	return e.fakeDo(ctx, http.MethodPost, path, in, nil)
}

func (e *environment) fakeDo(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.fakeURL+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// requireNoErr fails the test at once; e2e steps depend on each other.
func requireNoErr(t testing.TB, err error, doing string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", doing, err)
	}
}
