//go:build envtest

// The ValidatingAdmissionPolicies of manifests/base, enforced by a real API
// server: envtest starts kube-apiserver and etcd from KUBEBUILDER_ASSETS (the
// locally built binaries; hack/envtest.sh finds them) on loopback ports, and
// stops them at the end. Run with `make envtest`.
package manifests_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/yaml"
)

const (
	initImage = "ghcr.io/secretfetch/init-fetch:v0.1.0"
	// prodDB is a partial ARN: the ARN of prod/db without AWS's suffix.
	prodDB = "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db"
)

// policyEnv is an API server holding the base's policies, their bindings and
// ConfigMaps (policyParams among them).
type policyEnv struct {
	cs kubernetes.Interface
}

func startPolicyEnv(t *testing.T) *policyEnv {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set; run make envtest")
	}
	kubectl := findKubectl(t)
	root, _ := setup(t)
	objs := render(t, kubectl, filepath.Join(root, "base"))

	cs := startAPIServer(t)
	ctx := t.Context()
	e := &policyEnv{cs: cs}

	var ns corev1.Namespace
	get(t, objs, "Namespace", "", systemNS, &ns)
	must(t, create(ctx, cs.CoreV1().Namespaces().Create, &ns))
	createPolicies(t, cs, objs)
	// No type-checking status to wait for: kube-controller-manager writes
	// it, and envtest runs none. The API server compiled every expression
	// when it stored the policies, and the cases below run them all.
	return e
}

// startAPIServer starts kube-apiserver and etcd from KUBEBUILDER_ASSETS on
// loopback ports, and stops them when the test ends.
func startAPIServer(t *testing.T) kubernetes.Interface {
	t.Helper()
	logf.SetLogger(logr.Discard()) // envtest logs through controller-runtime
	te := &envtest.Environment{}
	cfg, err := te.Start()
	if err != nil {
		t.Fatalf("starting envtest: %v", err)
	}
	t.Cleanup(func() {
		if err := te.Stop(); err != nil {
			t.Errorf("stopping envtest: %v", err)
		}
	})
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// createPolicies creates the rendered ConfigMaps and admission policies and
// their bindings, and returns the kinds of the objects it left out.
func createPolicies(t *testing.T, cs kubernetes.Interface, objs []object) (skipped []string) {
	t.Helper()
	ctx, ar := t.Context(), cs.AdmissionregistrationV1()
	for _, o := range objs {
		switch o.Kind {
		case "ConfigMap":
			var cm corev1.ConfigMap
			get(t, objs, o.Kind, o.Namespace, o.Name, &cm)
			must(t, create(ctx, cs.CoreV1().ConfigMaps(cm.Namespace).Create, &cm))
		case "ValidatingAdmissionPolicy":
			var p admissionregistrationv1.ValidatingAdmissionPolicy
			get(t, objs, o.Kind, o.Namespace, o.Name, &p)
			must(t, create(ctx, ar.ValidatingAdmissionPolicies().Create, &p))
		case "ValidatingAdmissionPolicyBinding":
			var b admissionregistrationv1.ValidatingAdmissionPolicyBinding
			get(t, objs, o.Kind, o.Namespace, o.Name, &b)
			must(t, create(ctx, ar.ValidatingAdmissionPolicyBindings().Create, &b))
		case "MutatingAdmissionPolicy":
			var p admissionregistrationv1.MutatingAdmissionPolicy
			get(t, objs, o.Kind, o.Namespace, o.Name, &p)
			must(t, create(ctx, ar.MutatingAdmissionPolicies().Create, &p))
		case "MutatingAdmissionPolicyBinding":
			var b admissionregistrationv1.MutatingAdmissionPolicyBinding
			get(t, objs, o.Kind, o.Namespace, o.Name, &b)
			must(t, create(ctx, ar.MutatingAdmissionPolicyBindings().Create, &b))
		default:
			skipped = append(skipped, o.Kind)
		}
	}
	return skipped
}

func create[T any](ctx context.Context, f func(context.Context, *T, metav1.CreateOptions) (*T, error), obj *T) error {
	_, err := f(ctx, obj, metav1.CreateOptions{})
	return err
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// namespace creates a namespace with the given annotations.
func (e *policyEnv) namespace(t *testing.T, name string, annotations map[string]string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations}}
	must(t, create(t.Context(), e.cs.CoreV1().Namespaces().Create, ns))
}

