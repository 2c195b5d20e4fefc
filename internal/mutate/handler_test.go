package mutate

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/go-logr/logr"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// counter reads one series of secretfetch_webhook_pods_total.
func counter(t *testing.T, reg *prometheus.Registry, result, reason string) float64 {
	t.Helper()
	for _, m := range podSeries(t, reg) {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["result"] == result && labels["reason"] == reason {
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no series result=%q reason=%q", result, reason)
	return 0
}

// totalCount sums secretfetch_webhook_pods_total over every label.
func totalCount(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	var n float64
	for _, m := range podSeries(t, reg) {
		n += m.GetCounter().GetValue()
	}
	return n
}

// podSeries gathers the series of secretfetch_webhook_pods_total.
func podSeries(t *testing.T, reg *prometheus.Registry) []*dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "secretfetch_webhook_pods_total" {
			return mf.GetMetric()
		}
	}
	return nil
}

func newMetrics(t *testing.T) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

// TestHandlerDryRun: a dry run gets the same answer, and changes nothing
// but the counters, which count dry runs like any other request.
func TestHandlerDryRun(t *testing.T) {
	for _, c := range []string{"irsa", "deny-many"} {
		t.Run(c, func(t *testing.T) {
			dir := filepath.Join("testdata", c)
			pod, raw := readPod(t, filepath.Join(dir, "in.yaml"))
			m, reg := newMetrics(t)
			wh := newWebhook(t, caseConfig(t, dir), m)

			wet := review(t, raw, admissionv1.Create, pod.Namespace, false)
			dry := review(t, raw, admissionv1.Create, pod.Namespace, true)
			dryBefore := bytes.Clone(dry)
			gotWet := serve(t, wh, wet)
			gotDry := serve(t, wh, dry)
			// The patch library emits operations in map order; compare them
			// as a set.
			gotWet.Patch, gotDry.Patch = sortedOps(t, gotWet.Patch), sortedOps(t, gotDry.Patch)
			if diff := cmp.Diff(gotWet, gotDry); diff != "" {
				t.Errorf("dry-run response differs (-wet +dry):\n%s", diff)
			}
			if !bytes.Equal(dry, dryBefore) {
				t.Error("the handler changed the request bytes")
			}
			result, reason := ResultInjected, ReasonNew
			if !gotWet.Allowed {
				result, reason = ResultDenied, ReasonAnnotations
			}
			if got := counter(t, reg, result, reason); got != 2 {
				t.Errorf("%s/%s counted %v times, want 2 (the dry run counts)", result, reason, got)
			}
		})
	}
}

