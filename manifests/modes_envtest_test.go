//go:build envtest

// The three doors held to one answer: the same pods go through the webhook's
// handler (in process), through `secretfetch render` (internal/offline), and
// through the policy mode (overlays/policy in a real kube-apiserver, which
// runs the MutatingAdmissionPolicy and the ValidatingAdmissionPolicies
// itself), and each gives the same pod, or the same rejection, up to the
// differences the README documents. Run with `make envtest`.
package manifests_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	"github.com/secretfetch/secretfetch/internal/mutate"
	"github.com/secretfetch/secretfetch/internal/offline"
)

// modesImage is the init image of both modes in this test.
const modesImage = "secretfetch.local/init-fetch:dev"

// webhookConfig is the webhook's configuration that matches the policy
// parameters startModesEnv sets.
var webhookConfig = mutate.Config{
	InitImage:          modesImage,
	DefaultRegion:      "us-east-1",
	MinRefreshInterval: time.Minute,
	Restart:            mutate.RestartConfig{Enabled: true},
}

// startModesEnv starts an API server with overlays/policy installed, the
// parameters set as webhookConfig is, and the namespace shop.
func startModesEnv(t *testing.T) kubernetes.Interface {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set; run make envtest")
	}
	kubectl := findKubectl(t)
	root, _ := setup(t)
	dir := writeKustomization(t, root, "modes", `
resources: [../overlays/policy]
images:
- name: ghcr.io/secretfetch/init-fetch
  newName: secretfetch.local/init-fetch
  newTag: dev
configMapGenerator:
- name: secretfetch-policy-params
  namespace: secretfetch-system
  behavior: merge
  literals: [DEFAULT_REGION=us-east-1, MIN_REFRESH_INTERVAL=1m]
`)
	objs := render(t, kubectl, dir)

	cs := startAPIServer(t)
	ctx := t.Context()
	for _, name := range []string{systemNS, "shop"} {
		must(t, create(ctx, cs.CoreV1().Namespaces().Create, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}))
	}
	// envtest runs no controller-manager to make it.
	must(t, create(ctx, cs.CoreV1().ServiceAccounts("shop").Create, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}))
	if skipped := createPolicies(t, cs, objs); !slices.Equal(skipped, []string{"Namespace"}) {
		t.Fatalf("overlays/policy holds objects of kinds %v besides its policies, their parameters and the namespace", skipped)
	}
	// The API server loads new policies within a second or so, each on its
	// own: wait for the mutation and for the checks.
	eventually(t, func() error {
		if _, err := admitPolicy(t, cs, "../internal/mutate/testdata/one-container/in.yaml"); err != nil {
			return err
		}
		if _, err := admitPolicy(t, cs, "testdata/modes/deny-checks.yaml"); err == nil {
			return errors.New("secretfetch-policy-checks is not in force yet")
		}
		return nil
	})
	return cs
}

// TestModesAgree is the table of the issue: each pod, valid or not, through
// both modes.
func TestModesAgree(t *testing.T) {
	cs := startModesEnv(t)
	h, err := mutate.NewHandler(webhookConfig, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		// file is the pod, when not internal/mutate/testdata/<name>/in.yaml.
		file string
	}{
		{name: "one-container"},
		{name: "env-and-file"},
		{name: "env-only"},
		{name: "env-containers"},
		{name: "env-refresh"},
		{name: "format"},
		{name: "many-containers"},
		{name: "pod-run-as-user"},
		{name: "container-run-as-user"},
		{name: "root-group-readable"},
		{name: "init-containers-and-sidecar"},
		{name: "selected-init-container"},
		{name: "refresh-init-containers-and-sidecar"},
		{name: "refresh-restart"},
		{name: "refresh-restart-env-only"},
		{name: "irsa"},
		{name: "pod-identity"},
		{name: "deny-many"},
		{name: "deny-uid-unresolved"},
		{name: "deny-uid-disagree"},
		{name: "deny-root-0400"},
		{name: "deny-refresh"},
		{name: "deny-refresh-bad-duration"},
		{name: "deny-refresh-window-alone"},
		{name: "deny-refresh-notify-alone"},
		{name: "deny-checks", file: "testdata/modes/deny-checks.yaml"},
		{name: "deny-outputs", file: "testdata/modes/deny-outputs.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join("../internal/mutate/testdata", tc.name, "in.yaml")
			if tc.file != "" {
				file = tc.file
			}
			wantPod, wantDenial := admitWebhook(t, cs, h, file)
			checkRender(t, cs, file, wantPod, wantDenial)
			gotPod, err := admitPolicy(t, cs, file)
			switch {
			case wantDenial != "":
				if err == nil {
					t.Fatalf("the webhook denies this pod, the policy mode admits it; the webhook says:\n%s", wantDenial)
				}
				checkSameDenial(t, wantDenial, err)
			case err != nil:
				t.Fatalf("the webhook admits this pod, the policy mode denies it: %v", err)
			default:
				want, got := comparable(wantPod), comparable(gotPod)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("the modes mutate the pod differently (-webhook +policy):\n%s", diff)
				}
			}
		})
	}
}