// setDefault sets ALLOWED_SECRETS_DEFAULT in the policies' ConfigMap.
func (e *policyEnv) setDefault(t *testing.T, value string) {
	t.Helper()
	e.setParam(t, "ALLOWED_SECRETS_DEFAULT", value)
}

func (e *policyEnv) setParam(t *testing.T, key, value string) {
	t.Helper()
	e.setParams(t, map[string]string{key: value})
}

// setParams sets several keys in one update, so that the policies never see
// some of them without the others.
func (e *policyEnv) setParams(t *testing.T, data map[string]string) {
	t.Helper()
	cms := e.cs.CoreV1().ConfigMaps(systemNS)
	cm, err := cms.Get(t.Context(), policyParams, metav1.GetOptions{})
	must(t, err)
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	for k, v := range data {
		cm.Data[k] = v
	}
	_, err = cms.Update(t.Context(), cm, metav1.UpdateOptions{})
	must(t, err)
}

// admit creates the pod as a server-side dry run, so that nothing is kept and
// every case can reuse a name. It returns the admission error, if any.
func (e *policyEnv) admit(ctx context.Context, pod *corev1.Pod) error {
	_, err := e.cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	return err
}

// outcome is what a case expects: admitted (no wants), or denied with a
// message holding every want.
func checkOutcome(err error, wants []string) error {
	if len(wants) == 0 {
		if err != nil {
			return fmt.Errorf("denied, want admitted: %w", err)
		}
		return nil
	}
	if err == nil {
		return errors.New("admitted, want denied")
	}
	if !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) {
		return fmt.Errorf("failed, but not as a policy denial: %w", err)
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			return fmt.Errorf("the denial does not say %q: %w", w, err)
		}
	}
	return nil
}

// eventually retries f until it succeeds: a new binding, policy or parameter
// reaches the API server's admission informers a moment after it is stored.
func eventually(t *testing.T, f func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for {
		err := f()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("still after 60 s: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

type podOpt func(*corev1.Pod)

func pod(ns string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns, Annotations: map[string]string{}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "app", Image: "example.com/app:v1"}},
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func annotate(kv ...string) podOpt {
	return func(p *corev1.Pod) {
		for i := 0; i+1 < len(kv); i += 2 {
			p.Annotations[kv[i]] = kv[i+1]
		}
	}
}

// injected is what the webhook adds, with the given init image.
func injected(image string) podOpt {
	return func(p *corev1.Pod) {
		p.Annotations["secretfetch.io/status"] = "injected"
		p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: "secretfetch-init", Image: image})
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "secretfetch-secrets",
			VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}})
	}
}

// sidecar adds the refresh sidecar with the given image after the init
// container, and the annotation that asks for it, as the webhook does for
// secretfetch.io/refresh-interval.
func sidecar(image string) podOpt {
	return func(p *corev1.Pod) {
		always := corev1.ContainerRestartPolicyAlways
		p.Annotations["secretfetch.io/refresh-interval"] = "5m"
		p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: "secretfetch-refresh", Image: image, RestartPolicy: &always})
	}
}

// withContainer adds an app container.
func withContainer(name, image string) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: name, Image: image})
	}
}

// withInitContainer adds an init container.
func withInitContainer(name, image string) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: name, Image: image})
	}
}

