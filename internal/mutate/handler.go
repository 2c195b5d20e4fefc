package mutate

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"
)

// Path is where the webhook serves pod admission requests.
const Path = "/mutate-v1-pod"

// Handler is the admission handler for pods: decode the pod, mutate it, and
// answer with the JSON patch of what the mutation wrote (built as it is
// compared, not diffed from the whole pod; see buildPatch). It is safe for
// concurrent use.
type Handler struct {
	// cfg is replaced whole by SetConfig (the webhook reads the cluster's
	// version again from time to time); each request reads it once.
	cfg     atomic.Pointer[Config]
	metrics *Metrics
}

var _ admission.Handler = (*Handler)(nil)

// NewHandler returns a handler for cfg. m may be nil (nothing is counted).
func NewHandler(cfg Config, m *Metrics) (*Handler, error) {
	h := &Handler{metrics: m}
	if err := h.SetConfig(cfg); err != nil {
		return nil, err
	}
	return h, nil
}

// Config returns the settings that a request starting now is handled with.
func (h *Handler) Config() Config { return *h.cfg.Load() }

// SetConfig replaces the settings for the requests that start from now on,
// once they pass Validate; on an error the current ones stay.
func (h *Handler) SetConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("checking the webhook settings: %w", err)
	}
	h.cfg.Store(&cfg)
	return nil
}

// requestPod returns the request's pod: the one Endpoint decoded with the
// review (req.Object.Object), or else one decoded from req.Object.Raw, as
// controller-runtime's own Webhook.ServeHTTP hands it over. Endpoint never
// sets Raw, so a pod is decoded once either way.
func requestPod(req admission.Request) (*corev1.Pod, error) {
	if pod, ok := req.Object.Object.(*corev1.Pod); ok && pod != nil {
		return pod, nil
	}
	return decodePod(req.Object.Raw)
}

// decodePod decodes a pod the way the API server's own JSON decoder does:
// field names match case-sensitively (so "Annotations" cannot pass for
// "annotations") and numbers keep their integer types. The Handle checks
// already ensure the object is a core/v1 pod, so the universal decoder's
// extra pass over the JSON to find apiVersion and kind would buy nothing on
// this hot path.
func decodePod(raw []byte) (*corev1.Pod, error) {
	pod := &corev1.Pod{}
	if len(raw) == 0 {
		return nil, errors.New("the request carries no object")
	}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, pod); err != nil {
		return nil, err
	}
	return pod, nil
}

// Handle decides one admission request. A user's mistake is a denial that
// names every bad annotation; an internal fault is an error (HTTP 500). A
// dry-run request is handled exactly like any other: the webhook has no side
// effects, and its counters count dry runs too.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	log := decisionLog{Logger: logf.FromContext(ctx), kv: make([]any, 0, 16)}
	log.with("uid", req.UID, "namespace", req.Namespace)
	if req.Operation != admissionv1.Create {
		return h.skip(log, ReasonNotCreate)
	}
	if req.Resource.Group != "" || req.Resource.Resource != "pods" || req.SubResource != "" {
		return h.skip(log, ReasonNotPod)
	}
	pod, err := requestPod(req)
	if err != nil {
		return h.fail(log, http.StatusBadRequest, ReasonDecode, fmt.Errorf("decoding the pod: %w", err))
	}
	arrivedNamespace := pod.Namespace
	// Pods made by controllers arrive without a namespace.
	if pod.Namespace == "" {
		pod.Namespace = req.Namespace
	}
	// The API server validates names only after mutating admission: bound
	// them in the log (253 bytes is the longest valid name).
	log.with("name", truncate(pod.Name, 253), "generateName", truncate(pod.GenerateName, 253))

	requested, ferr := Requested(pod)
	if ferr != nil {
		return h.deny(log, pod, field.ErrorList{ferr})
	}
	if !requested {
		if _, ok := pod.Annotations[AnnotationInject]; ok {
			return h.skip(log, ReasonOptedOut)
		}
		return h.skip(log, ReasonNotRequested)
	}
	_, injectedBefore := pod.Annotations[AnnotationStatus]

	// Once the API server has given up on the request, nobody reads the
	// answer: stop between the steps rather than finish the work.
	if err := ctx.Err(); err != nil {
		return h.fail(log, http.StatusServiceUnavailable, ReasonCanceled, fmt.Errorf("before parsing the pod: %w", err))
	}
	cfg := h.cfg.Load()
	inj, errs := Parse(pod, cfg.DefaultRegion, append(cfg.parseOptions(), WithDefaultFailoverRegion(cfg.DefaultFailoverRegion))...)
	if len(errs) > 0 {
		return h.deny(log, pod, errs)
	}
	if err := ctx.Err(); err != nil {
		return h.fail(log, http.StatusServiceUnavailable, ReasonCanceled, fmt.Errorf("before mutating the pod: %w", err))
	}
	snap, err := takeSnapshot(pod, arrivedNamespace)
	if err != nil {
		return h.fail(log, http.StatusInternalServerError, ReasonInternal, err)
	}
	if err := Apply(pod, inj, *cfg); err != nil {
		return h.fail(log, http.StatusInternalServerError, ReasonInternal, fmt.Errorf("mutating the pod: %w", err))
	}
	patch, ops, err := snap.buildPatch(pod)
	if err != nil {
		return h.fail(log, http.StatusInternalServerError, ReasonInternal, err)
	}
	// The patch is encoded already: Response.Complete, which encodes
	// Patches, leaves Patch as it is when Patches is empty.
	resp := admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: true}}
	if ops > 0 {
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType = patch, &pt
	}

	reason := ReasonNew
	switch {
	case !injectedBefore:
	case ops > 0:
		reason = ReasonRefreshed
	default:
		reason = ReasonUnchanged
	}
	h.metrics.count(ResultInjected, reason)
	log.info("admission decision", "decision", ResultInjected, "reason", reason,
		"secrets", len(inj.Plan.Secrets), "readers", inj.Readers, "patchOps", ops)
	return resp
}

