//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	"github.com/secretfetch/secretfetch/internal/smfake"
)

var metav1GetOptions = metav1.GetOptions{}

const (
	mountPath = "/var/run/secrets/app"
	appUID    = 1000
	appGID    = 1000
	// tokenDir is where EKS mounts the IRSA token; the suite mounts a
	// projected token for sts.amazonaws.com there, as EKS would.
	tokenDir  = "/var/run/secrets/eks.amazonaws.com/serviceaccount"
	tokenFile = tokenDir + "/token"
)

// canary returns a unique, recognisable value that the suite later searches
// for everywhere a secret must not be.
func canary(t testing.TB, what string) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "sfcanary-" + what + "-" + hex.EncodeToString(b)
}

// newNamespace makes a namespace that enforces the restricted Pod Security
// Standard, so every injected init container is checked against it, and
// deletes it when the test ends.
func newNamespace(t testing.TB, prefix string) string {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: "e2e-" + prefix + "-",
		Labels:       map[string]string{"pod-security.kubernetes.io/enforce": "restricted"},
	}}
	created, err := env.cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	requireNoErr(t, err, "creating a namespace")
	t.Cleanup(func() {
		if t.Failed() {
			dumpNamespace(created.Name)
		}
		_ = env.cs.CoreV1().Namespaces().Delete(context.Background(), created.Name, metav1.DeleteOptions{})
	})
	// The default ServiceAccount appears asynchronously.
	requireNoErr(t, retry(ctx, 30*time.Second, func() error {
		_, err := env.cs.CoreV1().ServiceAccounts(created.Name).Get(ctx, "default", metav1.GetOptions{})
		return err
	}), "waiting for the default ServiceAccount")
	return created.Name
}

// dumpNamespace prints what a failed test left behind, to stderr.
func dumpNamespace(ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, _ := kubectl(ctx, nil, "-n", ns, "get", "pods,replicasets,events", "-o", "wide")
	fmt.Fprintf(os.Stderr, "--- namespace %s ---\n%s\n", ns, out)
}

// podSpec is a pod that passes the restricted standard: non-root UID 1000,
// no privilege escalation, no capabilities, RuntimeDefault seccomp.
// With irsa, it carries the settings the EKS pod identity webhook would add.
func podSpec(irsa bool, roleARN string) corev1.PodSpec {
	app := corev1.Container{
		Name:  "app",
		Image: appImage,
		// The app only lists its files in the log, without values: the
		// suite reads values through exec, so logs stay free of canaries.
		Args:            []string{"--dir", mountPath},
		ImagePullPolicy: corev1.PullIfNotPresent,
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false),
			ReadOnlyRootFilesystem:   ptr.To(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
		Resources: corev1.ResourceRequirements{},
	}
	spec := corev1.PodSpec{
		TerminationGracePeriodSeconds: ptr.To[int64](1),
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   ptr.To(true),
			RunAsUser:      ptr.To[int64](appUID),
			RunAsGroup:     ptr.To[int64](appGID),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Containers: []corev1.Container{app},
	}
	if irsa {
		addIRSA(&spec, roleARN)
	}
	return spec
}

// addIRSA adds what amazon-eks-pod-identity-webhook adds for IRSA to the app
// containers: the role, the token path, the region and a projected token.
func addIRSA(spec *corev1.PodSpec, roleARN string) {
	spec.Volumes = append(spec.Volumes, corev1.Volume{
		Name: "aws-iam-token",
		VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: "sts.amazonaws.com", ExpirationSeconds: ptr.To[int64](86400), Path: "token",
			}}},
		}},
	})
	for i := range spec.Containers {
		c := &spec.Containers[i]
		c.Env = append(c.Env,
			corev1.EnvVar{Name: "AWS_ROLE_ARN", Value: roleARN},
			corev1.EnvVar{Name: "AWS_WEB_IDENTITY_TOKEN_FILE", Value: tokenFile},
			corev1.EnvVar{Name: "AWS_REGION", Value: e2eRegion},
			corev1.EnvVar{Name: "AWS_DEFAULT_REGION", Value: e2eRegion},
			corev1.EnvVar{Name: "AWS_STS_REGIONAL_ENDPOINTS", Value: "regional"},
		)
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "aws-iam-token", MountPath: tokenDir, ReadOnly: true})
	}
}

// annotations builds the opt-in annotations for secrets given as
// name -> secret ID, plus any extra keys.
func annotations(secrets map[string]string, extra map[string]string) map[string]string {
	a := map[string]string{"secretfetch.io/inject": "true"}
	for name, id := range secrets {
		a["secretfetch.io/secret-"+name] = id
	}
	for k, v := range extra {
		a[k] = v
	}
	return a
}

func deployment(name string, replicas int32, ann map[string]string, spec corev1.PodSpec) *appsv1.Deployment {
	sel := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel, Annotations: ann},
				Spec:       spec,
			},
		},
	}
}

// rollOut creates d and waits until its rollout completes.
func rollOut(t testing.TB, ns string, d *appsv1.Deployment) {
	t.Helper()
	ctx := context.Background()
	_, err := env.cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
	requireNoErr(t, err, "creating deployment "+d.Name)
	_, err = kubectl(ctx, nil, "-n", ns, "rollout", "status", "deployment/"+d.Name, "--timeout=120s")
	requireNoErr(t, err, "rolling out "+d.Name)
}