func TestPolicies(t *testing.T) {
	e := startPolicyEnv(t)
	e.namespace(t, "apps", nil)
	e.namespace(t, "team-a", map[string]string{
		"secretfetch.io/allowed-secrets": "team-a/, arn:aws:secretsmanager:us-east-1:111122223333:secret:shared/",
	})
	e.namespace(t, "locked", map[string]string{"secretfetch.io/allowed-secrets": ""})
	e.namespace(t, "exact", map[string]string{
		"secretfetch.io/allowed-secrets": "shared/db, " + prodDB + ", team-a/",
	})
	var wide []string
	for i := range 65 {
		wide = append(wide, fmt.Sprintf("team-%d/", i))
	}
	e.namespace(t, "wide", map[string]string{"secretfetch.io/allowed-secrets": strings.Join(wide, ",")})

	optIn := annotate("secretfetch.io/inject", "true", "secretfetch.io/secret-db", "prod/db")
	// Wait until both bindings are in force: only a denial by each shows it,
	// and a case that wants a pod admitted proves nothing before.
	eventually(t, func() error {
		return checkOutcome(e.admit(t.Context(), pod("apps", optIn)), []string{"secretfetch-injected"})
	})
	eventually(t, func() error {
		return checkOutcome(e.admit(t.Context(), pod("locked", annotate("secretfetch.io/secret-db", "x"))), []string{"secretfetch-allowed-secrets"})
	})
	tests := []struct {
		name  string
		pod   *corev1.Pod
		wants []string // empty: admitted
	}{
		// secretfetch-injected
		{"opted in, the webhook never ran", pod("apps", optIn), []string{
			"secretfetch-injected", `secretfetch.io/inject: "true"`, "secretfetch.io/status: injected",
			"the init container secretfetch-init", "the memory-backed volume secretfetch-secrets",
			"the secretfetch webhook did not run"}},
		{"a look-alike init container", pod("apps", optIn, injected("evil.example.com/init-fetch:v0.1.0")), []string{
			"the init container secretfetch-init with the image " + initImage, "(it has evil.example.com/init-fetch:v0.1.0)",
			"the secretfetch webhook did not run"}},
		{"injected", pod("apps", optIn, injected(initImage)), nil},
		{"a look-alike init container made a sidecar", pod("apps", optIn, injected(initImage), func(p *corev1.Pod) {
			always := corev1.ContainerRestartPolicyAlways
			p.Spec.InitContainers[0].RestartPolicy = &always
		}), []string{"the init container secretfetch-init without restartPolicy (it has restartPolicy Always",
			"the secretfetch webhook did not run"}},
		{"a disk-backed volume", pod("apps", optIn, injected(initImage), func(p *corev1.Pod) {
			p.Spec.Volumes[0].EmptyDir.Medium = ""
		}), []string{"the memory-backed volume secretfetch-secrets"}},
		{"a look-alike refresh sidecar", pod("apps", optIn, injected(initImage), sidecar("evil.example.com/refresh:v1")), []string{
			"the refresh sidecar secretfetch-refresh with the image " + initImage, "(it has evil.example.com/refresh:v1)"}},
		{"injected with refresh", pod("apps", optIn, injected(initImage), sidecar(initImage)), nil},
		{"opted out", pod("apps", annotate("secretfetch.io/inject", "false")), nil},
		{"no annotations at all", pod("apps"), nil},

		// Every value of secretfetch.io/inject but "false" opts in, and any
		// value but "true" is denied, as the webhook denies it.
		{"inject True, the webhook never ran", pod("apps", annotate("secretfetch.io/inject", "True")), []string{
			"secretfetch-injected", `secretfetch.io/inject is "True"`, `allowed: "true" (inject the secrets) and "false"`}},
		{"inject with a leading space", pod("apps", annotate("secretfetch.io/inject", " true")), []string{`secretfetch.io/inject is " true"`}},
		{"inject yes", pod("apps", annotate("secretfetch.io/inject", "yes")), []string{`secretfetch.io/inject is "yes"`}},
		{"inject empty", pod("apps", annotate("secretfetch.io/inject", "")), []string{`secretfetch.io/inject is ""`}},
		{"inject True on a pod that looks injected", pod("apps", annotate("secretfetch.io/inject", "True"), injected(initImage)), []string{
			`secretfetch.io/inject is "True"`}},
		{"a long inject value is cut in the message", pod("apps", annotate("secretfetch.io/inject", strings.Repeat("y", 100))), []string{
			`secretfetch.io/inject is "` + strings.Repeat("y", 64) + `..."`}},

		// The init image runs in the webhook's own containers only.
		{"an app container runs the init image", pod("apps", withContainer("fetch", initImage)), []string{
			"secretfetch-injected", "container fetch (" + initImage + ") runs the secretfetch init image",
			"only the webhook's own init containers secretfetch-init and secretfetch-refresh of an opted-in pod may run it"}},
		{"the init image by digest", pod("apps", withContainer("fetch", "ghcr.io/secretfetch/init-fetch@"+digestA)), []string{
			"container fetch (ghcr.io/secretfetch/init-fetch@" + digestA + ")"}},
		{"the init image in another version", pod("apps", withContainer("fetch", "ghcr.io/secretfetch/init-fetch:v0.0.1")), []string{
			"container fetch (ghcr.io/secretfetch/init-fetch:v0.0.1)"}},
		{"the init image without a tag", pod("apps", withContainer("fetch", "ghcr.io/secretfetch/init-fetch")), []string{
			"container fetch (ghcr.io/secretfetch/init-fetch)"}},
		{"the init image with an upper-case host", pod("apps", withContainer("fetch", "GHCR.IO/secretfetch/init-fetch:v0.1.0")), []string{
			"container fetch (GHCR.IO/secretfetch/init-fetch:v0.1.0)"}},
		{"an init container of a pod that did not opt in", pod("apps", withInitContainer("secretfetch-init", initImage)), []string{
			"init container secretfetch-init (" + initImage + ") runs the secretfetch init image"}},
		{"secretfetch-init in an opted-out pod", pod("apps", annotate("secretfetch.io/inject", "false"), withInitContainer("secretfetch-init", initImage)), []string{
			"init container secretfetch-init (" + initImage + ")"}},
		{"an injected pod with one more init container on the init image", pod("apps", optIn, injected(initImage), withInitContainer("tool", initImage)), []string{
			"init container tool (" + initImage + ")"}},
		{"an injected pod with an app container on the init image", pod("apps", optIn, injected(initImage), withContainer("fetch", initImage)), []string{
			"container fetch (" + initImage + ")"}},
		{"secretfetch-refresh on the init image without refresh", pod("apps", optIn, injected(initImage), func(p *corev1.Pod) {
			sidecar(initImage)(p)
			delete(p.Annotations, "secretfetch.io/refresh-interval")
		}), []string{"init container secretfetch-refresh (" + initImage + ")"}},
		{"a neighbouring repository is another image", pod("apps", withContainer("tool", "ghcr.io/secretfetch/init-fetch-debug:v1")), nil},
		{"a repository that ends like it is another image", pod("apps", withContainer("tool", "example.com/ghcr.io/secretfetch/init-fetch:v0.1.0")), nil},

		// secretfetch-allowed-secrets
		{"a name under an allowed prefix", pod("team-a", annotate("secretfetch.io/secret-db", "team-a/db")), nil},
		{"an ARN under an allowed prefix", pod("team-a",
			annotate("secretfetch.io/secret-db", "arn:aws:secretsmanager:us-east-1:111122223333:secret:shared/db-AbCdEf")), nil},
		{"a name under no allowed prefix", pod("team-a", annotate("secretfetch.io/secret-db", "team-b/db")), []string{
			"secretfetch-allowed-secrets", `secretfetch.io/secret-db="team-b/db"`, "secretfetch.io/allowed-secrets",
			"team-a/,arn:aws:secretsmanager:us-east-1:111122223333:secret:shared/"}},
		{"one bad secret among good ones", pod("team-a", annotate(
			"secretfetch.io/secret-a", "team-a/a", "secretfetch.io/secret-b", "other/b")), []string{`secretfetch.io/secret-b="other/b"`}},
		{"an injected pod in an allowed namespace", pod("team-a", optIn, injected(initImage), annotate("secretfetch.io/secret-db", "team-a/db")), nil},
		{"an empty allow list allows nothing", pod("locked", annotate("secretfetch.io/secret-db", "x")), []string{"secretfetch.io/allowed-secrets"}},
		{"more entries than the policy's bound", pod("wide", annotate("secretfetch.io/secret-db", "team-1/db")), []string{
			"65 entries", "(at most 64)"}},

		// An entry that ends in / is a prefix; any other is one name or ARN,
		// and an ARN entry also admits AWS's random suffix.
		{"an exact name", pod("exact", annotate("secretfetch.io/secret-db", "shared/db")), nil},
		{"a name that an exact entry begins", pod("exact", annotate("secretfetch.io/secret-db", "shared/db-admin")), []string{
			`secretfetch.io/secret-db="shared/db-admin"`, "matches no entry of the namespace annotation secretfetch.io/allowed-secrets",
			`"shared/db,` + prodDB + `,team-a/"`, "an entry that ends in / is a prefix; any other is one exact name or ARN"}},
		{"a path under an exact name", pod("exact", annotate("secretfetch.io/secret-db", "shared/db/x")), []string{`"shared/db/x"`}},
		{"a name entry takes no suffix", pod("exact", annotate("secretfetch.io/secret-db", "shared/db-AbCdEf")), []string{`"shared/db-AbCdEf"`}},
		{"an exact ARN", pod("exact", annotate("secretfetch.io/secret-db", prodDB)), nil},
		{"an exact ARN with its suffix", pod("exact", annotate("secretfetch.io/secret-db", prodDB+"-AbCdEf")), nil},
		{"an ARN with a five-character suffix", pod("exact", annotate("secretfetch.io/secret-db", prodDB+"-AbCdE")), []string{prodDB + `-AbCdE"`}},
		{"an ARN with a seven-character suffix", pod("exact", annotate("secretfetch.io/secret-db", prodDB+"-AbCdEfG")), []string{prodDB + `-AbCdEfG"`}},
		{"an ARN with a suffix that is not alphanumeric", pod("exact", annotate("secretfetch.io/secret-db", prodDB+"-AbC_Ef")), []string{prodDB + `-AbC_Ef"`}},
		{"an ARN with a suffix and more", pod("exact", annotate("secretfetch.io/secret-db", prodDB+"-AbCdEf/x")), []string{prodDB + `-AbCdEf/x"`}},
		{"an ARN that an exact ARN begins", pod("exact", annotate("secretfetch.io/secret-db", prodDB+"2")), []string{prodDB + `2"`}},
		{"an ARN without a hyphen before the suffix", pod("exact", annotate("secretfetch.io/secret-db", prodDB+"xAbCdEf")), []string{prodDB + `xAbCdEf"`}},
		{"a name under a prefix entry", pod("exact", annotate("secretfetch.io/secret-db", "team-a/x/y")), nil},
		{"a name that a prefix entry without its slash begins", pod("exact", annotate("secretfetch.io/secret-db", "team-ab/x")), []string{`"team-ab/x"`}},
		{"an unannotated namespace, default any", pod("apps", annotate("secretfetch.io/secret-db", "anything/at-all")), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The bindings may take a moment to reach the admission plugin.
			eventually(t, func() error { return checkOutcome(e.admit(t.Context(), tt.pod), tt.wants) })
		})
	}

	// The cluster-wide default, flipped to none: an unannotated namespace may
	// name nothing, an annotated one keeps its list.
	t.Run("default none", func(t *testing.T) {
		e.setDefault(t, "none")
		eventually(t, func() error {
			return checkOutcome(e.admit(t.Context(), pod("apps", annotate("secretfetch.io/secret-db", "anything/at-all"))),
				[]string{`secretfetch.io/secret-db="anything/at-all"`, "no secretfetch.io/allowed-secrets annotation", "ALLOWED_SECRETS_DEFAULT is none"})
		})
		eventually(t, func() error {
			return checkOutcome(e.admit(t.Context(), pod("team-a", annotate("secretfetch.io/secret-db", "team-a/db"))), nil)
		})
		eventually(t, func() error { return checkOutcome(e.admit(t.Context(), pod("apps")), nil) })
	})
	t.Run("a default that is neither any nor none", func(t *testing.T) {
		e.setDefault(t, "maybe")
		eventually(t, func() error {
			return checkOutcome(e.admit(t.Context(), pod("apps", annotate("secretfetch.io/secret-db", "x"))),
				[]string{"ALLOWED_SECRETS_DEFAULT", `"maybe"`, "allowed: any, none"})
		})
	})
}