// admitWebhook runs the pod through the webhook's handler and creates the
// result with a dry run, so that the API server's defaults are applied as
// they are to the policy's result (the status annotation keeps the policy
// from mutating it again). It returns the pod, or the webhook's denial.
func admitWebhook(t *testing.T, cs kubernetes.Interface, h *mutate.Handler, file string) (*corev1.Pod, string) {
	t.Helper()
	raw := readYAMLAsJSON(t, file)
	resp := h.Handle(t.Context(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "modes", Operation: admissionv1.Create, Namespace: "shop",
		Kind:     metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Object:   runtime.RawExtension{Raw: raw},
	}})
	if !resp.Allowed {
		return nil, resp.Result.Message
	}
	// The patch is in Patches, or already encoded in Patch.
	patch := resp.Patch
	if len(resp.Patches) > 0 {
		var err error
		if patch, err = json.Marshal(resp.Patches); err != nil {
			t.Fatal(err)
		}
	}
	if len(patch) == 0 {
		t.Fatalf("the webhook admitted the pod unchanged: %+v", resp.Result)
	}
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		t.Fatal(err)
	}
	mutated, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("applying the webhook's patch: %v", err)
	}
	pod := &corev1.Pod{}
	must(t, json.Unmarshal(mutated, pod))
	created, err := cs.CoreV1().Pods("shop").Create(t.Context(), pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		t.Fatalf("the webhook's pod is not admitted: %v", err)
	}
	return created, ""
}

// checkRender runs the pod through the third door, `secretfetch render`
// (internal/offline), with the webhook's configuration: it must print the
// webhook's pod, or the webhook's problems, exactly.
func checkRender(t *testing.T, cs kubernetes.Interface, file string, webhookPod *corev1.Pod, webhookDenial string) {
	t.Helper()
	res, err := (&offline.Renderer{Config: webhookConfig}).Render(readYAMLAsJSON(t, file), file)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	if webhookDenial != "" {
		var got []string
		for _, p := range res.Problems {
			got = append(got, p.Err.Error())
		}
		if diff := cmp.Diff(splitProblems(webhookDenial), got); diff != "" {
			t.Errorf("render reports other problems than the webhook (-webhook +render):\n%s", diff)
		}
		return
	}
	if len(res.Problems) > 0 || len(res.Documents) != 1 {
		t.Fatalf("render: %d documents, problems %v; want the webhook's pod", len(res.Documents), res.Problems)
	}
	pod := &corev1.Pod{}
	must(t, yaml.Unmarshal(res.Documents[0], pod))
	created, err := cs.CoreV1().Pods("shop").Create(t.Context(), pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		t.Fatalf("render's pod is not admitted: %v", err)
	}
	if diff := cmp.Diff(comparable(webhookPod), comparable(created)); diff != "" {
		t.Errorf("render prints another pod than the webhook's (-webhook +render):\n%s", diff)
	}
}

// admitPolicy creates the pod with a dry run in the policy mode.
func admitPolicy(t *testing.T, cs kubernetes.Interface, file string) (*corev1.Pod, error) {
	t.Helper()
	pod := &corev1.Pod{}
	must(t, json.Unmarshal(readYAMLAsJSON(t, file), pod))
	created, err := cs.CoreV1().Pods("shop").Create(t.Context(), pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		return nil, err
	}
	if created.Annotations[mutate.AnnotationStatus] != mutate.StatusInjected {
		return nil, errNotMutated
	}
	return created, nil
}

var errNotMutated = apierrors.NewBadRequest("the MutatingAdmissionPolicy has not mutated the pod (yet)")

func readYAMLAsJSON(t *testing.T, file string) []byte {
	t.Helper()
	y, err := os.ReadFile(file)
	must(t, err)
	// Every case goes to the namespace shop.
	var pod map[string]any
	must(t, yaml.Unmarshal(y, &pod))
	pod["metadata"].(map[string]any)["namespace"] = "shop"
	// A projected service-account token needs a service account.
	pod["spec"].(map[string]any)["serviceAccountName"] = "default"
	j, err := json.Marshal(pod)
	must(t, err)
	return j
}

