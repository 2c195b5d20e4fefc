package mutate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"runtime"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// reviewBody wraps a pod's JSON in an AdmissionReview, with the fields the
// API server sends, by concatenation: the costly reviews below are large, and
// their pods are not always pods.
func reviewBody(pod string) []byte {
	return []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{` +
		`"uid":"7d3c0f2e-5a47-4b1e-9b1a-3e2f1c0d9a8b","kind":{"group":"","version":"v1","kind":"Pod"},` +
		`"resource":{"group":"","version":"v1","resource":"pods"},"requestKind":{"group":"","version":"v1","kind":"Pod"},` +
		`"namespace":"shop","operation":"CREATE","userInfo":{"username":"system:serviceaccount:kube-system:replicaset-controller"},` +
		`"object":` + pod + `,"oldObject":null,"dryRun":false,"options":{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1"}}}`)
}

// optedIn is the JSON of an opted-in pod with extra annotations ann (each
// starting with a comma), labels and spec members.
func optedIn(ann, labels, spec string) string {
	return `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"shop","annotations":{` +
		`"secretfetch.io/inject":"true","secretfetch.io/secret-db":"prod/db"` + ann + `},"labels":{"app":"p"` + labels + `}},` +
		`"spec":{"securityContext":{"runAsUser":1000}` + spec + `}}`
}

// repeat joins n copies of s (with %[1]d for the index) with commas.
func repeat(s string, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		if strings.Contains(s, "%") {
			fmt.Fprintf(&b, s, i)
		} else {
			b.WriteString(s)
		}
	}
	return b.String()
}

// costlyShapes are the reviews that cost the most per byte: arrays of
// scalars and nulls where structs belong (each decodes to a zero struct, and
// a number also to a type error), large maps, and empty pointers. Each
// builds a pod of n repetitions.
var costlyShapes = []struct {
	name string
	pod  func(n int) string
}{
	{"containers of null", func(n int) string { return optedIn("", "", `,"containers":[`+repeat("null", n)+`]`) }},
	{"containers of 0", func(n int) string { return optedIn("", "", `,"containers":[`+repeat("0", n)+`]`) }},
	{"containers of {}", func(n int) string { return optedIn("", "", `,"containers":[`+repeat("{}", n)+`]`) }},
	{"three container lists of null", func(n int) string {
		nulls := repeat("null", n)
		return optedIn("", "", `,"containers":[`+nulls+`],"initContainers":[`+nulls+`],"ephemeralContainers":[`+nulls+`]`)
	}},
	{`volumes of "x"`, func(n int) string {
		return optedIn("", "", `,"containers":[{"name":"app"}],"volumes":[`+repeat(`"x"`, n)+`]`)
	}},
	{"env of null", func(n int) string {
		return optedIn("", "", `,"containers":[{"name":"app","env":[`+repeat("null", n)+`]}]`)
	}},
	{"env of numbers", func(n int) string {
		return optedIn("", "", `,"containers":[{"name":"app","env":[`+repeat("%d", n)+`]}]`)
	}},
	{"env in many containers", func(n int) string {
		return optedIn("", "", `,"containers":[`+repeat(`{"env":[null,null,null,null,null,null,null,null]}`, n)+`]`)
	}},
	{"annotations", func(n int) string { return optedIn(","+repeat(`"k%d":""`, n), "", `,"containers":[{"name":"app"}]`) }},
	{"labels", func(n int) string { return optedIn("", ","+repeat(`"k%d":""`, n), `,"containers":[{"name":"app"}]`) }},
	{"empty pointers", func(n int) string {
		return optedIn("", "", `,"containers":[`+repeat(`{"securityContext":{},"livenessProbe":{"exec":{}},"readinessProbe":{"grpc":{}},`+
			`"startupProbe":{"httpGet":{}},"lifecycle":{"postStart":{"sleep":{}},"preStop":{"tcpSocket":{}}},"resources":{"limits":{"cpu":0}}}`, n)+`]`)
	}},
	{"volume sources", func(n int) string {
		return optedIn("", "", `,"containers":[{"name":"app"}],"volumes":[`+repeat(`{"csi":{},"iscsi":{},"rbd":{},"projected":{"sources":[{},{},{}]}}`, n)+`]`)
	}},
}

// largestAdmitted is the largest n up to 1<<16 for which build(n) is within
// the review bounds, or 0.
func largestAdmitted(build func(n int) []byte) int {
	lo, hi := 0, 1<<16
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if body := build(mid); len(body) <= maxReviewSize && checkReviewBounds(body) == nil {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

// padTo pads body with trailing spaces to n bytes.
func padTo(body []byte, n int) []byte {
	if len(body) >= n {
		return body
	}
	return append(body, bytes.Repeat([]byte(" "), n-len(body))...)
}

// allocated is the bytes allocated by f, the least of three runs. Only the
// test's goroutine allocates meanwhile.
func allocated(f func()) uint64 {
	least := uint64(1<<63 - 1)
	for range 3 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}

// The stated cost of a review at the caps: the Endpoint, reading the body,
// decoding it, handling and answering it, allocates at most
// reviewCostPerByte times the body's size plus reviewCostFloor. The floor is
// what the review envelope and elementBytesFloor of elements (with their
// slices' growth) cost whatever the body's size.
const (
	reviewCostPerByte = 32
	reviewCostFloor   = 1 << 20
)

// TestReviewAtCapsCost: each of the costliest shapes, made as large as the
// bounds admit, compact and padded to the body cap (where the element budget
// is at its largest and the counts bind), costs at most reviewCostPerByte
// times its size plus reviewCostFloor through the Endpoint. Before the
// bounds, a 3.5 MiB review of nulls in containers allocated 1.7 GiB.
func TestReviewAtCapsCost(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates tens of MiB per shape")
	}
	wh := newWebhook(t, testConfig, nil)
	for _, shape := range costlyShapes {
		for _, padded := range []bool{false, true} {
			name := shape.name
			if padded {
				name += ", padded"
			}
			t.Run(name, func(t *testing.T) {
				build := func(n int) []byte {
					body := reviewBody(shape.pod(n))
					if padded {
						body = padTo(body, maxReviewSize)
					}
					return body
				}
				n := largestAdmitted(build)
				if n == 0 {
					t.Fatal("not even one repetition is admitted")
				}
				body := build(n)
				if over := build(n + 1); len(over) <= maxReviewSize {
					if code := reviewCode(t, post(wh, "application/json", over)); code != http.StatusRequestEntityTooLarge {
						t.Errorf("one repetition over the caps: code %d, want 413", code)
					}
				}
				var code int32
				cost := allocated(func() { code = reviewCode(t, post(wh, "application/json", body)) })
				if code == http.StatusRequestEntityTooLarge {
					t.Fatalf("the review at the caps was refused with 413")
				}
				limit := uint64(reviewCostPerByte*len(body) + reviewCostFloor)
				t.Logf("%6d repetitions, %8d bytes: code %d, %9d bytes allocated (%.1f x the body; bound %d)",
					n, len(body), code, cost, float64(cost)/float64(len(body)), limit)
				if cost > limit {
					t.Errorf("%d bytes allocated for a body of %d; want at most %d x its size + %d = %d",
						cost, len(body), reviewCostPerByte, reviewCostFloor, limit)
				}
			})
		}
	}
}

// reviewCode is the code of an Endpoint's answer: the review's status code,
// or 200 for an answer without one.
func reviewCode(t testing.TB, rec interface{ Result() *http.Response }) int32 {
	t.Helper()
	resp := rec.Result()
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Response == nil {
		t.Fatalf("HTTP %d, not an AdmissionReview (%v)", resp.StatusCode, err)
	}
	if r := out.Response.Result; r != nil && r.Code != 0 {
		return r.Code
	}
	return http.StatusOK
}

// TestReviewBounds: a review past any bound is refused with 413, naming it,
// before it is decoded; a review at each bound is read; bytes inside strings
// count for nothing.
func TestReviewBounds(t *testing.T) {
	app := `,"containers":[{"name":"app"}]`
	// An unknown member of spec, nested n deep below the review's 4 levels.
	nested := func(n int) string { return `,"future":` + strings.Repeat(`{"x":`, n) + "1" + strings.Repeat("}", n) }
	// Annotations that bring the review's values to n.
	annotations := func(n int) string {
		base := countValues(t, reviewBody(optedIn("", "", app)))
		return "," + repeat(`"k%d":""`, n-base)
	}
	for _, tt := range []struct {
		name     string
		body     []byte
		want413  string // the words of the message; "" for a review that is read
		wantCode int32
	}{
		{"values over the cap", reviewBody(optedIn(annotations(maxReviewValues+1), "", app)), "more than 32768 JSON values", 0},
		{"values at the cap", reviewBody(optedIn(annotations(maxReviewValues), "", app)), "", http.StatusOK},
		{"an array over the cap", reviewBody(optedIn("", "", `,"containers":[{"name":"app","env":[`+repeat("null", maxArrayLength+1)+`]}]`)),
			"an array of more than 2048 elements", 0},
		{"an array at the cap", reviewBody(optedIn("", "", `,"containers":[{"name":"app","env":[`+repeat(`{"name":"V%d"}`, maxArrayLength)+`]}]`)),
			"", http.StatusOK},
		{"an unknown array over the cap", reviewBody(optedIn("", "", app+`,"future":[`+repeat("0", maxArrayLength+1)+`]`)),
			"an array of more than 2048 elements", 0},
		{"nested too deep", reviewBody(optedIn("", "", app+nested(maxReviewDepth-3))), "nested more than 64 deep", 0},
		{"nested at the cap", reviewBody(optedIn("", "", app+nested(maxReviewDepth-4))), "", http.StatusOK},
		{"containers of null", reviewBody(optedIn("", "", `,"containers":[`+repeat("null", 1000)+`]`)), "values that would decode to more than", 0},
		{"an escaped name", reviewBody(optedIn("", "", `,"\u0063ontainers":[`+repeat("null", 1000)+`]`)), "values that would decode to more than", 0},
		{"the same, padded", padTo(reviewBody(optedIn("", "", `,"containers":[`+repeat("null", 1000)+`]`)), maxReviewSize),
			"", http.StatusForbidden}, // denied: more than MaxContainers
		{"brackets and commas in strings", reviewBody(optedIn(`,"note":"\"`+strings.Repeat(`[{,`, 200000)+`\\"`, "", app)), "", http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := post(newWebhook(t, testConfig, nil), "application/json", tt.body)
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
				t.Fatalf("not an AdmissionReview (%v): %.300s", err, rec.Body.Bytes())
			}
			r := out.Response
			code := int32(http.StatusOK)
			if r.Result != nil && r.Result.Code != 0 {
				code = r.Result.Code
			}
			if tt.want413 != "" {
				if code != http.StatusRequestEntityTooLarge || !strings.Contains(r.Result.Message, tt.want413) {
					t.Fatalf("result %+v, want 413 naming %q", r.Result, tt.want413)
				}
				return
			}
			if code != tt.wantCode {
				t.Fatalf("result %+v, want code %d", r.Result, tt.wantCode)
			}
		})
	}
}