// TestPolicyWithoutParams: the API server looks a binding's parameters up
// before it evaluates matchConditions, so a missing ConfigMap must not deny:
// with parameterNotFoundAction Deny, every pod of the cluster would be
// refused. With Allow, the policies are off until it is back.
func TestPolicyWithoutParams(t *testing.T) {
	e := startPolicyEnv(t)
	e.namespace(t, "apps", nil)
	// Bound, with the parameters in place: the unmutated pod is denied.
	unmutated := pod("apps", annotate("secretfetch.io/inject", "true", "secretfetch.io/secret-db", "prod/db"))
	eventually(t, func() error { return checkOutcome(e.admit(t.Context(), unmutated), []string{"secretfetch-injected"}) })

	must(t, e.cs.CoreV1().ConfigMaps(systemNS).Delete(t.Context(), policyParams, metav1.DeleteOptions{}))
	eventually(t, func() error { return checkOutcome(e.admit(t.Context(), pod("apps")), nil) })
	eventually(t, func() error { return checkOutcome(e.admit(t.Context(), unmutated), nil) })
}

// TestPolicyParamsWithoutKeys: secretfetch-injected sees every pod in the
// cluster, so parameters without a key, or without data, must not make an
// expression fail (failurePolicy Fail would then deny every pod). They admit
// no init image, so an opted-in pod is still denied, with a message.
func TestPolicyParamsWithoutKeys(t *testing.T) {
	e := startPolicyEnv(t)
	e.namespace(t, "apps", nil)
	unmutated := pod("apps", annotate("secretfetch.io/inject", "true", "secretfetch.io/secret-db", "prod/db"))
	eventually(t, func() error { return checkOutcome(e.admit(t.Context(), unmutated), []string{"secretfetch-injected"}) })

	for _, data := range []map[string]string{{"ALLOWED_SECRETS_DEFAULT": "any"}, nil} {
		// From the base's parameters, in force, each time.
		e.setParams(t, map[string]string{"INIT_IMAGE": initImage, "ALLOWED_SECRETS_DEFAULT": "any"})
		eventually(t, func() error {
			return checkOutcome(e.admit(t.Context(), pod("apps", withContainer("fetch", initImage))), []string{"runs the secretfetch init image"})
		})
		cms := e.cs.CoreV1().ConfigMaps(systemNS)
		cm, err := cms.Get(t.Context(), policyParams, metav1.GetOptions{})
		must(t, err)
		cm.Data = data
		_, err = cms.Update(t.Context(), cm, metav1.UpdateOptions{})
		must(t, err)
		t.Run(fmt.Sprintf("%d keys", len(data)), func(t *testing.T) {
			// The pod that names the init image is admitted once the new
			// parameters are in force: no init image is known.
			eventually(t, func() error {
				return checkOutcome(e.admit(t.Context(), pod("apps", withContainer("fetch", initImage))), nil)
			})
			eventually(t, func() error { return checkOutcome(e.admit(t.Context(), pod("apps")), nil) })
			eventually(t, func() error {
				return checkOutcome(e.admit(t.Context(), pod("apps", annotate("secretfetch.io/inject", "false"))), nil)
			})
			eventually(t, func() error {
				// No secret named: secretfetch-allowed-secrets, which wants
				// ALLOWED_SECRETS_DEFAULT, stays out of it.
				return checkOutcome(e.admit(t.Context(), pod("apps", annotate("secretfetch.io/inject", "true"), injected(initImage))),
					[]string{"the init container secretfetch-init with the image  (it has " + initImage + ")"})
			})
		})
	}
}

