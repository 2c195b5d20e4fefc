package mutate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"
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
	body, code, err := readBody(r)
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
		writeReview(w, e.Log, admission.Errored(code, err))
		return
	}
	writeReview(w, e.Log, e.Webhook.Handle(r.Context(), req))
}

// readBody reads a request's JSON body, up to maxReviewSize. On failure it
// returns the HTTP status that says why.
func readBody(r *http.Request) ([]byte, int32, error) {
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
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReviewSize+1))
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
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(body, &review); err != nil {
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

// writeReview answers with an admission.k8s.io/v1 AdmissionReview.
func writeReview(w http.ResponseWriter, log logr.Logger, resp admission.Response) {
	review := admissionv1.AdmissionReview{Response: &resp.AdmissionResponse}
	review.SetGroupVersionKind(reviewKind)
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(&review); err != nil {
		// The connection is gone; there is no one left to tell.
		log.Error(err, "writing the admission response", "uid", resp.UID)
	}
}