// TestCheckReviewBoundsAllocatesNothing: the bounds cost one pass over the
// body and no allocation, so that they add nothing to the common path but
// the pass.
func TestCheckReviewBoundsAllocatesNothing(t *testing.T) {
	raw, err := json.Marshal(benchPod())
	if err != nil {
		t.Fatal(err)
	}
	body := review(t, raw, admissionv1.Create, "shop", false)
	if err := checkReviewBounds(body); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = checkReviewBounds(body) }); n != 0 {
		t.Errorf("checkReviewBounds allocates %v times per review, want 0", n)
	}
}

// TestAllocFor: arrays and objects are weighed by the Go type they decode
// into, found by the name of the field that holds them, unescaped as the
// decoder unescapes it.
func TestAllocFor(t *testing.T) {
	container := allocSize{element: 408} // corev1.Container
	for key, want := range map[string]allocSize{
		"containers":          container,
		"ephemeralContainers": {element: 424},
		"volumes":             {element: 256},
		"env":                 {element: 40},
		"args":                {element: 16}, // a string
		"groups":              {element: 16}, // userInfo.groups
		// The largest of corev1.PodSecurityContext and SecurityContext.
		"securityContext":            {pointee: int(reflect.TypeFor[corev1.PodSecurityContext]().Size())},
		"unknown":                    {element: 16}, // the values of userInfo.extra
		`\u0063ontainers`:            container,
		`\u0063ont\u0061iners`:       container,
		`\u0063ONT\u0041INERS`:       {element: 16},
		`\u0043ontainers`:            {element: 16}, // case-sensitive, as the decoder
		`\u006G`:                     {element: 16},
		`\u0063ontainers\n`:          {element: 16},
		`k:{\"name\":\"app\"}`:       {element: 16},
		`\u00e9`:                     {element: 16},
		`\u006`:                      {element: 16},
		`\`:                          {element: 16},
		strings.Repeat(`\u0061`, 70): {element: 16},
	} {
		if got := allocFor([]byte(key)); got != want {
			t.Errorf("allocFor(%s) = %+v, want %+v", key, got, want)
		}
	}
	for name := range allocSizes {
		if len(name) >= maxFieldName {
			t.Errorf("the field name %q is not shorter than maxFieldName (%d)", name, maxFieldName)
		}
	}
}

// TestReviewBoundsAdmitLargePods: the largest real pods are far inside the
// bounds. A pod of 256 containers, one with 1,500 env vars, each with the
// fields the API server defaults and a managedFields entry as it writes one,
// is injected, and holds under half the values the bounds allow.
func TestReviewBoundsAdmitLargePods(t *testing.T) {
	pod := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "large", Namespace: "shop",
			Annotations: map[string]string{AnnotationInject: "true", SecretPrefix + "db": "prod/db"}},
		Spec: corev1.PodSpec{SecurityContext: &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000)}},
	}
	var fields strings.Builder
	fields.WriteString(`{"f:metadata":{"f:annotations":{".":{},"f:secretfetch.io/inject":{},"f:secretfetch.io/secret-db":{}}},"f:spec":{"f:containers":{`)
	for i := range 256 {
		c := corev1.Container{Name: fmt.Sprintf("c%d", i), Image: "registry.example/app:1.0",
			TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: corev1.TerminationMessageReadFile,
			ImagePullPolicy: corev1.PullIfNotPresent,
			VolumeMounts:    []corev1.VolumeMount{{Name: "kube-api-access", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}}}
		if i > 0 {
			fields.WriteByte(',')
		}
		fmt.Fprintf(&fields, `"k:{\"name\":\"%s\"}":{".":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:resources":{},`+
			`"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}`, c.Name)
		if i == 0 {
			fields.WriteString(`,"f:env":{".":{}`)
			for j := range 1500 {
				c.Env = append(c.Env, corev1.EnvVar{Name: fmt.Sprintf("SETTING_%04d", j), Value: "on"})
				fmt.Fprintf(&fields, `,"k:{\"name\":\"SETTING_%04d\"}":{".":{},"f:name":{},"f:value":{}}`, j)
			}
			fields.WriteString("}")
		}
		fields.WriteString("}")
		pod.Spec.Containers = append(pod.Spec.Containers, c)
	}
	fields.WriteString("}}}")
	pod.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate,
		APIVersion: "v1", FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(fields.String())}}}
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	body := review(t, raw, admissionv1.Create, "shop", false)

	values := countValues(t, body)
	t.Logf("%d bytes, %d values", len(body), values)
	if values > maxReviewValues/2 {
		t.Errorf("the pod holds %d values; want under half the cap (%d)", values, maxReviewValues/2)
	}
	resp := serve(t, newWebhook(t, testConfig, nil), body)
	if !resp.Allowed || len(resp.Patch) == 0 {
		t.Fatalf("allowed=%v, result %+v; want the large pod injected", resp.Allowed, resp.Result)
	}
}