func optInFull() podOpt {
	return annotate("secretfetch.io/inject", "true", "secretfetch.io/secret-db", "prod/db")
}

// TestPolicyPreviousInitImages: while an upgrade that changes the init image
// rolls out, old webhook replicas still inject the old image. The images in
// PREVIOUS_INIT_IMAGES are admitted next to INIT_IMAGE, in secretfetch-init
// and in the refresh sidecar, and their repositories count as the init
// image's for the containers that may not run it; any other image is still
// denied, and emptying the list ends it.
func TestPolicyPreviousInitImages(t *testing.T) {
	e := startPolicyEnv(t)
	e.namespace(t, "apps", nil)
	const (
		newImage = "ghcr.io/secretfetch/init-fetch:v0.2.0"
		oldImage = initImage // what the base's webhook injected
		digested = "ghcr.io/secretfetch/init-fetch@" + digestA
		moved    = "old-registry.example.com/secretfetch/init-fetch:v0.0.9"
	)
	e.setParams(t, map[string]string{"INIT_IMAGE": newImage, "PREVIOUS_INIT_IMAGES": " " + oldImage + ", " + digested + ",," + moved + " "})
	optIn := optInFull()
	accepted := newImage + " or " + oldImage + " or " + digested + " or " + moved
	// Wait until the binding and the new parameters are in force: only a
	// denial shows both.
	eventually(t, func() error {
		return checkOutcome(e.admit(t.Context(), pod("apps", optIn, injected("ghcr.io/secretfetch/init-fetch:v0.0.1"))), []string{
			"the init container secretfetch-init with the image " + accepted, "(it has ghcr.io/secretfetch/init-fetch:v0.0.1)"})
	})

	tests := []struct {
		name  string
		pod   *corev1.Pod
		wants []string
	}{
		{"injected by the new webhook", pod("apps", optIn, injected(newImage)), nil},
		{"injected by an old replica", pod("apps", optIn, injected(oldImage)), nil},
		{"injected by an old replica, with refresh", pod("apps", optIn, injected(oldImage), sidecar(oldImage)), nil},
		{"an init image pinned by digest", pod("apps", optIn, injected(digested)), nil},
		{"an init image from the old registry", pod("apps", optIn, injected(moved)), nil},
		{"a look-alike", pod("apps", optIn, injected("evil.example.com/init-fetch:v0.2.0")), []string{"(it has evil.example.com/init-fetch:v0.2.0)"}},
		{"a refresh sidecar in neither list", pod("apps", optIn, injected(newImage), sidecar("evil.example.com/init-fetch:v0.2.0")), []string{
			"the refresh sidecar secretfetch-refresh with the image " + newImage + " or " + oldImage}},
		{"an app container on the old image", pod("apps", withContainer("fetch", oldImage)), []string{"container fetch (" + oldImage + ")"}},
		{"an app container on the old registry's image", pod("apps", withContainer("fetch", "old-registry.example.com/secretfetch/init-fetch:v1")), []string{
			"container fetch (old-registry.example.com/secretfetch/init-fetch:v1)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eventually(t, func() error { return checkOutcome(e.admit(t.Context(), tt.pod), tt.wants) })
		})
	}

	t.Run("the rollout is over", func(t *testing.T) {
		e.setParam(t, "PREVIOUS_INIT_IMAGES", "")
		eventually(t, func() error {
			return checkOutcome(e.admit(t.Context(), pod("apps", optIn, injected(oldImage))), []string{
				"the init container secretfetch-init with the image " + newImage + " (it has " + oldImage + ")"})
		})
		eventually(t, func() error { return checkOutcome(e.admit(t.Context(), pod("apps", optIn, injected(newImage))), nil) })
	})
}

