package mutate

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"testing"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// benchPod is a realistic pod as the API server sends it: three containers,
// ten secrets (with a JSON key, a pattern, a mode or a version stage on some),
// IRSA settings from the EKS webhook, the service account token mount, and
// the API server's defaults.
func benchPod() *corev1.Pod {
	ann := map[string]string{AnnotationInject: "true", AnnotationRegion: "eu-west-1"}
	for i := range 10 {
		name := fmt.Sprintf("secret-%d", i)
		ann[SecretPrefix+name] = fmt.Sprintf("prod/service/%s", name)
		if i%3 == 0 {
			ann[KeyPrefix+name] = "password"
		}
	}
	ann[PatternPrefix+"secret-0"] = "[A-Za-z0-9!@#%^*_+=-]{16,128}"
	ann[ModePrefix+"secret-1"] = "0440"
	ann[VersionStagePrefix+"secret-2"] = "AWSPREVIOUS"
	irsaEnv := []corev1.EnvVar{
		{Name: "AWS_STS_REGIONAL_ENDPOINTS", Value: "regional"},
		{Name: "AWS_DEFAULT_REGION", Value: "eu-west-1"},
		{Name: "AWS_REGION", Value: "eu-west-1"},
		{Name: "AWS_ROLE_ARN", Value: "arn:aws:iam::111122223333:role/orders"},
		{Name: "AWS_WEB_IDENTITY_TOKEN_FILE", Value: "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"},
	}
	container := func(name string) corev1.Container {
		return corev1.Container{
			Name: name, Image: "registry.example/" + name + ":1.0",
			Env:   append([]corev1.EnvVar{{Name: "LOG_LEVEL", Value: "info"}}, irsaEnv...),
			Ports: []corev1.ContainerPort{{ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
			VolumeMounts: []corev1.VolumeMount{
				{Name: "kube-api-access-x7k2p", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true},
				{Name: "aws-iam-token", MountPath: "/var/run/secrets/eks.amazonaws.com/serviceaccount", ReadOnly: true},
			},
			TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: corev1.TerminationMessageReadFile,
			ImagePullPolicy: corev1.PullIfNotPresent,
			SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false)},
		}
	}
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{GenerateName: "orders-7d9f8c6b5-", Namespace: "shop", Annotations: ann,
			Labels: map[string]string{"app": "orders", "pod-template-hash": "7d9f8c6b5"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "orders-7d9f8c6b5",
				UID: "3f2c1d7e-0b4a-4e8f-9c6d-5a1b2c3d4e5f", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}},
		Spec: corev1.PodSpec{
			ServiceAccountName: "orders", RestartPolicy: corev1.RestartPolicyAlways, DNSPolicy: corev1.DNSClusterFirst,
			SchedulerName: "default-scheduler", TerminationGracePeriodSeconds: ptr.To[int64](30),
			SecurityContext: &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000), RunAsGroup: ptr.To[int64](1000)},
			Containers:      []corev1.Container{container("orders"), container("worker"), container("exporter")},
			Volumes: []corev1.Volume{
				{Name: "aws-iam-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
					Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
						Audience: "sts.amazonaws.com", ExpirationSeconds: ptr.To[int64](86400), Path: "token"}}}}}},
				{Name: "kube-api-access-x7k2p", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
					Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
						ExpirationSeconds: ptr.To[int64](3607), Path: "token"}}}}}},
			},
		},
	}
}

// BenchmarkHandler is the whole webhook for one pod: AdmissionReview bytes
// in, through the Endpoint the server runs (decode, handle, patch, encode),
// response bytes out. No TLS or network.
//
//	go test -run '^$' -bench BenchmarkHandler -benchmem ./internal/mutate/
func BenchmarkHandler(b *testing.B) {
	raw, err := json.Marshal(benchPod())
	if err != nil {
		b.Fatal(err)
	}
	body := review(b, raw, admissionv1.Create, "shop", false)
	benchReviews(b, newWebhook(b, testConfig, nil), body)
}

// benchReviews checks once that body is injected through wh, then posts it
// for each iteration.
func benchReviews(b *testing.B, wh http.Handler, body []byte) {
	b.Helper()
	if resp := serve(b, wh, body); !resp.Allowed || len(resp.Patch) == 0 {
		b.Fatalf("allowed=%v patch=%d bytes; want an injection", resp.Allowed, len(resp.Patch))
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if rec := post(wh, "application/json", body); rec.Code != http.StatusOK {
			b.Fatalf("HTTP %d", rec.Code)
		}
	}
}

// BenchmarkHandlerReview is BenchmarkHandler for the review that
// hack/webhook-load sends (hack/testdata/admissionreview.json: 3
// containers, 10 secrets, IRSA), from which hack/vault-bench derives
// vault-k8s's: the in-process side of hack/bench-vault.sh.
func BenchmarkHandlerReview(b *testing.B) {
	body := loadReview(b)
	h, err := NewHandler(Config{InitImage: "secretfetch.local/init-fetch:dev", DefaultRegion: "us-east-1"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	// As internal/webhook builds it: the handler logs each decision with
	// the request's identity, so the request's logger is the base one.
	wh := &Endpoint{Webhook: &admission.Webhook{Handler: h,
		LogConstructor: func(base logr.Logger, _ *admission.Request) logr.Logger { return base }}, Log: logr.Discard()}
	benchReviews(b, wh, body)
}

// BenchmarkGuards is what the request guards cost a normal review, on
// their own: the bounds read on the raw body before it is decoded
// (checkReviewBounds), and a token of Endpoint.Work taken and given back.
// Compare with BenchmarkHandlerReview, the whole review.
func BenchmarkGuards(b *testing.B) {
	body := loadReview(b)
	work := make(chan struct{}, 2)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		work <- struct{}{}
		if err := checkReviewBounds(body); err != nil {
			b.Fatal(err)
		}
		<-work
	}
}

// loadReview reads hack/testdata/admissionreview.json compact, with its
// keys in order, as webhook-load sends it and as hack/vault-bench derives
// vault-k8s's review.
func loadReview(b *testing.B) []byte {
	raw, err := os.ReadFile("../../hack/testdata/admissionreview.json")
	if err != nil {
		b.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		b.Fatal(err)
	}
	body, err := json.Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	return body
}