// planEnv are how the plan reaches init-fetch: the webhook passes the plan
// itself (SECRETFETCH_PLAN); the policy mode passes the annotations file,
// the container names and the settings.
var planEnv = []string{"SECRETFETCH_PLAN", "SECRETFETCH_ANNOTATIONS_FILE", "SECRETFETCH_CONTAINERS",
	"SECRETFETCH_INIT_CONTAINERS", "SECRETFETCH_DEFAULT_REGION", "SECRETFETCH_MIN_REFRESH_INTERVAL"}

const podinfoVolume = "secretfetch-podinfo"

// comparable is the part of a pod that the modes must agree on: its
// annotations and spec, less the documented differences: how the plan
// reaches init-fetch (planEnv, the podinfo volume), and how a duration flag
// of the sidecar is written (5m or 5m0s).
func comparable(pod *corev1.Pod) map[string]any {
	pod = pod.DeepCopy()
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if c.Name != mutate.InitContainerName && c.Name != mutate.RefreshContainerName {
			continue
		}
		c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return slices.Contains(planEnv, e.Name) })
		c.VolumeMounts = slices.DeleteFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == podinfoVolume })
		for j, a := range c.Args {
			if name, value, ok := strings.Cut(a, "="); ok {
				if d, err := time.ParseDuration(value); err == nil {
					c.Args[j] = name + "=" + d.String()
				}
			}
		}
	}
	pod.Spec.Volumes = slices.DeleteFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == podinfoVolume })
	return map[string]any{"annotations": pod.Annotations, "spec": pod.Spec}
}

// checkSameDenial checks that the policy mode denies with the webhook's
// words: every problem the policy names is one the webhook names, and the
// webhook names none that CEL could check but the policy missed. What CEL
// cannot check at all (an ARN's shape, an RE2 pattern, a mount path's
// rules) the init container reports in policy mode; the README lists it.
func checkSameDenial(t *testing.T, webhook string, err error) {
	t.Helper()
	msg := err.Error()
	_, policy, ok := strings.Cut(msg, "denied request: ")
	if !ok {
		// The API server's own validation of the object comes after the
		// policies in the policy mode, and after the webhook in the
		// webhook mode; a key it refuses outright is one the webhook
		// names too.
		if apierrors.IsInvalid(err) && strings.Contains(msg, "metadata.annotations: Invalid value: ") {
			key, _, _ := strings.Cut(strings.SplitN(msg, `metadata.annotations: Invalid value: "`, 2)[1], `"`)
			if !strings.Contains(webhook, "metadata.annotations["+key+"]") {
				t.Errorf("the API server refuses the key %s, which the webhook does not name:\n%s", key, webhook)
			}
			return
		}
		t.Fatalf("the policy mode denied the pod, but not through a policy: %v", err)
	}
	problems := splitProblems(policy)
	want := splitProblems(webhook)
	for _, p := range problems {
		if !slices.Contains(want, p) {
			t.Errorf("the policy mode says something the webhook does not:\n  policy: %s\n  webhook: %s", p, webhook)
		}
	}
	for _, p := range want {
		if !slices.Contains(problems, p) && !initContainerChecks(p) {
			t.Errorf("the webhook says something the policy mode does not, and it is not a check left to the init container:\n  %s\n  policy: %s", p, policy)
		}
	}
}

// splitProblems splits a denial "secretfetch: [a, b]" into its problems.
// Each problem starts with a field path, which is how a ", " inside a
// problem is told from the separator.
func splitProblems(msg string) []string {
	msg = strings.TrimPrefix(strings.TrimSpace(msg), "secretfetch: ")
	if strings.HasPrefix(msg, "[") && strings.HasSuffix(msg, "]") {
		msg = msg[1 : len(msg)-1]
	}
	var out []string
	for _, part := range strings.Split(msg, ", ") {
		if len(out) > 0 && !strings.HasPrefix(part, "metadata.") && !strings.HasPrefix(part, "spec.") {
			out[len(out)-1] += ", " + part
			continue
		}
		out = append(out, part)
	}
	return out
}

// initContainerChecks reports whether a problem is one that only the
// grammar can find (the policy mode's init container does).
func initContainerChecks(problem string) bool {
	for _, p := range []string{
		"metadata.annotations[secretfetch.io/secret-",    // ARN shape, ID syntax
		"metadata.annotations[secretfetch.io/pattern-",   // RE2
		"metadata.annotations[secretfetch.io/key-",       // JSON key path
		"metadata.annotations[secretfetch.io/mount-path", // path rules
		"metadata.annotations[secretfetch.io/refresh-notify",
		"metadata.annotations[secretfetch.io/region",
	} {
		if strings.HasPrefix(problem, p) && !strings.Contains(problem, "Required value: secretfetch.io/") &&
			!strings.Contains(problem, "the part after secret- is the file name") {
			return true
		}
	}
	return false
}
