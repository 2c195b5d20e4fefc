package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	"github.com/secretfetch/secretfetch/internal/mutate"
)

const reviewPath = "../testdata/admissionreview.json"

func TestLoopbackURL(t *testing.T) {
	tests := []struct {
		url string
		ok  bool
	}{
		{"https://127.0.0.1:9443/mutate-v1-pod", true},
		{"https://127.0.0.53:9443/x", true},
		{"https://[::1]:9443/mutate-v1-pod", true},
		{"https://localhost:9443/mutate-v1-pod", true},
		{"http://127.0.0.1:9443/mutate-v1-pod", false},
		{"https://10.0.0.1:9443/mutate-v1-pod", false},
		{"https://0.0.0.0:9443/mutate-v1-pod", false},
		{"https://example.com/mutate-v1-pod", false},
		{"https://localhost.example.com/", false},
		{"https://127.0.0.1.nip.io/", false},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			_, err := loopbackURL(tt.url)
			if (err == nil) != tt.ok {
				t.Errorf("loopbackURL(%q) error = %v, want ok %v", tt.url, err, tt.ok)
			}
		})
	}
}

// TestReviewFixture checks that the shipped AdmissionReview is what the
// benchmark claims: a CREATE of a pod with 3 containers, 10 secrets and IRSA.
func TestReviewFixture(t *testing.T) {
	raw, err := os.ReadFile(reviewPath)
	if err != nil {
		t.Fatal(err)
	}
	var review admissionv1.AdmissionReview
	if err := yaml.UnmarshalStrict(raw, &review); err != nil {
		t.Fatalf("decoding %s: %v", reviewPath, err)
	}
	if review.Request == nil || review.Request.Operation != admissionv1.Create || review.Request.Kind.Kind != "Pod" {
		t.Fatalf("want a Pod CREATE request, got %+v", review.Request)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(review.Request.Object.Raw, &pod); err != nil {
		t.Fatalf("decoding the pod: %v", err)
	}
	if len(pod.Spec.Containers) != 3 {
		t.Errorf("containers = %d, want 3", len(pod.Spec.Containers))
	}
	secrets := 0
	for k := range pod.Annotations {
		if strings.HasPrefix(k, "secretfetch.io/secret-") {
			secrets++
		}
	}
	if secrets != 10 || pod.Annotations["secretfetch.io/inject"] != "true" {
		t.Errorf("secrets = %d, inject = %q; want 10 and true", secrets, pod.Annotations["secretfetch.io/inject"])
	}
	for _, c := range pod.Spec.Containers {
		env := map[string]bool{}
		for _, e := range c.Env {
			env[e.Name] = true
		}
		if !env["AWS_ROLE_ARN"] || !env["AWS_WEB_IDENTITY_TOKEN_FILE"] {
			t.Errorf("container %s lacks the IRSA env", c.Name)
		}
	}
}

// TestReviewFixtureIsInjected runs the fixture through the webhook's handler
// in process: the load must measure injections, not denials.
func TestReviewFixtureIsInjected(t *testing.T) {
	raw, err := os.ReadFile(reviewPath)
	if err != nil {
		t.Fatal(err)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(raw, &review); err != nil {
		t.Fatal(err)
	}
	h, err := mutate.NewHandler(mutate.Config{InitImage: "secretfetch.local/init-fetch:dev", DefaultRegion: "us-east-1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp := h.Handle(context.Background(), admission.Request{AdmissionRequest: *review.Request})
	if !resp.Allowed {
		msg := ""
		if resp.Result != nil {
			msg = resp.Result.Message
		}
		t.Fatalf("the fixture is denied: %s", msg)
	}
	// The handler writes its JSON patch itself (resp.Patch); Patches is
	// what controller-runtime's own diff would fill.
	if len(resp.Patch) == 0 && len(resp.Patches) == 0 {
		t.Error("the fixture is allowed without a patch; want an injection")
	}
}

func TestPrepareReview(t *testing.T) {
	body, at, err := prepareReview(reviewPath)
	if err != nil {
		t.Fatal(err)
	}
	uid := formatUID(body[at:at+len(uidPlaceholder)], 7, 42)
	if uid != "00000007-0000-4000-8000-00000000002a" {
		t.Errorf("formatUID = %q", uid)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		t.Fatalf("the prepared body no longer decodes: %v", err)
	}
	if string(review.Request.UID) != uid {
		t.Errorf("request.uid = %q, want %q", review.Request.UID, uid)
	}
}

// TestLoad runs short loads against a TLS test server on loopback that
// answers like a webhook, with some bad answers mixed in, and checks that
// every bad answer is counted as an error and every good one is not.
func TestLoad(t *testing.T) {
	tests := []struct {
		name string
		rate float64
	}{
		{"closed loop", 0},
		{"open loop", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				mu          sync.Mutex
				conns       = map[string]bool{}
				served, bad atomic.Int64
			)
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				conns[r.RemoteAddr] = true
				mu.Unlock()
				var review admissionv1.AdmissionReview
				if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
					http.Error(w, "bad review", http.StatusBadRequest)
					return
				}
				n := served.Add(1)
				resp := &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
				switch n % 10 {
				case 3:
					bad.Add(1)
					http.Error(w, "internal", http.StatusInternalServerError)
					return
				case 6:
					bad.Add(1)
					resp.Allowed = false
				case 9:
					bad.Add(1)
					resp.UID = "someone-else"
				default:
					pt := admissionv1.PatchTypeJSONPatch
					resp.PatchType, resp.Patch = &pt, []byte(`[{"op":"add","path":"/metadata/labels/x","value":"y"}]`)
				}
				review.Response, review.Request = resp, nil
				w.Header().Set("Content-Type", "application/json")
				json.NewEncoder(w).Encode(review)
			}))
			srv.StartTLS()
			defer srv.Close()

			ca := filepath.Join(t.TempDir(), "ca.crt")
			if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
				t.Fatal(err)
			}
			c := config{
				url: srv.URL + "/mutate-v1-pod", caFile: ca, reviewFile: reviewPath,
				connections: 4, duration: 500 * time.Millisecond, warmup: 0, rate: tt.rate,
				serverPID: os.Getpid(), // the test server runs in this process
			}
			s, err := load(context.Background(), c)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			// No warm-up, so every answered request is counted.
			if int64(s.requests) != served.Load() || s.requests == 0 {
				t.Errorf("requests = %d, server answered %d", s.requests, served.Load())
			}
			if int64(s.errors) != bad.Load() {
				t.Errorf("errors = %d (%v), server sent %d bad answers", s.errors, s.errorKinds, bad.Load())
			}
			if s.patched != s.requests-s.errors {
				t.Errorf("patched = %d, want %d", s.patched, s.requests-s.errors)
			}
			if len(s.latencies) != s.requests {
				t.Errorf("%d latencies for %d requests", len(s.latencies), s.requests)
			}
			if len(conns) > c.connections {
				t.Errorf("used %d connections, want at most %d", len(conns), c.connections)
			}
			if s.selfCPU <= 0 || s.serverCPU <= 0 {
				t.Errorf("CPU over the window: generator %v, server %v; want both measured", s.selfCPU, s.serverCPU)
			}
			if p50, p99 := percentile(s.latencies, 0.5), percentile(s.latencies, 0.99); p50 <= 0 || p99 < p50 {
				t.Errorf("p50 %v p99 %v: not ordered", p50, p99)
			}
		})
	}
}

func TestProcCPU(t *testing.T) {
	// This process has run, so its CPU time is positive, and it matches
	// getrusage's figure within the tick granularity of /proc.
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
	}
	d, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	self := sampleCPU(0).self
	if d <= 0 || d > self+time.Second/clockTicks {
		t.Errorf("procCPU = %v, getrusage = %v", d, self)
	}
	if _, err := procCPU(1 << 30); err == nil {
		t.Error("procCPU of a PID that cannot exist succeeded")
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50}, {0.99, 99}, {1, 100}, {0, 1}} {
		if got := percentile(d, tt.q); got != tt.want {
			t.Errorf("percentile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile of nothing = %v", got)
	}
}
