// Command irsawebhook is a test double for amazon-eks-pod-identity-webhook,
// used only by the e2e suite. For a pod annotated
// e2e.secretfetch.io/irsa-role: ROLE_ARN it adds IRSA settings (the role, the
// token file, the region and a projected token for sts.amazonaws.com) to the
// app containers only. Its configuration is named so that the API server
// calls it after secretfetch, which shows that secretfetch's reinvocation
// brings the init container up to date.
//
// With e2e.secretfetch.io/irsa-init-containers: "true" it also gives them to
// the init containers, as amazon-eks-pod-identity-webhook does: that is how
// secretfetch-init gets the pod's identity in the policy mode, where the
// MutatingAdmissionPolicy runs before every mutating webhook.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

const (
	roleAnnotation = "e2e.secretfetch.io/irsa-role"
	initAnnotation = "e2e.secretfetch.io/irsa-init-containers"
	tokenDir       = "/var/run/secrets/eks.amazonaws.com/serviceaccount"
)

func main() {
	certDir := flag.String("cert-dir", "/etc/irsawebhook/tls", "directory with tls.crt and tls.key")
	port := flag.Int("port", 9443, "HTTPS port")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, *certDir, *port); err != nil {
		fmt.Fprintln(os.Stderr, "irsawebhook:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, certDir string, port int) error {
	srv := webhook.NewServer(webhook.Options{CertDir: certDir, Port: port})
	srv.Register("/mutate", &webhook.Admission{Handler: admission.HandlerFunc(handle)})
	return srv.Start(ctx)
}

func handle(_ context.Context, req admission.Request) admission.Response {
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	role := pod.Annotations[roleAnnotation]
	if role == "" {
		return admission.Allowed("no role requested")
	}
	if !hasVolume(pod.Spec, "aws-iam-token") {
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: "aws-iam-token", VolumeSource: corev1.VolumeSource{
			Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{
				ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
					Audience: "sts.amazonaws.com", ExpirationSeconds: ptr.To[int64](86400), Path: "token",
				}}}},
		}})
	}
	containers := make([]*corev1.Container, 0, len(pod.Spec.Containers)+len(pod.Spec.InitContainers))
	for i := range pod.Spec.Containers {
		containers = append(containers, &pod.Spec.Containers[i])
	}
	if pod.Annotations[initAnnotation] == "true" {
		for i := range pod.Spec.InitContainers {
			containers = append(containers, &pod.Spec.InitContainers[i])
		}
	}
	for _, c := range containers {
		if hasEnv(*c, "AWS_ROLE_ARN") {
			continue
		}
		c.Env = append(c.Env,
			corev1.EnvVar{Name: "AWS_ROLE_ARN", Value: role},
			corev1.EnvVar{Name: "AWS_WEB_IDENTITY_TOKEN_FILE", Value: tokenDir + "/token"},
			corev1.EnvVar{Name: "AWS_REGION", Value: "us-east-1"},
		)
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "aws-iam-token", MountPath: tokenDir, ReadOnly: true})
	}
	out, err := json.Marshal(&pod)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	return admission.PatchResponseFromRaw(req.Object.Raw, out)
}

func hasVolume(spec corev1.PodSpec, name string) bool {
	for _, v := range spec.Volumes {
		if v.Name == name {
			return true
		}
	}
	return false
}

func hasEnv(c corev1.Container, name string) bool {
	for _, e := range c.Env {
		if e.Name == name {
			return true
		}
	}
	return false
}