func sortedOps(t *testing.T, patch []byte) []byte {
	t.Helper()
	if len(patch) == 0 {
		return nil
	}
	var ops []json.RawMessage
	if err := json.Unmarshal(patch, &ops); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(ops, func(a, b json.RawMessage) int { return bytes.Compare(a, b) })
	out, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestHandlerSkips(t *testing.T) {
	_, injected := readPod(t, "testdata/one-container/in.yaml")
	_, optOut := readPod(t, "testdata/opt-out/in.yaml")
	plain := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"shop"},"spec":{"containers":[{"name":"app","image":"app"}]}}`)
	for _, tt := range []struct {
		name   string
		body   func(t *testing.T) []byte
		reason string
	}{
		{"update", func(t *testing.T) []byte { return review(t, injected, admissionv1.Update, "shop", false) }, ReasonNotCreate},
		{"delete", func(t *testing.T) []byte { return review(t, injected, admissionv1.Delete, "shop", false) }, ReasonNotCreate},
		{"inject false", func(t *testing.T) []byte { return review(t, optOut, admissionv1.Create, "shop", false) }, ReasonOptedOut},
		{"no annotation", func(t *testing.T) []byte { return review(t, plain, admissionv1.Create, "shop", false) }, ReasonNotRequested},
		{"not a pod", func(t *testing.T) []byte {
			var ar admissionv1.AdmissionReview
			if err := json.Unmarshal(review(t, injected, admissionv1.Create, "shop", false), &ar); err != nil {
				t.Fatal(err)
			}
			ar.Request.Resource = metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
			b, _ := json.Marshal(ar)
			return b
		}, ReasonNotPod},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newMetrics(t)
			resp := serve(t, newWebhook(t, testConfig, m), tt.body(t))
			if !resp.Allowed || len(resp.Patch) != 0 || resp.PatchType != nil {
				t.Fatalf("allowed=%v patch=%d bytes, want allowed with no patch", resp.Allowed, len(resp.Patch))
			}
			if got := counter(t, reg, ResultSkipped, tt.reason); got != 1 {
				t.Errorf("skipped/%s = %v, want 1", tt.reason, got)
			}
		})
	}
}

// TestHandlerNoNamespace: pods made by controllers arrive without a
// namespace; the webhook takes it from the request.
func TestHandlerNoNamespace(t *testing.T) {
	pod, _ := readPod(t, "testdata/one-container/in.yaml")
	want, _ := readPod(t, "testdata/one-container/want.yaml")
	pod.Namespace = ""
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	resp := serve(t, newWebhook(t, testConfig, nil), review(t, raw, admissionv1.Create, "shop", false))
	got := mustDecodePod(t, applyPatch(t, raw, resp))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("patched pod (-want +got):\n%s", diff)
	}
}

// TestHandlerReinvocation sends every mutated golden pod back: the answer is
// no patch at all. The reinvocation case, whose app gained IRSA settings,
// gets a patch that only adds to the init container's env and mounts.
func TestHandlerReinvocation(t *testing.T) {
	wants, _ := filepath.Glob("testdata/*/want.yaml")
	for _, file := range wants {
		dir := filepath.Dir(file)
		pod, raw := readPod(t, file)
		if pod.Annotations[AnnotationStatus] != StatusInjected {
			continue
		}
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m, reg := newMetrics(t)
			resp := serve(t, newWebhook(t, caseConfig(t, dir), m), review(t, raw, admissionv1.Create, pod.Namespace, false))
			if !resp.Allowed || len(resp.Patch) != 0 {
				t.Fatalf("allowed=%v patch=%s, want allowed with no patch", resp.Allowed, resp.Patch)
			}
			if got := counter(t, reg, ResultInjected, ReasonUnchanged); got != 1 {
				t.Errorf("injected/unchanged = %v, want 1", got)
			}
		})
	}

	t.Run("IRSA added after the first pass", func(t *testing.T) {
		pod, raw := readPod(t, "testdata/reinvocation/in.yaml")
		m, reg := newMetrics(t)
		resp := serve(t, newWebhook(t, testConfig, m), review(t, raw, admissionv1.Create, pod.Namespace, false))
		var ops []patchOp
		if err := json.Unmarshal(resp.Patch, &ops); err != nil || len(ops) == 0 {
			t.Fatalf("patch %s: %v; want operations", resp.Patch, err)
		}
		for _, op := range ops {
			if op.Op != "add" || !(strings.HasPrefix(op.Path, "/spec/initContainers/0/env/") ||
				strings.HasPrefix(op.Path, "/spec/initContainers/0/volumeMounts/")) {
				t.Errorf("%s %s: want only additions to the init container's env and volume mounts", op.Op, op.Path)
			}
		}
		if got := counter(t, reg, ResultInjected, ReasonRefreshed); got != 1 {
			t.Errorf("injected/refreshed = %v, want 1", got)
		}
	})
}

// TestHandlerKeepsUnknownFields: a newer API server may send fields this
// webhook's API version does not know. The patch must not remove them, even
// where the init container is put in front of existing ones.
func TestHandlerKeepsUnknownFields(t *testing.T) {
	raw := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"shop",
		"annotations":{"secretfetch.io/inject":"true","secretfetch.io/secret-db":"prod/db"}},
		"spec":{"futurePodField":{"a":1},"securityContext":{"runAsUser":1000},
		"initContainers":[{"name":"migrate","image":"m","futureContainerField":true}],
		"containers":[{"name":"app","image":"app","futureContainerField":"x"}]}}`)
	resp := serve(t, newWebhook(t, testConfig, nil), review(t, raw, admissionv1.Create, "shop", false))
	patched := applyPatch(t, raw, resp)
	var obj struct {
		Spec struct {
			FuturePodField map[string]any   `json:"futurePodField"`
			InitContainers []map[string]any `json:"initContainers"`
			Containers     []map[string]any `json:"containers"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(patched, &obj); err != nil {
		t.Fatal(err)
	}
	if obj.Spec.FuturePodField == nil || len(obj.Spec.InitContainers) != 2 ||
		obj.Spec.InitContainers[0]["name"] != InitContainerName ||
		obj.Spec.InitContainers[1]["futureContainerField"] != true || obj.Spec.Containers[0]["futureContainerField"] != "x" {
		t.Errorf("patched pod lost a field or misplaced the init container:\n%s", patched)
	}
}

func TestHandlerErrors(t *testing.T) {
	for _, tt := range []struct {
		name     string
		raw      []byte
		wantCode int32
	}{
		{"not JSON", []byte(`{"apiVersion":"v1","kind":"Pod","spec":`), 400},
		{"wrong type", []byte(`{"apiVersion":"v1","kind":"Pod","spec":{"containers":"app"}}`), 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newMetrics(t)
			h, err := NewHandler(testConfig, m)
			if err != nil {
				t.Fatal(err)
			}
			// Through Handle: a body that is not JSON would not even reach
			// the handler through ServeHTTP.
			resp := h.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
				UID: "u", Operation: admissionv1.Create, Namespace: "shop",
				Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
				Object:   runtime.RawExtension{Raw: tt.raw},
			}})
			if resp.Allowed || resp.Result == nil || resp.Result.Code != tt.wantCode || resp.Result.Message == "" {
				t.Fatalf("response = %+v, want a %d error with a message", resp.AdmissionResponse, tt.wantCode)
			}
			if got := counter(t, reg, ResultError, ReasonDecode); got != 1 {
				t.Errorf("error/decode = %v, want 1", got)
			}
		})
	}
}

// TestHandlerLogsNoValues: the decision is logged with the request's
// identity, and never with env values or the plan.
func TestHandlerLogsNoValues(t *testing.T) {
	var logs bytes.Buffer
	ctx := logf.IntoContext(context.Background(), logr.FromSlogHandler(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	for _, c := range []string{"irsa", "deny-many"} {
		dir := filepath.Join("testdata", c)
		pod, raw := readPod(t, filepath.Join(dir, "in.yaml"))
		h, err := NewHandler(caseConfig(t, dir), nil)
		if err != nil {
			t.Fatal(err)
		}
		h.Handle(ctx, admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			UID: types.UID("uid-" + c), Operation: admissionv1.Create, Namespace: pod.Namespace,
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Object:   runtime.RawExtension{Raw: raw},
		}})
	}
	out := logs.String()
	for _, want := range []string{`"uid":"uid-irsa"`, `"decision":"injected"`, `"reason":"new"`, `"name":"orders"`,
		`"namespace":"shop"`, `"uid":"uid-deny-many"`, `"decision":"denied"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the logs lack %s", want)
		}
	}
	for _, secret := range []string{"arn:aws:iam::111122223333:role/orders", "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
		`{"version":1,"dir":`, "secretsmanager-fips", "LOG_LEVEL"} {
		if strings.Contains(out, secret) {
			t.Errorf("the logs contain an env value or the plan (%d bytes)", len(secret))
		}
	}
}

