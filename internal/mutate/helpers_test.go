package mutate

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"
)

func TestMain(m *testing.M) {
	// A logger as the webhook's (log/slog's JSON handler), so that the
	// logging code runs; its output is of no interest here
	// (TestHandlerLogsNoValues captures its own).
	logf.SetLogger(logr.FromSlogHandler(slog.NewJSONHandler(io.Discard, nil)))
	os.Exit(m.Run())
}

// testConfig is the webhook configuration of the golden cases unless a case
// has its own config.json.
var testConfig = Config{InitImage: "secretfetch.local/init-fetch:dev", DefaultRegion: "us-east-1"}

// readPod reads a pod from YAML, and returns it with the JSON the API server
// would send for it: the encoding of the typed pod, which always carries
// "status": {}, "resources": {} and so on.
func readPod(t testing.TB, file string) (*corev1.Pod, []byte) {
	t.Helper()
	y, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{}
	if err := yaml.UnmarshalStrict(y, pod); err != nil {
		t.Fatalf("reading %s: %v", file, err)
	}
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatalf("encoding %s: %v", file, err)
	}
	return pod, raw
}

func caseConfig(t testing.TB, dir string) Config {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if os.IsNotExist(err) {
		return testConfig
	}
	if err != nil {
		t.Fatal(err)
	}
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("reading %s/config.json: %v", dir, err)
	}
	return cfg
}

// mutatePod is the handler's decision without the admission plumbing: the
// pod unchanged when it did not opt in, the mutated pod, or the problems.
func mutatePod(t testing.TB, pod *corev1.Pod, cfg Config) (*corev1.Pod, field.ErrorList) {
	t.Helper()
	out := pod.DeepCopy()
	ok, ferr := Requested(out)
	if ferr != nil {
		return nil, field.ErrorList{ferr}
	}
	if !ok {
		return out, nil
	}
	inj, errs := Parse(out, cfg.DefaultRegion, cfg.parseOptions()...)
	if len(errs) > 0 {
		return nil, errs
	}
	if err := Apply(out, inj, cfg); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return out, nil
}

// podYAML renders a pod for a golden file, without the empty fields that
// encoding a typed pod adds (status, creationTimestamp, resources).
func podYAML(t testing.TB, pod *corev1.Pod) []byte {
	t.Helper()
	b, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok && md["creationTimestamp"] == nil {
		delete(md, "creationTimestamp")
	}
	spec, _ := m["spec"].(map[string]any)
	for _, list := range []string{"initContainers", "containers"} {
		cs, _ := spec[list].([]any)
		for _, c := range cs {
			if cm, ok := c.(map[string]any); ok {
				if r, ok := cm["resources"].(map[string]any); ok && len(r) == 0 {
					delete(cm, "resources")
				}
			}
		}
	}
	y, err := yaml.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return y
}

// review builds the bytes of an AdmissionReview for a pod, as the API
// server sends them.
func review(t testing.TB, raw []byte, op admissionv1.Operation, namespace string, dryRun bool) []byte {
	t.Helper()
	ar := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:         types.UID("7d3c0f2e-5a47-4b1e-9b1a-3e2f1c0d9a8b"),
			Kind:        metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:    metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			RequestKind: &metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Namespace:   namespace,
			Operation:   op,
			UserInfo:    authenticationUser,
			Object:      runtime.RawExtension{Raw: raw},
			DryRun:      &dryRun,
		},
	}
	b, err := json.Marshal(ar)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// authenticationUser is who creates pods for a Deployment.
var authenticationUser = authenticationv1.UserInfo{Username: "system:serviceaccount:kube-system:replicaset-controller"}

// serve sends AdmissionReview bytes through the Endpoint, as the server
// does, and returns the decoded response.
func serve(t testing.TB, wh http.Handler, body []byte) admissionv1.AdmissionResponse {
	t.Helper()
	rec := post(wh, "application/json", body)
	if rec.Code != http.StatusOK {
		t.Fatalf("HTTP status %d", rec.Code)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("decoding the AdmissionReview response: %v", err)
	}
	if out.Response == nil {
		t.Fatal("the AdmissionReview has no response")
	}
	return *out.Response
}

// post sends body to wh at Path, as the API server does, and records the
// answer.
func post(wh http.Handler, contentType string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	rec := httptest.NewRecorder()
	wh.ServeHTTP(rec, req)
	return rec
}

func newWebhook(t testing.TB, cfg Config, m *Metrics) *Endpoint {
	t.Helper()
	h, err := NewHandler(cfg, m)
	if err != nil {
		t.Fatal(err)
	}
	return &Endpoint{Webhook: &admission.Webhook{Handler: h}, Log: logr.Discard()}
}

// patchOp is one JSON patch operation as the response carries it.
type patchOp struct {
	Op   string `json:"op"`
	Path string `json:"path"`
}

// applyPatch applies a response's patch to the original object and checks
// that it holds no "remove" operation: the webhook only adds and updates.
func applyPatch(t testing.TB, raw []byte, resp admissionv1.AdmissionResponse) []byte {
	t.Helper()
	if len(resp.Patch) == 0 {
		if resp.PatchType != nil {
			t.Fatalf("patchType %q with an empty patch", *resp.PatchType)
		}
		return raw
	}
	if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("patchType = %v, want JSONPatch", resp.PatchType)
	}
	var ops []patchOp
	if err := json.Unmarshal(resp.Patch, &ops); err != nil {
		t.Fatalf("decoding the patch: %v", err)
	}
	for _, op := range ops {
		if op.Op == "remove" {
			t.Errorf("the patch removes %s", op.Path)
		}
	}
	p, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatalf("decoding the patch: %v", err)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("applying the patch: %v", err)
	}
	return out
}

func mustDecodePod(t testing.TB, b []byte) *corev1.Pod {
	t.Helper()
	pod, err := decodePod(b)
	if err != nil {
		t.Fatalf("decoding the pod: %v", err)
	}
	return pod
}

// restrictedViolations evaluates the init container, with the volumes it
// mounts, against the restricted Pod Security Standard.
func restrictedViolations(t testing.TB, pod *corev1.Pod) []string {
	t.Helper()
	return restrictedViolationsOf(t, pod, InitContainerName)
}

// restrictedViolationsOf checks the named init container (the init
// container or the refresh sidecar) alone against the restricted level.
func restrictedViolationsOf(t testing.TB, pod *corev1.Pod, name string) []string {
	t.Helper()
	var init *corev1.Container
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			init = &pod.Spec.InitContainers[i]
		}
	}
	if init == nil {
		return []string{"no init container " + name}
	}
	spec := corev1.PodSpec{InitContainers: []corev1.Container{*init},
		Containers: []corev1.Container{{Name: "placeholder", Image: "x", SecurityContext: init.SecurityContext}}}
	for _, v := range pod.Spec.Volumes {
		for _, m := range init.VolumeMounts {
			if m.Name == v.Name {
				spec.Volumes = append(spec.Volumes, v)
				break
			}
		}
	}
	ev, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range ev.EvaluatePod(psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}, &pod.ObjectMeta, &spec) {
		if !r.Allowed {
			out = append(out, r.ForbiddenReason+": "+r.ForbiddenDetail)
		}
	}
	return out
}

func errorLines(errs field.ErrorList) string {
	lines := make([]string, len(errs))
	for i, e := range errs {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n") + "\n"
}
