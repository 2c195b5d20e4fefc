package mutate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestEndpointRefuses: a request that is not a readable v1 AdmissionReview
// gets an AdmissionReview whose status says what is wrong, and never reaches
// the handler's counters.
func TestEndpointRefuses(t *testing.T) {
	raw := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"app"}]}}`)
	v1 := string(review(t, raw, admissionv1.Create, "shop", false))
	for _, tt := range []struct {
		name, contentType, body string
		wantCode                int32
		wantMessage             string
	}{
		{"content type", "text/plain", v1, 400, `content type "text/plain" is not application/json`},
		{"not JSON", "application/json", `{"apiVersion":`, 400, "decoding the AdmissionReview"},
		{"v1beta1", "application/json", strings.Replace(v1, `"admission.k8s.io/v1"`, `"admission.k8s.io/v1beta1"`, 1), 400,
			`got apiVersion "admission.k8s.io/v1beta1" kind "AdmissionReview"; this webhook reads admission.k8s.io/v1 AdmissionReview`},
		{"another kind", "application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}`, 400, `kind "Pod"`},
		{"no request", "application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, 400, "the AdmissionReview has no request"},
		{"too large", "application/json", `{"x":"` + strings.Repeat("a", maxReviewSize) + `"}`, 413, "larger than"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newMetrics(t)
			rec := post(newWebhook(t, testConfig, m), tt.contentType, []byte(tt.body))

			if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("HTTP %d %q, want 200 application/json (the status is in the review)", rec.Code, rec.Header().Get("Content-Type"))
			}
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatalf("decoding the answer: %v", err)
			}
			if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || out.Response == nil {
				t.Fatalf("answer %s, want an admission.k8s.io/v1 AdmissionReview with a response", rec.Body.Bytes())
			}
			r := out.Response
			if r.Allowed || r.Result == nil || r.Result.Code != tt.wantCode || !strings.Contains(r.Result.Message, tt.wantMessage) {
				t.Errorf("response %+v, want refused with code %d and a message containing %q", r.Result, tt.wantCode, tt.wantMessage)
			}
			if n := totalCount(t, reg); n != 0 {
				t.Errorf("the handler counted %v pods, want none", n)
			}
		})
	}
}

// TestDecodeReview: a pod's review is read with the pod decoded in the same
// pass; a review without an object is read without one (the handler refuses
// it); anything that does not decode, the pod included, is refused.
func TestDecodeReview(t *testing.T) {
	raw := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","annotations":{"a":"b"}},"spec":{"containers":[{"name":"app"}]}}`)
	req, code, err := decodeReview(review(t, raw, admissionv1.Create, "shop", false))
	if err != nil {
		t.Fatalf("a pod's review: %d %v", code, err)
	}
	pod, isPod := req.Object.Object.(*corev1.Pod)
	if !isPod || pod.Name != "p" || pod.Annotations["a"] != "b" || len(pod.Spec.Containers) != 1 || req.Namespace != "shop" || req.UID == "" {
		t.Errorf("read %+v with object %+v; want the request and its pod", req.AdmissionRequest, req.Object.Object)
	}
	if len(req.Object.Raw) != 0 {
		t.Errorf("the request carries the pod's %d bytes too; the handler would decode them again", len(req.Object.Raw))
	}

	req, _, err = decodeReview([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u"}}`))
	if err != nil || req.UID != "u" || req.Object.Object != nil || req.Object.Raw != nil {
		t.Errorf("a review without an object: %+v, %v; want the request without an object", req.AdmissionRequest, err)
	}

	for _, tt := range []struct{ name, body, want string }{
		{"not a pod", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","object":{"spec":{"containers":"x"}}}}`,
			"decoding the AdmissionReview: json: cannot unmarshal string into Go struct field"},
		{"scalars for containers", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","object":{"spec":{"containers":[0,1]}}}}`,
			"decoding the AdmissionReview: json: cannot unmarshal number into Go struct field"},
		{"a bad UID", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":5,"object":{}}}`,
			"decoding the AdmissionReview: json: cannot unmarshal number into Go struct field"},
		{"v1beta1", `{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u","object":{}}}`, "this webhook reads"},
		{"no request", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, "the AdmissionReview has no request"},
		{"not JSON", `{"apiVersion":`, "decoding the AdmissionReview"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, code, err := decodeReview([]byte(tt.body))
			if code != http.StatusBadRequest || err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("decodeReview = %d %v, want 400 and an error containing %q", code, err, tt.want)
			}
		})
	}
}