// TestDecodePodIsCaseSensitive: like the API server, the webhook does not
// read "Annotations" as "annotations", so a differently cased key can neither
// opt a pod in nor smuggle settings past the parser.
func TestDecodePodIsCaseSensitive(t *testing.T) {
	pod, err := decodePod([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p",
		"Annotations":{"secretfetch.io/inject":"true"}},"spec":{"containers":[{"name":"app","image":"x"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(pod.Annotations) != 0 {
		t.Errorf("annotations = %v, want none: a differently cased key was read", pod.Annotations)
	}
	if pod.Name != "p" || len(pod.Spec.Containers) != 1 {
		t.Errorf("decoded %q with %d containers, want p with 1", pod.Name, len(pod.Spec.Containers))
	}
	if _, err := decodePod(nil); err == nil {
		t.Error("decodePod accepted an empty object")
	}
}

// TestHandlerRawObject: a request whose pod comes as bytes (req.Object.Raw,
// as controller-runtime's own webhook hands it over) is patched exactly like
// one whose pod Endpoint decoded with the review.
func TestHandlerRawObject(t *testing.T) {
	wants, _ := filepath.Glob("testdata/*/want.yaml")
	for _, file := range wants {
		dir := filepath.Dir(file)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			in, raw := readPod(t, filepath.Join(dir, "in.yaml"))
			want, _ := readPod(t, file)
			h, err := NewHandler(caseConfig(t, dir), nil)
			if err != nil {
				t.Fatal(err)
			}
			req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
				UID: "u", Operation: admissionv1.Create, Namespace: in.Namespace,
				Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
				Object:   runtime.RawExtension{Raw: raw},
			}}
			resp := h.Handle(context.Background(), req)
			if err := resp.Complete(req); err != nil {
				t.Fatal(err)
			}
			if !resp.Allowed {
				t.Fatalf("denied: %+v", resp.Result)
			}
			if diff := cmp.Diff(want, mustDecodePod(t, applyPatch(t, raw, resp.AdmissionResponse))); diff != "" {
				t.Errorf("patched pod (-want +got):\n%s", diff)
			}
		})
	}
}
