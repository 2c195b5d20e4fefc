//go:build envtest

// The chart's lookup of its own policy parameters, across helm install and
// helm upgrade, against a real API server: envtest starts kube-apiserver and
// etcd from KUBEBUILDER_ASSETS (hack/envtest.sh finds them and the pinned
// Helm). Run with `make envtest`.
package charts_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// TestPolicyParamsAcrossUpgrades: an upgrade that changes initImage keeps the
// image it replaces in PREVIOUS_INIT_IMAGES, next to
// policies.injected.previousInitImages, because the old webhook replicas
// inject it until the rollout ends; the next upgrade drops it again.
func TestPolicyParamsAcrossUpgrades(t *testing.T) {
	helm := findHelm(t)
	cs, kubeconfigPath := startAPIServer(t)
	ctx := t.Context()

	const repo = "ghcr.io/secretfetch/init-fetch"
	steps := []struct {
		name     string
		verb     string
		set      []string
		previous string
	}{
		{"install", "install", []string{"initImage.tag=a"}, ""},
		{"an upgrade that changes the image", "upgrade", []string{"initImage.tag=b"}, repo + ":a"},
		{"the next upgrade", "upgrade", []string{"initImage.tag=b"}, ""},
		{"listed images, and the replaced one after them", "upgrade",
			[]string{"initImage.tag=c", "policies.injected.previousInitImages={old.example.com/init-fetch:v1," + repo + ":c}"},
			"old.example.com/init-fetch:v1," + repo + ":b"},
		{"the new image is left out of the list, and a duplicate is kept once", "upgrade",
			[]string{"initImage.digest=" + digest, "policies.injected.previousInitImages={" + repo + ":c," + repo + "@" + digest + "}"},
			repo + ":c"},
	}
	for _, s := range steps {
		args := []string{s.verb, release, chartDir, "--namespace", namespace, "--kubeconfig", kubeconfigPath}
		for _, v := range s.set {
			args = append(args, "--set", v)
		}
		if out, err := run(ctx, helm, args...); err != nil {
			t.Fatalf("%s: %v\n%s", s.name, err, out)
		}
		cm, err := cs.CoreV1().ConfigMaps(namespace).Get(ctx, "secretfetch-policy-params", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got, ok := cm.Data["PREVIOUS_INIT_IMAGES"]
		if !ok || got != s.previous {
			t.Errorf("%s: PREVIOUS_INIT_IMAGES = %q (set: %v), want %q", s.name, got, ok, s.previous)
		}
	}
}

// startAPIServer starts kube-apiserver and etcd (envtest), creates the
// release namespace, and returns a client and a kubeconfig for Helm, as a
// cluster admin.
func startAPIServer(t *testing.T) (kubernetes.Interface, string) {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set; run make envtest")
	}
	logf.SetLogger(logr.Discard())
	te := &envtest.Environment{}
	cfg, err := te.Start()
	if err != nil {
		t.Fatalf("starting envtest: %v", err)
	}
	t.Cleanup(func() {
		if err := te.Stop(); err != nil {
			t.Errorf("stopping envtest: %v", err)
		}
	})
	admin, err := te.AddUser(envtest.User{Name: "helm", Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kubeconfigPath := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return cs, kubeconfigPath
}
