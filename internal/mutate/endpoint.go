package mutate

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// maxReviewSize bounds a request body at what the API server can send. It
// refuses a request body over 3 MiB (apiserver's MaxRequestBodyBytes), and the
// webhook is called on CREATE only, so a review carries one object (no
// oldObject); the rest of the review (UID, kinds, userInfo, options) is a few
// KiB. The extra half MiB leaves room for the object's JSON growing when the
// API server re-encodes it (a client may send protobuf or YAML). etcd would
// refuse an object over 1.5 MiB anyway, but only after admission. A bigger
// body is a client other than the API server, or an object that cannot be
// stored: it is refused with 413 before it is read.
const maxReviewSize = 7 << 19 // 3.5 MiB

// reviewKind is the only kind of review the webhook reads: its
// MutatingWebhookConfiguration lists admissionReviewVersions ["v1"].
var reviewKind = admissionv1.SchemeGroupVersion.WithKind("AdmissionReview")

// Endpoint serves AdmissionReviews over HTTP at Path. Each request it reads
// goes through Webhook.Handle, controller-runtime's wrapper around the
// Handler: panic recovery, the request's logger, and the completed response
// (UID, status, encoded patch).
//
// Endpoint reads the review itself rather than through Webhook.ServeHTTP,
// whose universal decoder guesses between v1 and v1beta1 by scanning the
// whole body once more for apiVersion and kind, and leaves the object as
// bytes to decode again. Endpoint reads v1 only, with the same
// case-sensitive decoder, and decodes the pod in the same pass (see
// podReview). Reading a review went from six passes over the pod's bytes to
// three: the bounds (checkReviewBounds), the check that the body is JSON,
// then the decoding.
type Endpoint struct {
	Webhook *admission.Webhook
	// Log receives requests that could not be read; decisions are logged
	// by the Handler.
	Log logr.Logger
	// Work, when not nil, bounds the reviews decoded and handled at once:
	// a review takes a token once its body is read, and gives it back when
	// its answer is written. Decoding and handling use the CPU only, so
	// more of them at once than there are CPUs adds no throughput, only the
	// memory of each decoded pod (up to about 16 MiB allocated for the
	// costliest review that checkReviewBounds admits).
	Work chan struct{}
}

var _ http.Handler = (*Endpoint)(nil)

func (e *Endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	buf := getBuffer()
	defer putBuffer(buf)
	body, code, err := readBody(r, buf)
	if err == nil && e.Work != nil {
		select {
		case e.Work <- struct{}{}:
			defer func() { <-e.Work }()
		case <-r.Context().Done():
			code, err = http.StatusServiceUnavailable, fmt.Errorf("waiting to decode the review: %w", r.Context().Err())
		}
	}
	var req admission.Request
	if err == nil {
		req, code, err = decodeReview(body)
	}
	if err != nil {
		e.Log.Error(err, "unreadable admission request", "code", code)
		if code == http.StatusRequestEntityTooLarge || code == http.StatusRequestTimeout {
			// The rest of the body is not worth reading: close the
			// connection rather than drain it at the client's pace.
			w.Header().Set("Connection", "close")
		}
		writeReview(w, e.Log, admission.Errored(code, err), buf)
		return
	}
	resp := e.Webhook.Handle(r.Context(), req)
	// The body is decoded: its buffer takes the answer.
	writeReview(w, e.Log, resp, buf)
}

// Request bodies and answers are read and written into buffers reused
// across requests. Nothing decoded from a body points into it (the
// decoder copies strings and bytes), so a body's buffer is free for the
// answer once the review is decoded.
var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuffer keeps the buffers of unusually large reviews out of the
// pool: a few crafted 3.5 MiB reviews would otherwise hold their memory for
// good.
const maxPooledBuffer = 256 << 10

func getBuffer() *bytes.Buffer {
	b := buffers.Get().(*bytes.Buffer)
	b.Reset()
	return b
}

func putBuffer(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBuffer {
		buffers.Put(b)
	}
}

// readBody reads a request's JSON body into buf, up to maxReviewSize. On
// failure it returns the HTTP status that says why.
func readBody(r *http.Request, buf *bytes.Buffer) ([]byte, int32, error) {
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		return nil, http.StatusBadRequest, fmt.Errorf("content type %q is not application/json", ct)
	}
	if r.Body == nil {
		return nil, http.StatusBadRequest, errors.New("the request has no body")
	}
	if r.ContentLength > maxReviewSize {
		return nil, http.StatusRequestEntityTooLarge,
			fmt.Errorf("the request body is %d bytes, larger than %d bytes", r.ContentLength, maxReviewSize)
	}
	if r.ContentLength > 0 {
		// One allocation of the right size, +1 for ReadFrom to see EOF
		// without growing the buffer.
		buf.Grow(int(r.ContentLength) + 1)
	}
	_, err := buf.ReadFrom(io.LimitReader(r.Body, maxReviewSize+1))
	body := buf.Bytes()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The server's read deadline (see internal/webhook) cut off a
		// client that sent its body too slowly.
		return nil, http.StatusRequestTimeout, fmt.Errorf("reading the request body: too slow: %w", err)
	}
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("reading the request body: %w", err)
	}
	if len(body) > maxReviewSize {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("the request body is larger than %d bytes", maxReviewSize)
	}
	return body, 0, nil
}