func (h *Handler) skip(log decisionLog, reason string) admission.Response {
	h.metrics.count(ResultSkipped, reason)
	if log.V(1).Enabled() {
		log.V(1).Info("admission decision", log.values("decision", ResultSkipped, "reason", reason)...)
	}
	return admission.Allowed("")
}

// deny refuses the pod with one message that names its problems, and the
// same problems as structured causes: the first maxCauses of them, each
// bounded (see denialMessage), so that neither the answer nor the logged
// line grows with what a pod sends.
func (h *Handler) deny(log decisionLog, pod *corev1.Pod, errs field.ErrorList) admission.Response {
	reason := ReasonPodSpec
	if slices.ContainsFunc(errs, func(e *field.Error) bool { return strings.HasPrefix(e.Field, annotationsPath.String()) }) {
		reason = ReasonAnnotations
	}
	h.metrics.count(ResultDenied, reason)
	msg, shown := denialMessage(errs)
	log.info("admission decision", "decision", ResultDenied, "reason", reason, "problems", len(errs), "message", msg)

	resp := admission.Denied(msg)
	details := &metav1.StatusDetails{Kind: "Pod", Name: truncate(pod.Name, maxCauseBytes)}
	for _, e := range shown {
		details.Causes = append(details.Causes, metav1.StatusCause{
			Type: metav1.CauseType(e.Type), Message: truncate(e.ErrorBody(), maxCauseBytes), Field: truncate(e.Field, maxCauseBytes),
		})
	}
	resp.Result.Details = details
	return resp
}

func (h *Handler) fail(log decisionLog, code int32, reason string, err error) admission.Response {
	h.metrics.count(ResultError, reason)
	log.Error(err, "admission decision", log.values("decision", ResultError, "reason", reason)...)
	return admission.Errored(code, err)
}

// decisionLog is the request's logger and the values that its one decision
// line carries about the request. They are passed with that line rather than
// bound with WithValues as they are learnt: each WithValues makes the
// logger encode them into a handler of its own (zap did, and log/slog's
// JSON handler does), which cost more than the line.
type decisionLog struct {
	logr.Logger
	kv []any
}

func (d *decisionLog) with(kv ...any) { d.kv = append(d.kv, kv...) }

// values returns the request's values followed by kv.
func (d decisionLog) values(kv ...any) []any { return append(d.kv[:len(d.kv):len(d.kv)], kv...) }

func (d decisionLog) info(msg string, kv ...any) { d.Logger.Info(msg, d.values(kv...)...) }