// TestPolicyInitImageUpdates: an update can change a container's image, and
// ephemeral containers arrive as an update of pods/ephemeralcontainers, so
// neither may make a container start running the init image. An update that
// changes no image, or moves the webhook's container between init images, is
// admitted.
func TestPolicyInitImageUpdates(t *testing.T) {
	e := startPolicyEnv(t)
	e.namespace(t, "apps", nil)
	ctx := t.Context()
	pods := e.cs.CoreV1().Pods("apps")
	dryRun := metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}}

	// Real pods (envtest runs no scheduler, so they stay Pending), created
	// once the policy is in force.
	plain := pod("apps", func(p *corev1.Pod) { p.Name = "plain" })
	eventually(t, func() error {
		return checkOutcome(e.admit(ctx, pod("apps", withContainer("fetch", initImage))), []string{"runs the secretfetch init image"})
	})
	_, err := pods.Create(ctx, plain, metav1.CreateOptions{})
	must(t, err)
	mutated := pod("apps", optInFull(), injected(initImage), sidecar(initImage), func(p *corev1.Pod) { p.Name = "mutated" })
	_, err = pods.Create(ctx, mutated, metav1.CreateOptions{})
	must(t, err)
	const otherInit = "registry.example.com/init-fetch"
	legacy := pod("apps", withContainer("fetch", otherInit+":v0"), func(p *corev1.Pod) { p.Name = "legacy" })
	_, err = pods.Create(ctx, legacy, metav1.CreateOptions{})
	must(t, err)

	update := func(name string, edit func(*corev1.Pod)) error {
		p, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		edit(p)
		_, err = pods.Update(ctx, p, dryRun)
		return err
	}
	debug := func(name, image string) error {
		p, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, corev1.EphemeralContainer{
			EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger", Image: image,
				TerminationMessagePolicy: corev1.TerminationMessageReadFile, ImagePullPolicy: corev1.PullIfNotPresent}})
		_, err = pods.UpdateEphemeralContainers(ctx, name, p, dryRun)
		return err
	}

	tests := []struct {
		name  string
		do    func() error
		wants []string
	}{
		{"an app container moved to the init image", func() error {
			return update("plain", func(p *corev1.Pod) { p.Spec.Containers[0].Image = initImage })
		}, []string{"container app (" + initImage + ") runs the secretfetch init image", "no update may make a container start running it"}},
		{"an app container moved to another image", func() error {
			return update("plain", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "example.com/app:v2" })
		}, nil},
		{"an ephemeral container on the init image", func() error { return debug("plain", initImage) },
			[]string{"ephemeral container debugger (" + initImage + ")"}},
		{"an ephemeral container on the init image, in an injected pod", func() error { return debug("mutated", initImage) },
			[]string{"ephemeral container debugger (" + initImage + ")"}},
		{"an ephemeral container on another image", func() error { return debug("plain", "example.com/debug:v1") }, nil},
		{"an injected pod's labels", func() error {
			return update("mutated", func(p *corev1.Pod) { p.Labels = map[string]string{"a": "b"} })
		}, nil},
		{"an injected pod's init containers moved to another init image", func() error {
			return update("mutated", func(p *corev1.Pod) {
				for i := range p.Spec.InitContainers {
					p.Spec.InitContainers[i].Image = "ghcr.io/secretfetch/init-fetch:v0.2.0"
				}
			})
		}, nil},
		{"an injected pod's app container moved to the init image", func() error {
			return update("mutated", func(p *corev1.Pod) { p.Spec.Containers[0].Image = initImage })
		}, []string{"container app (" + initImage + ")"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eventually(t, func() error { return checkOutcome(tt.do(), tt.wants) })
		})
	}

	// A pod that ran the init image in a container of its own before the
	// parameters named it (created before the policy, or under other
	// parameters) can still be updated, or a controller could not even take
	// its finalizers off: only a change of image is judged.
	t.Run("an unchanged image under new parameters", func(t *testing.T) {
		e.setParam(t, "INIT_IMAGE", otherInit+":v1")
		eventually(t, func() error {
			return checkOutcome(e.admit(ctx, pod("apps", withContainer("fetch", otherInit+":v0"))), []string{"runs the secretfetch init image"})
		})
		eventually(t, func() error {
			return checkOutcome(update("legacy", func(p *corev1.Pod) { p.Labels = map[string]string{"note": "x"} }), nil)
		})
		eventually(t, func() error {
			return checkOutcome(update("legacy", func(p *corev1.Pod) { p.Spec.Containers[1].Image = otherInit + ":v1" }), nil)
		})
		eventually(t, func() error {
			return checkOutcome(update("legacy", func(p *corev1.Pod) { p.Spec.Containers[0].Image = otherInit + ":v1" }),
				[]string{"container app (" + otherInit + ":v1)"})
		})
	})
}