// decodeReview decodes a review read by readBody, once and with its pod, if
// it is within the bounds of checkReviewBounds. On failure it returns the
// HTTP status that says why.
//
// A review whose pod does not decode (a type error anywhere in it) is
// refused here, without a second pass: the API server sends the encoding of
// a typed pod, which always decodes, so such a body comes from another
// client. The decoder goes on past a type error and fills in the rest, so
// decoding again, as a review with the object left as bytes, would double
// the cost of the body that costs the most.
func decodeReview(body []byte) (admission.Request, int32, error) {
	if err := checkReviewBounds(body); err != nil {
		return admission.Request{}, http.StatusRequestEntityTooLarge, err
	}
	var review podReview
	if err := decodeJSON(body, &review); err != nil {
		return admission.Request{}, http.StatusBadRequest, fmt.Errorf("decoding the AdmissionReview: %w", err)
	}
	if err := checkReview(review.TypeMeta, review.Request != nil); err != nil {
		return admission.Request{}, http.StatusBadRequest, err
	}
	req := admission.Request{AdmissionRequest: review.Request.AdmissionRequest}
	if review.Request.Object != nil {
		req.Object.Object = review.Request.Object
	}
	return req, 0, nil
}

// podReview is an AdmissionReview whose object is decoded as a pod in the
// same pass as the review: the only objects the webhook is sent are pods,
// and a pod decoded on its own would be scanned twice more (once to skip
// over it, once to check it before decoding).
type podReview struct {
	metav1.TypeMeta `json:",inline"`
	Request         *struct {
		admissionv1.AdmissionRequest
		// Object replaces AdmissionRequest.Object: a field of the outer
		// struct wins over one of the embedded struct.
		Object *corev1.Pod `json:"object"`
	} `json:"request"`
}

func checkReview(tm metav1.TypeMeta, hasRequest bool) error {
	if gvk := tm.GroupVersionKind(); gvk != reviewKind {
		return fmt.Errorf("got apiVersion %q kind %q; this webhook reads %s %s",
			tm.APIVersion, tm.Kind, reviewKind.GroupVersion(), reviewKind.Kind)
	}
	if !hasRequest {
		return errors.New("the AdmissionReview has no request")
	}
	return nil
}

// writeReview answers with an admission.k8s.io/v1 AdmissionReview, encoded
// into buf and written in one piece, with its length.
func writeReview(w http.ResponseWriter, log logr.Logger, resp admission.Response, buf *bytes.Buffer) {
	buf.Reset()
	if err := encodeReview(buf, &resp.AdmissionResponse); err != nil {
		log.Error(err, "encoding the admission response", "uid", resp.UID)
		http.Error(w, "encoding the admission response", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	if _, err := w.Write(buf.Bytes()); err != nil {
		// The connection is gone; there is no one left to tell.
		log.Error(err, "writing the admission response", "uid", resp.UID)
	}
}

// encodeReview writes the AdmissionReview of resp as encoding/json does
// (TestEncodeReview checks it byte for byte). An answer that allows the pod,
// with or without a patch, is written directly: the patch, its largest part,
// goes into buf as base64 without a copy of its own. Any other answer is
// encoded by encoding/json.
func encodeReview(buf *bytes.Buffer, resp *admissionv1.AdmissionResponse) error {
	if !resp.Allowed || resp.Result == nil || *resp.Result != (metav1.Status{Code: http.StatusOK}) ||
		len(resp.AuditAnnotations) > 0 || len(resp.Warnings) > 0 || !plainJSON(string(resp.UID)) ||
		(resp.PatchType != nil && *resp.PatchType != admissionv1.PatchTypeJSONPatch) {
		review := admissionv1.AdmissionReview{Response: resp}
		review.SetGroupVersionKind(reviewKind)
		return json.NewEncoder(buf).Encode(&review)
	}
	buf.WriteString(`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","response":{"uid":"`)
	buf.WriteString(string(resp.UID))
	buf.WriteString(`","allowed":true,"status":{"metadata":{},"code":200}`)
	if len(resp.Patch) > 0 {
		buf.WriteString(`,"patch":"`)
		n := base64.StdEncoding.EncodedLen(len(resp.Patch))
		buf.Grow(n)
		b := buf.AvailableBuffer()[:n]
		base64.StdEncoding.Encode(b, resp.Patch)
		buf.Write(b)
		buf.WriteByte('"')
	}
	if resp.PatchType != nil {
		buf.WriteString(`,"patchType":"JSONPatch"`)
	}
	buf.WriteString("}}\n")
	return nil
}