// runningPods lists the Running pods of a Deployment's selector.
func runningPods(t testing.TB, ns, app string) []corev1.Pod {
	t.Helper()
	list, err := env.cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(map[string]string{"app": app}).String(),
	})
	requireNoErr(t, err, "listing pods")
	var pods []corev1.Pod
	for _, p := range list.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			pods = append(pods, p)
		}
	}
	return pods
}

// listing is what the demo app reports about the secrets directory
// (`demo-app --once --json`).
type listing struct {
	Dir      string       `json:"dir"`
	Tmpfs    bool         `json:"tmpfs"`
	ReadOnly bool         `json:"readOnly"`
	Files    []listedFile `json:"files"`
}

type listedFile struct {
	Name  string `json:"name"`
	Mode  string `json:"mode"`
	UID   int    `json:"uid"`
	GID   int    `json:"gid"`
	Size  int    `json:"size"`
	Value []byte `json:"value"` // base64 in JSON
	// Error is why the app could not open the file by its path.
	Error string `json:"error"`
}

// readSecrets asks the app container what it sees, through exec, so values
// travel only over the exec stream and never through a log.
func readSecrets(t testing.TB, ns, pod string) listing {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := kubectl(ctx, nil, "-n", ns, "exec", pod, "-c", "app", "--",
		"/demo-app", "--once", "--json", "--dir", mountPath)
	requireNoErr(t, err, "reading the secrets in "+pod)
	var l listing
	requireNoErr(t, json.Unmarshal([]byte(out), &l), "decoding the demo app's listing")
	return l
}

func (l listing) file(name string) (listedFile, bool) {
	for _, f := range l.Files {
		if f.Name == name {
			return f, true
		}
	}
	return listedFile{}, false
}

// putSecret creates a secret in the fake through its admin API, or, when it
// exists, puts a new version that becomes AWSCURRENT (as PutSecretValue
// does).
func putSecret(t testing.TB, name, value string) {
	t.Helper()
	seed(t, smfake.SeedSecret{Name: name, String: &value})
}

// putBinarySecret is putSecret for a SecretBinary value.
func putBinarySecret(t testing.TB, name string, value []byte) {
	t.Helper()
	seed(t, smfake.SeedSecret{Name: name, Binary: value})
}

func seed(t testing.TB, secret smfake.SeedSecret) {
	t.Helper()
	requireNoErr(t, env.fakePost(context.Background(), "/_fake/secrets", secret), "seeding secret "+secret.Name)
}

// injectFault makes the fake fail or delay matching calls.
func injectFault(t testing.TB, f smfake.FaultJSON) {
	t.Helper()
	requireNoErr(t, env.fakePost(context.Background(), "/_fake/faults", f), "injecting a fault")
}

func fakeRequests(t testing.TB) []smfake.RequestJSON {
	t.Helper()
	var reqs []smfake.RequestJSON
	requireNoErr(t, env.fakeGet(context.Background(), "/_fake/requests", &reqs), "reading the fake's request log")
	return reqs
}

func assumedRoles(t testing.TB) []smfake.RoleJSON {
	t.Helper()
	var roles []smfake.RoleJSON
	requireNoErr(t, env.fakeGet(context.Background(), "/_fake/roles", &roles), "reading the fake's assumed roles")
	return roles
}

// etcdDump returns every key and value in etcd, through etcdctl
// (E2E_ETCDCTL: the command and its connection flags).
func etcdDump(t testing.TB) []byte {
	t.Helper()
	cmdline := strings.Fields(os.Getenv("E2E_ETCDCTL"))
	if len(cmdline) == 0 {
		t.Skip("E2E_ETCDCTL is not set: cannot read etcd directly on this cluster")
	}
	args := append(cmdline[1:], "get", "--prefix", "/")
	out, err := exec.Command(cmdline[0], args...).Output()
	requireNoErr(t, err, "reading etcd")
	return out
}

// waitInitFailed waits until the pod's secretfetch-init container has
// terminated with an error of its own at least once, and returns that
// termination. A removal for RestartAllContainers (restart on change), which
// the kubelet records as exit 137, is not one.
func waitInitFailed(t testing.TB, ns, pod string) *corev1.ContainerStateTerminated {
	t.Helper()
	ctx := context.Background()
	var term *corev1.ContainerStateTerminated
	err := retry(ctx, 90*time.Second, func() error {
		p, err := env.cs.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, s := range p.Status.InitContainerStatuses {
			if s.Name != "secretfetch-init" {
				continue
			}
			for _, st := range []corev1.ContainerState{s.State, s.LastTerminationState} {
				if st.Terminated != nil && st.Terminated.ExitCode != 0 && st.Terminated.Reason != "RestartingAllContainers" {
					term = st.Terminated
					return nil
				}
			}
		}
		return fmt.Errorf("pod %s: secretfetch-init has not failed yet (phase %s)", pod, p.Status.Phase)
	})
	requireNoErr(t, err, "waiting for the init container to fail")
	return term
}
