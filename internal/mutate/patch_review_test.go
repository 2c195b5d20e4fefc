package mutate

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// TestEncodeReview: encodeReview writes every answer byte for byte as
// encoding/json encodes its AdmissionReview, the directly written ones
// (allowed, with or without a patch) included.
func TestEncodeReview(t *testing.T) {
	pt := admissionv1.PatchTypeJSONPatch
	complete := func(r admission.Response, uid string) admissionv1.AdmissionResponse {
		if err := r.Complete(admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{UID: types.UID(uid)}}); err != nil {
			t.Fatal(err)
		}
		return r.AdmissionResponse
	}
	patched := admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: true,
		Patch: []byte(`[{"op":"add","path":"/a","value":"<&>"}]`), PatchType: &pt}}
	for name, resp := range map[string]admissionv1.AdmissionResponse{
		"allowed":              complete(admission.Allowed(""), "7d3c0f2e-5a47-4b1e-9b1a-3e2f1c0d9a8b"),
		"allowed with a patch": complete(patched, "7d3c0f2e-5a47-4b1e-9b1a-3e2f1c0d9a8b"),
		"patch of odd length":  complete(admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: true, Patch: []byte("[1]"), PatchType: &pt}}, "u"),
		"uid to escape":        complete(patched, "a\"b<\\\u00e9\n"),
		"empty uid":            complete(patched, ""),
		"allowed with message": complete(admission.Allowed("why"), "u"),
		"warnings":             complete(admission.Allowed("").WithWarnings("w"), "u"),
		"denied":               complete(admission.Denied("no"), "u"),
		"errored":              complete(admission.Errored(http.StatusBadRequest, errors.New("bad")), "u"),
		"not completed":        {Allowed: true, UID: "u"},
	} {
		t.Run(name, func(t *testing.T) {
			review := admissionv1.AdmissionReview{Response: &resp}
			review.SetGroupVersionKind(reviewKind)
			var want bytes.Buffer
			if err := json.NewEncoder(&want).Encode(&review); err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := encodeReview(&got, &resp); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Errorf("encodeReview:\n got %s\nwant %s", got.Bytes(), want.Bytes())
			}
		})
	}
}