// TestPolicyAdmitsTheWebhooksPods: every pod in the webhook's golden files
// (internal/mutate/testdata/*/want.yaml: refresh sidecars, env files,
// reinvocation, user init containers) passes secretfetch-injected, and the
// same pod as it arrived (in.yaml, opted in) does not. The policy must never
// deny what the webhook makes.
func TestPolicyAdmitsTheWebhooksPods(t *testing.T) {
	wants, err := filepath.Glob(filepath.Join("..", "internal", "mutate", "testdata", "*", "want.yaml"))
	must(t, err)
	if len(wants) < 10 {
		t.Fatalf("found %d golden pods, want the webhook's golden files", len(wants))
	}
	e := startPolicyEnv(t)
	const goldenInitImage = "secretfetch.local/init-fetch:dev" // the image the golden tests configure
	e.setParam(t, "INIT_IMAGE", goldenInitImage)
	// Wait until the bindings, and the new image, are in force.
	e.namespace(t, "apps", nil)
	eventually(t, func() error {
		return checkOutcome(e.admit(t.Context(), pod("apps", annotate("secretfetch.io/inject", "true"), injected("other:v1"))),
			[]string{"with the image " + goldenInitImage})
	})
	namespaces := map[string]bool{}
	for _, want := range wants {
		name := filepath.Base(filepath.Dir(want))
		t.Run(name, func(t *testing.T) {
			mutated := readPod(t, want)
			if mutated.Namespace == "" {
				mutated.Namespace = "default"
			}
			if !namespaces[mutated.Namespace] && mutated.Namespace != "default" {
				e.namespace(t, mutated.Namespace, nil)
				namespaces[mutated.Namespace] = true
			}
			if mutated.Annotations["secretfetch.io/status"] != "injected" {
				t.Skip("not injected (opted out)")
			}
			// A projected token needs a named ServiceAccount, which the
			// API server fills in when the ServiceAccount admission plugin
			// runs; envtest turns it off.
			if mutated.Spec.ServiceAccountName == "" {
				mutated.Spec.ServiceAccountName = "default"
			}
			if err := checkOutcome(e.admit(t.Context(), mutated), nil); err != nil {
				t.Error(err)
			}

			arrived := readPod(t, filepath.Join(filepath.Dir(want), "in.yaml"))
			arrived.Namespace = mutated.Namespace
			arrived.Spec.ServiceAccountName = mutated.Spec.ServiceAccountName
			if arrived.Annotations["secretfetch.io/status"] == "injected" {
				return // reinvocation: it arrived injected already
			}
			if err := checkOutcome(e.admit(t.Context(), arrived), []string{"secretfetch-injected"}); err != nil {
				t.Errorf("in.yaml: %v", err)
			}
		})
	}
}

func readPod(t *testing.T, path string) *corev1.Pod {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	var p corev1.Pod
	if err := yaml.UnmarshalStrict(b, &p); err != nil {
		t.Fatalf("decoding %s: %v", path, err)
	}
	return &p
}