// countValues counts the array elements and object members of a JSON
// document, as the review bounds do, by decoding it whole.
func countValues(t testing.TB, b []byte) int {
	t.Helper()
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var count func(v any) int
	count = func(v any) int {
		n := 0
		switch v := v.(type) {
		case []any:
			for _, e := range v {
				n += 1 + count(e)
			}
		case map[string]any:
			for _, e := range v {
				n += 1 + count(e)
			}
		}
		return n
	}
	return count(doc)
}

// BenchmarkReviewAtCaps is the CPU and memory of the costliest shapes at the
// caps, through the Endpoint, compact and padded to the body cap:
//
//	go test -run '^$' -bench BenchmarkReviewAtCaps -benchmem ./internal/mutate/
func BenchmarkReviewAtCaps(b *testing.B) {
	wh := newWebhook(b, testConfig, nil)
	for _, shape := range costlyShapes {
		for _, padded := range []bool{false, true} {
			build := func(n int) []byte {
				body := reviewBody(shape.pod(n))
				if padded {
					body = padTo(body, maxReviewSize)
				}
				return body
			}
			body := build(largestAdmitted(build))
			name := shape.name
			if padded {
				name += ", padded"
			}
			b.Run(name, func(b *testing.B) {
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				for b.Loop() {
					post(wh, "application/json", body)
				}
			})
		}
	}
}