// TestEndpointDecodesOnce: a pod that fails to decode on a type error costs
// what the same pod costs when it decodes (it is not opted in, so the handler
// does little with it), not twice or three times as much: the decoder goes on
// past a type error, and the review was decoded again with its object as
// bytes, which the handler then decoded once more.
func TestEndpointDecodesOnce(t *testing.T) {
	pod := func(last string) []byte {
		return reviewBody(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[` +
			repeat(`{"name":"c%d","image":"registry.example/app:1.0","env":[{"name":"A","value":"1"}]}`, 200) + "," + last + `]}}`)
	}
	wh := newWebhook(t, testConfig, nil)
	for _, tt := range []struct {
		name string
		body []byte
		code int32
	}{
		{"decodes", pod("{}"), http.StatusOK},
		{"a type error", pod("0"), http.StatusBadRequest},
	} {
		if code := reviewCode(t, post(wh, "application/json", tt.body)); code != tt.code {
			t.Fatalf("%s: code %d, want %d", tt.name, code, tt.code)
		}
	}
	valid := allocated(func() { post(wh, "application/json", pod("{}")) })
	typeError := allocated(func() { post(wh, "application/json", pod("0")) })
	t.Logf("allocated: %d bytes for the pod that decodes, %d for the one with a type error", valid, typeError)
	if typeError > valid*5/4 {
		t.Errorf("a pod with a type error costs %d bytes, the same pod without it %d; want at most 1.25 times as much", typeError, valid)
	}
}

// TestEndpointBodyCap: a body is capped at 3.5 MiB, what the API server can
// send; a body of exactly the cap is read, one byte more is refused with
// 413, and a declared length over the cap is refused before any byte is read.
func TestEndpointBodyCap(t *testing.T) {
	const want = 3<<20 + 512<<10
	if maxReviewSize != want {
		t.Fatalf("maxReviewSize = %d, want %d (3.5 MiB)", maxReviewSize, want)
	}
	raw := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","annotations":{"secretfetch.io/inject":"true","secretfetch.io/secret-db":"prod/db"}},` +
		`"spec":{"securityContext":{"runAsUser":1000},"containers":[{"name":"app"}]}}`)
	v1 := review(t, raw, admissionv1.Create, "shop", false)
	padded := func(n int) []byte { return append(bytes.Clone(v1), bytes.Repeat([]byte(" "), n-len(v1))...) }

	for _, tt := range []struct {
		name     string
		req      *http.Request
		wantCode int32
	}{
		{"exactly the cap", httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(padded(maxReviewSize))), http.StatusOK},
		{"one byte over, length unknown", unknownLength(padded(maxReviewSize + 1)), http.StatusRequestEntityTooLarge},
		{"declared over the cap", declared(maxReviewSize + 1), http.StatusRequestEntityTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newMetrics(t)
			tt.req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			newWebhook(t, testConfig, m).ServeHTTP(rec, tt.req)
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
				t.Fatalf("not an AdmissionReview (%v): %.300s", err, rec.Body.Bytes())
			}
			r := out.Response
			code := int32(http.StatusOK)
			if r.Result != nil && r.Result.Code != 0 {
				code = r.Result.Code
			}
			if code != tt.wantCode {
				t.Fatalf("result %+v, want code %d", r.Result, tt.wantCode)
			}
			if tt.wantCode == http.StatusOK && !r.Allowed {
				t.Errorf("a review of exactly the cap was not allowed: %+v", r.Result)
			}
			if tt.wantCode == http.StatusRequestEntityTooLarge && rec.Header().Get("Connection") != "close" {
				t.Errorf("Connection = %q, want close: the rest of the body is not worth reading", rec.Header().Get("Connection"))
			}
		})
	}
}

// unknownLength is a request whose body has no declared length, as a
// chunked one.
func unknownLength(body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, Path, io.MultiReader(bytes.NewReader(body)))
	r.ContentLength = -1
	return r
}

// declared is a request that declares n bytes and fails the test's read if
// the Endpoint reads any.
func declared(n int64) *http.Request {
	r := httptest.NewRequest(http.MethodPost, Path, failingReader{})
	r.ContentLength = n
	return r
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) {
	return 0, errors.New("the body of a request declared over the cap was read")
}

// TestEndpointWork: with every Work token taken, a review waits, its body
// read but not decoded, until a token is free, and gives up with 503 if its
// request ends first.
func TestEndpointWork(t *testing.T) {
	pod := basePod()
	pod.Annotations[SecretPrefix+"db"] = "prod/db"
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	body := review(t, raw, admissionv1.Create, pod.Namespace, false)
	wh := newWebhook(t, testConfig, nil)
	wh.Work = make(chan struct{}, 1)
	wh.Work <- struct{}{} // another review holds the only token

	t.Run("request ends while waiting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, Path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		wh.ServeHTTP(rec, req)
		var out admissionv1.AdmissionReview
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatal(err)
		}
		if out.Response == nil || out.Response.Allowed || out.Response.Result.Code != http.StatusServiceUnavailable {
			t.Fatalf("response %+v, want a 503 error", out.Response)
		}
	})
	t.Run("served once a token is free", func(t *testing.T) {
		done := make(chan *httptest.ResponseRecorder)
		go func() { done <- post(wh, "application/json", body) }()
		select {
		case <-done:
			t.Fatal("a review was handled while every token was taken")
		case <-time.After(50 * time.Millisecond):
		}
		<-wh.Work
		rec := <-done
		var out admissionv1.AdmissionReview
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatal(err)
		}
		if resp := out.Response; resp == nil || !resp.Allowed || len(resp.Patch) == 0 {
			t.Errorf("response %+v, want an injection", resp)
		}
		if len(wh.Work) != 0 {
			t.Errorf("%d tokens still taken after the review, want 0", len(wh.Work))
		}
	})
}
