package manifests_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/secretfetch/secretfetch/hack/certs/pki"
)

const (
	systemNS    = "secretfetch-system"
	webhookName = "secretfetch-webhook"
	tlsSecret   = "secretfetch-webhook-tls"
	// policyParams is the ConfigMap the policy bindings read.
	policyParams = "secretfetch-policy-params"
	fakeURL      = "http://fake-secretsmanager.secretfetch-fake.svc:4566"
	serviceDNS   = "secretfetch-webhook.secretfetch-system.svc"
	digestA      = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB      = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// tlsSource says where an overlay's serving certificate and caBundle come from.
type tlsSource int

const (
	tlsNone        tlsSource = iota // the base: no Secret, no caBundle
	tlsCertManager                  // cert-manager Certificate + CA injector annotation
	tlsCABundle                     // secretGenerator + replacement into caBundle
)

type wantOverlay struct {
	webhookImage string
	initImage    string
	pullPolicy   corev1.PullPolicy
	region       string
	smEndpoint   string
	stsEndpoint  string
	minRefresh   string // "" for the base's 1m
	tls          tlsSource
}

func TestOverlays(t *testing.T) {
	kubectl := findKubectl(t)
	root, bundle := setup(t)

	upstream := wantOverlay{
		webhookImage: "ghcr.io/secretfetch/webhook:v0.1.0",
		initImage:    "ghcr.io/secretfetch/init-fetch:v0.1.0",
		pullPolicy:   corev1.PullIfNotPresent,
	}
	local := wantOverlay{
		webhookImage: "secretfetch.local/webhook:dev",
		initImage:    "secretfetch.local/init-fetch:dev",
		pullPolicy:   corev1.PullIfNotPresent,
		region:       "us-east-1",
		smEndpoint:   fakeURL,
		stsEndpoint:  fakeURL,
		minRefresh:   "2s",
		tls:          tlsCABundle,
	}
	with := func(w wantOverlay, f func(*wantOverlay)) wantOverlay { f(&w); return w }

	tests := []struct {
		dir  string
		want wantOverlay
	}{
		{"base", upstream},
		{"overlays/cert-manager", with(upstream, func(w *wantOverlay) { w.tls = tlsCertManager })},
		{"overlays/ca-bundle", with(upstream, func(w *wantOverlay) { w.tls = tlsCABundle })},
		{"overlays/local", local},
		{"overlays/kind", with(local, func(w *wantOverlay) { w.pullPolicy = corev1.PullNever })},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			objs := render(t, kubectl, filepath.Join(root, tt.dir))
			checkWebhookStack(t, objs, tt.want, bundle)
		})
	}
}

// TestPinByDigest checks what a real deployment does: an overlay's `images:`
// entries pin both the webhook image and the init image (which sits in the
// webhook's ConfigMap, not in a container) by digest.
func TestPinByDigest(t *testing.T) {
	kubectl := findKubectl(t)
	root, _ := setup(t)
	dir := writeKustomization(t, root, "pinned", `
resources: [../overlays/cert-manager]
images:
- name: ghcr.io/secretfetch/webhook
  newName: registry.example.com/secretfetch/webhook
  digest: `+digestA+`
- name: ghcr.io/secretfetch/init-fetch
  newName: registry.example.com/secretfetch/init-fetch
  digest: `+digestB+`
`)
	objs := render(t, kubectl, dir)
	checkWebhookStack(t, objs, wantOverlay{
		webhookImage: "registry.example.com/secretfetch/webhook@" + digestA,
		initImage:    "registry.example.com/secretfetch/init-fetch@" + digestB,
		pullPolicy:   corev1.PullIfNotPresent,
		tls:          tlsCertManager,
	}, nil)
}

// TestPreviousInitImages checks the README's recipe for an upgrade that
// changes the init image: the overlay's `images:` entry moves both
// INIT_IMAGE literals to the new image, and a merged literal keeps the old
// one admitted by the policies (and only by them) while the rollout runs.
func TestPreviousInitImages(t *testing.T) {
	kubectl := findKubectl(t)
	root, _ := setup(t)
	const old = "registry.example.com/secretfetch/init-fetch@" + digestA
	dir := writeKustomization(t, root, "upgrade", `
resources: [../overlays/cert-manager]
images:
- name: ghcr.io/secretfetch/init-fetch
  newName: registry.example.com/secretfetch/init-fetch
  digest: `+digestB+`
configMapGenerator:
- name: secretfetch-policy-params
  namespace: secretfetch-system
  behavior: merge
  literals: [PREVIOUS_INIT_IMAGES=`+old+`]
`)
	objs := render(t, kubectl, dir)
	var params corev1.ConfigMap
	get(t, objs, "ConfigMap", systemNS, policyParams, &params)
	want := map[string]string{
		"INIT_IMAGE":              "registry.example.com/secretfetch/init-fetch@" + digestB,
		"PREVIOUS_INIT_IMAGES":    old,
		"ALLOWED_SECRETS_DEFAULT": "any",
	}
	if diff := cmp.Diff(want, params.Data); diff != "" {
		t.Errorf("policy parameters (-want +got):\n%s", diff)
	}
	// The policies' bindings still find their parameters by name.
	for _, name := range []string{"secretfetch-injected", "secretfetch-allowed-secrets"} {
		var b admissionregistrationv1.ValidatingAdmissionPolicyBinding
		get(t, objs, "ValidatingAdmissionPolicyBinding", "", name, &b)
		if b.Spec.ParamRef == nil || b.Spec.ParamRef.Name != params.Name {
			t.Errorf("binding %s paramRef = %+v, want %s", name, b.Spec.ParamRef, params.Name)
		}
	}
	for _, o := range objs {
		if o.Kind == "ConfigMap" && strings.HasPrefix(o.Name, "secretfetch-webhook-config") && strings.Contains(string(o.doc), "PREVIOUS_INIT_IMAGES") {
			t.Errorf("ConfigMap %s carries PREVIOUS_INIT_IMAGES; the webhook injects one image", o.Name)
		}
	}
}

// TestOverrideEndpoints checks the way the e2e suite points the init
// containers elsewhere (a Service IP when there is no cluster DNS): one
// kustomization on top of the local overlay that merges new literals.
func TestOverrideEndpoints(t *testing.T) {
	kubectl := findKubectl(t)
	root, bundle := setup(t)
	const ip = "http://10.96.0.50:4566"
	dir := writeKustomization(t, root, "override", `
resources: [../overlays/local]
configMapGenerator:
- name: secretfetch-webhook-config
  namespace: secretfetch-system
  behavior: merge
  literals: [SECRETSMANAGER_ENDPOINT=`+ip+`, STS_ENDPOINT=`+ip+`, DEFAULT_REGION=eu-west-1]
`)
	objs := render(t, kubectl, dir)
	checkWebhookStack(t, objs, wantOverlay{
		webhookImage: "secretfetch.local/webhook:dev",
		initImage:    "secretfetch.local/init-fetch:dev",
		pullPolicy:   corev1.PullIfNotPresent,
		region:       "eu-west-1",
		smEndpoint:   ip,
		stsEndpoint:  ip,
		minRefresh:   "2s",
		tls:          tlsCABundle,
	}, bundle)
}

func TestFakeSecretsManager(t *testing.T) {
	kubectl := findKubectl(t)
	root, _ := setup(t)
	objs := render(t, kubectl, filepath.Join(root, "fake-secretsmanager"))
	const ns = "secretfetch-fake"

	var nsObj corev1.Namespace
	get(t, objs, "Namespace", "", ns, &nsObj)
	if got := nsObj.Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
		t.Errorf("namespace %s enforce label = %q, want restricted", ns, got)
	}
	var dep appsv1.Deployment
	get(t, objs, "Deployment", ns, "fake-secretsmanager", &dep)
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 1 {
		t.Errorf("replicas = %v, want 1 (the fake's store is in memory)", deref(dep.Spec.Replicas))
	}
	spec := dep.Spec.Template.Spec
	for _, v := range restrictedViolations(spec) {
		t.Errorf("not restricted: %s", v)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("containers = %d, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	if c.Image != "secretfetch.local/fake-secretsmanager:dev" {
		t.Errorf("image = %q", c.Image)
	}
	for _, arg := range []string{"--listen=:4566", "--admin"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("args %q lack %q", c.Args, arg)
		}
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/healthz" ||
		containerPort(t, c, c.ReadinessProbe.HTTPGet.Port) != 4566 {
		t.Errorf("readiness probe = %+v, want GET /healthz on 4566", c.ReadinessProbe)
	}
	var svc corev1.Service
	get(t, objs, "Service", ns, "fake-secretsmanager", &svc)
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 4566 || containerPort(t, c, svc.Spec.Ports[0].TargetPort) != 4566 {
		t.Errorf("service ports = %+v, want 4566 -> 4566", svc.Spec.Ports)
	}
	if !selects(svc.Spec.Selector, dep.Spec.Template.Labels) {
		t.Errorf("service selector %v does not select the pods %v", svc.Spec.Selector, dep.Spec.Template.Labels)
	}
}

// TestMatchCondition evaluates the webhook's CEL matchCondition as the API
// server would: only pods whose annotations hold the opt-in key, whatever its
// value, reach the webhook (which then injects, passes or denies).
func TestMatchCondition(t *testing.T) {
	kubectl := findKubectl(t)
	root, _ := setup(t)
	objs := render(t, kubectl, filepath.Join(root, "base"))
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	get(t, objs, "MutatingWebhookConfiguration", "", "secretfetch", &mwc)
	if len(mwc.Webhooks) != 1 || len(mwc.Webhooks[0].MatchConditions) != 1 {
		t.Fatalf("want one webhook with one matchCondition, got %+v", mwc.Webhooks)
	}
	expr := mwc.Webhooks[0].MatchConditions[0].Expression

	env, err := cel.NewEnv(
		cel.Variable("object", cel.DynType),
		cel.Variable("oldObject", cel.DynType),
		cel.Variable("request", cel.DynType),
	)
	if err != nil {
		t.Fatal(err)
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		t.Fatalf("compiling %q: %v", expr, iss.Err())
	}
	if ast.OutputType() != cel.BoolType && ast.OutputType() != cel.DynType {
		t.Fatalf("%q has type %v, want bool", expr, ast.OutputType())
	}
	prg, err := env.Program(ast)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		metadata map[string]any
		want     bool
	}{
		{"opted in", map[string]any{"annotations": map[string]any{"secretfetch.io/inject": "true"}}, true},
		{"explicitly false still reaches the webhook", map[string]any{"annotations": map[string]any{"secretfetch.io/inject": "false"}}, true},
		{"a bad value reaches the webhook, which denies it", map[string]any{"annotations": map[string]any{"secretfetch.io/inject": "yes"}}, true},
		{"other annotations only", map[string]any{"annotations": map[string]any{"secretfetch.io/secret-db": "prod/db", "a": "b"}}, false},
		{"empty annotations", map[string]any{"annotations": map[string]any{}}, false},
		{"no annotations", map[string]any{"name": "p"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": tt.metadata}
			out, _, err := prg.Eval(map[string]any{"object": pod, "oldObject": nil, "request": map[string]any{}})
			if err != nil {
				t.Fatalf("evaluating %q: %v", expr, err)
			}
			if got, ok := out.Value().(bool); !ok || got != tt.want {
				t.Errorf("%q = %v, want %v", expr, out.Value(), tt.want)
			}
		})
	}
}

// checkWebhookStack asserts everything the design needs from a rendered
// webhook overlay. bundle is the CA and serving pair written into the
// ca-bundle overlay, or nil when the overlay does not use it.
func checkWebhookStack(t *testing.T, objs []object, want wantOverlay, bundle *pki.Bundle) {
	t.Helper()

	// The webhook reads only /version, which every client may: nothing may
	// grant it permissions.
	for _, o := range objs {
		switch o.Kind {
		case "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding":
			t.Errorf("rendered %s %s: the webhook needs no RBAC", o.Kind, o.Name)
		}
	}

	var ns corev1.Namespace
	get(t, objs, "Namespace", "", systemNS, &ns)
	if got := ns.Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
		t.Errorf("namespace enforce label = %q, want restricted", got)
	}

	var sa corev1.ServiceAccount
	get(t, objs, "ServiceAccount", systemNS, webhookName, &sa)
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Errorf("ServiceAccount automountServiceAccountToken = %v, want false", deref(sa.AutomountServiceAccountToken))
	}

	var dep appsv1.Deployment
	get(t, objs, "Deployment", systemNS, webhookName, &dep)
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
		t.Errorf("replicas = %v, want 2", deref(dep.Spec.Replicas))
	}
	if ru := dep.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
		t.Errorf("rollingUpdate = %+v, want maxUnavailable 0", ru)
	}
	pod := dep.Spec.Template
	spec := pod.Spec
	if !selects(dep.Spec.Selector.MatchLabels, pod.Labels) {
		t.Errorf("deployment selector %v does not select its pods %v", dep.Spec.Selector.MatchLabels, pod.Labels)
	}
	if spec.ServiceAccountName != webhookName {
		t.Errorf("serviceAccountName = %q", spec.ServiceAccountName)
	}
	// A token for GET /version at start-up; the ServiceAccount has no RBAC
	// (checkWebhookStack fails on any Role or binding above).
	if spec.AutomountServiceAccountToken == nil || !*spec.AutomountServiceAccountToken {
		t.Errorf("pod automountServiceAccountToken = %v, want true: the webhook reads the API server's version", deref(spec.AutomountServiceAccountToken))
	}
	if spec.TerminationGracePeriodSeconds == nil || *spec.TerminationGracePeriodSeconds < 10 {
		t.Errorf("terminationGracePeriodSeconds = %v, want room to drain (>= 10)", deref(spec.TerminationGracePeriodSeconds))
	}
	if a := spec.Affinity; a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0 ||
		a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey != "kubernetes.io/hostname" {
		t.Errorf("want preferred pod anti-affinity on kubernetes.io/hostname, got %+v", spec.Affinity)
	}
	if len(spec.TopologySpreadConstraints) == 0 {
		t.Error("no topologySpreadConstraints")
	}
	if sc := spec.SecurityContext; sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 65532 || sc.RunAsGroup == nil || *sc.RunAsGroup != 65532 {
		t.Errorf("pod securityContext = %+v, want runAsUser and runAsGroup 65532", spec.SecurityContext)
	}
	for _, v := range restrictedViolations(spec) {
		t.Errorf("not restricted: %s", v)
	}
	if len(spec.Containers) != 1 || len(spec.InitContainers) != 0 {
		t.Fatalf("want exactly one container, got %d (+%d init)", len(spec.Containers), len(spec.InitContainers))
	}
	c := spec.Containers[0]
	if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
		t.Error("container root filesystem is not read-only")
	}
	if c.Image != want.webhookImage {
		t.Errorf("webhook image = %q, want %q", c.Image, want.webhookImage)
	}
	if c.ImagePullPolicy != want.pullPolicy {
		t.Errorf("imagePullPolicy = %q, want %q", c.ImagePullPolicy, want.pullPolicy)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources = %+v, want cpu and memory requests and a memory limit", c.Resources)
	}

	checkGoMemLimit(t, c)
	seen := map[string]bool{}
	for _, e := range c.Env {
		if seen[e.Name] {
			t.Errorf("env %s is defined twice; the last one wins, silently", e.Name)
		}
		seen[e.Name] = true
	}
	flags := effectiveFlags(t, objs, c)
	minRefresh := want.minRefresh
	if minRefresh == "" {
		minRefresh = "1m"
	}
	for flag, w := range map[string]string{
		"--min-refresh-interval":      minRefresh,
		"--init-image":                want.initImage,
		"--default-region":            want.region,
		"--secretsmanager-endpoint":   want.smEndpoint,
		"--sts-endpoint":              want.stsEndpoint,
		"--volume-size-limit":         "",
		"--env-files":                 "true",
		"--port":                      "9443",
		"--metrics-bind-address":      ":8080",
		"--health-probe-bind-address": ":8081",
	} {
		if got, ok := flags[flag]; !ok || got != w {
			t.Errorf("effective %s = %q (set: %v), want %q", flag, got, ok, w)
		}
	}

	// Probes on the health address, on the paths controller-runtime serves.
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("no HTTP %s probe", p.name)
			continue
		}
		if p.probe.HTTPGet.Path != p.path || containerPort(t, c, p.probe.HTTPGet.Port) != 8081 {
			t.Errorf("%s probe = %s on %s, want %s on 8081", p.name, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port.String(), p.path)
		}
	}

	// The TLS Secret is mounted where --cert-dir points.
	certDir := flags["--cert-dir"]
	mounted := false
	for _, m := range c.VolumeMounts {
		if m.MountPath != certDir {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name == m.Name && v.Secret != nil && v.Secret.SecretName == tlsSecret && m.ReadOnly {
				mounted = true
			}
		}
	}
	if certDir == "" || !mounted {
		t.Errorf("Secret %s is not mounted read-only at --cert-dir %q", tlsSecret, certDir)
	}

	var pdb policyv1.PodDisruptionBudget
	get(t, objs, "PodDisruptionBudget", systemNS, webhookName, &pdb)
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("PDB minAvailable = %v, want 1", pdb.Spec.MinAvailable)
	}
	if pdb.Spec.Selector == nil || !selects(pdb.Spec.Selector.MatchLabels, pod.Labels) {
		t.Errorf("PDB selector %v does not select the webhook pods %v", pdb.Spec.Selector, pod.Labels)
	}

	checkNetworkPolicy(t, objs, pod.Labels, c)

	var svc corev1.Service
	get(t, objs, "Service", systemNS, webhookName, &svc)
	if !selects(svc.Spec.Selector, pod.Labels) {
		t.Errorf("service selector %v does not select the webhook pods %v", svc.Spec.Selector, pod.Labels)
	}
	var https *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Port == 443 {
			https = &svc.Spec.Ports[i]
		}
	}
	if https == nil || fmt.Sprint(containerPort(t, c, https.TargetPort)) != flags["--port"] {
		t.Errorf("service ports = %+v, want 443 -> the webhook's --port %s", svc.Spec.Ports, flags["--port"])
	}

	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	get(t, objs, "MutatingWebhookConfiguration", "", "secretfetch", &mwc)
	if len(mwc.Webhooks) != 1 {
		t.Fatalf("webhooks = %d, want 1", len(mwc.Webhooks))
	}
	wh := mwc.Webhooks[0]
	checkWebhook(t, wh, svc)

	checkPolicies(t, objs, want.initImage)

	switch want.tls {
	case tlsNone:
		if len(wh.ClientConfig.CABundle) != 0 {
			t.Error("the base carries a caBundle")
		}
		if has(objs, "Secret", systemNS, tlsSecret) {
			t.Error("the base carries the TLS Secret")
		}
	case tlsCertManager:
		checkCertManager(t, objs, mwc, wh)
	case tlsCABundle:
		checkCABundle(t, objs, wh, bundle)
	}
}

// checkNetworkPolicy: the webhook pods admit, over TCP, exactly the
// container's ports but health (the kubelet probes it from the node, which
// a NetworkPolicy always admits), from any source.
func checkNetworkPolicy(t *testing.T, objs []object, podLabels map[string]string, c corev1.Container) {
	t.Helper()
	var np networkingv1.NetworkPolicy
	get(t, objs, "NetworkPolicy", systemNS, webhookName, &np)
	if !selects(np.Spec.PodSelector.MatchLabels, podLabels) || len(np.Spec.PodSelector.MatchExpressions) != 0 {
		t.Errorf("NetworkPolicy podSelector %+v does not select the webhook pods %v", np.Spec.PodSelector, podLabels)
	}
	if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
		t.Errorf("NetworkPolicy policyTypes = %v, want [Ingress]", np.Spec.PolicyTypes)
	}
	var want []int32
	for _, p := range c.Ports {
		if p.Name != "health" {
			want = append(want, p.ContainerPort)
		}
	}
	var got []int32
	for _, rule := range np.Spec.Ingress {
		if len(rule.From) != 0 {
			t.Errorf("NetworkPolicy rule admits only %+v; the API server's address is not known to the policy", rule.From)
		}
		for _, p := range rule.Ports {
			if p.Port == nil || p.EndPort != nil || p.Protocol == nil || *p.Protocol != corev1.ProtocolTCP {
				t.Errorf("NetworkPolicy port %+v, want one TCP port", p)
				continue
			}
			got = append(got, containerPort(t, c, *p.Port))
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if len(want) == 0 || !slices.Equal(got, want) {
		t.Errorf("NetworkPolicy admits ports %v, want the container's ports but health: %v", got, want)
	}
}

func checkWebhook(t *testing.T, wh admissionregistrationv1.MutatingWebhook, svc corev1.Service) {
	t.Helper()
	if wh.Name != "inject.secretfetch.io" {
		t.Errorf("webhook name = %q", wh.Name)
	}
	if wh.FailurePolicy == nil || *wh.FailurePolicy != admissionregistrationv1.Fail {
		t.Errorf("failurePolicy = %v, want Fail", deref(wh.FailurePolicy))
	}
	if wh.SideEffects == nil || *wh.SideEffects != admissionregistrationv1.SideEffectClassNone {
		t.Errorf("sideEffects = %v, want None", deref(wh.SideEffects))
	}
	if wh.ReinvocationPolicy == nil || *wh.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy {
		t.Errorf("reinvocationPolicy = %v, want IfNeeded", deref(wh.ReinvocationPolicy))
	}
	if wh.TimeoutSeconds == nil || *wh.TimeoutSeconds != 5 {
		t.Errorf("timeoutSeconds = %v, want 5", deref(wh.TimeoutSeconds))
	}
	if !slices.Equal(wh.AdmissionReviewVersions, []string{"v1"}) {
		t.Errorf("admissionReviewVersions = %v, want [v1]", wh.AdmissionReviewVersions)
	}
	if len(wh.Rules) != 1 {
		t.Fatalf("rules = %+v, want one", wh.Rules)
	}
	r := wh.Rules[0]
	if !slices.Equal(r.Operations, []admissionregistrationv1.OperationType{admissionregistrationv1.Create}) ||
		!slices.Equal(r.APIGroups, []string{""}) || !slices.Equal(r.APIVersions, []string{"v1"}) ||
		!slices.Equal(r.Resources, []string{"pods"}) {
		t.Errorf("rule = operations %v, apiGroups %q, apiVersions %v, resources %v; want CREATE of core/v1 pods only",
			r.Operations, r.APIGroups, r.APIVersions, r.Resources)
	}
	excluded := false
	if sel := wh.NamespaceSelector; sel != nil {
		for _, e := range sel.MatchExpressions {
			if e.Key == "kubernetes.io/metadata.name" && e.Operator == "NotIn" && slices.Contains(e.Values, systemNS) {
				excluded = true
			}
		}
	}
	if !excluded {
		t.Errorf("namespaceSelector %+v does not exclude %s", wh.NamespaceSelector, systemNS)
	}
	if len(wh.MatchConditions) != 1 || !strings.Contains(wh.MatchConditions[0].Expression, "'secretfetch.io/inject'") {
		t.Errorf("matchConditions = %+v, want one on the secretfetch.io/inject annotation", wh.MatchConditions)
	}
	ref := wh.ClientConfig.Service
	if ref == nil || ref.Name != svc.Name || ref.Namespace != svc.Namespace || ref.Path == nil || *ref.Path != "/mutate-v1-pod" ||
		ref.Port == nil || *ref.Port != 443 || wh.ClientConfig.URL != nil {
		t.Errorf("clientConfig = %+v, want service %s/%s:443 /mutate-v1-pod", wh.ClientConfig, svc.Namespace, svc.Name)
	}
}

func checkCertManager(t *testing.T, objs []object, mwc admissionregistrationv1.MutatingWebhookConfiguration, wh admissionregistrationv1.MutatingWebhook) {
	t.Helper()
	if len(wh.ClientConfig.CABundle) != 0 {
		t.Error("caBundle is set; cert-manager's CA injector owns it")
	}
	if has(objs, "Secret", systemNS, tlsSecret) {
		t.Error("the overlay renders the TLS Secret; cert-manager writes it")
	}
	ref := mwc.Annotations["cert-manager.io/inject-ca-from"]
	certNS, certName, ok := strings.Cut(ref, "/")
	if !ok {
		t.Fatalf("cert-manager.io/inject-ca-from = %q, want namespace/name", ref)
	}
	type issuerRef struct{ Kind, Name string }
	type certificate struct {
		Spec struct {
			SecretName string
			IsCA       bool
			DNSNames   []string
			IssuerRef  issuerRef
		}
	}
	type issuer struct {
		Spec struct {
			SelfSigned *struct{}
			CA         *struct{ SecretName string }
		}
	}
	var serving certificate
	getLoose(t, objs, "Certificate", certNS, certName, &serving)
	if serving.Spec.SecretName != tlsSecret {
		t.Errorf("Certificate %s writes Secret %q, want %q", ref, serving.Spec.SecretName, tlsSecret)
	}
	if !slices.Contains(serving.Spec.DNSNames, serviceDNS) {
		t.Errorf("Certificate %s dnsNames = %v, want %s", ref, serving.Spec.DNSNames, serviceDNS)
	}
	// The serving certificate comes from a CA issuer whose CA is itself a
	// certificate from a self-signed issuer.
	var caIssuer issuer
	getLoose(t, objs, serving.Spec.IssuerRef.Kind, certNS, serving.Spec.IssuerRef.Name, &caIssuer)
	if caIssuer.Spec.CA == nil {
		t.Fatalf("issuer %s is not a CA issuer", serving.Spec.IssuerRef.Name)
	}
	var ca certificate
	found := false
	for _, o := range objs {
		if o.Kind == "Certificate" && o.Namespace == certNS {
			var c certificate
			getLoose(t, objs, "Certificate", certNS, o.Name, &c)
			if c.Spec.SecretName == caIssuer.Spec.CA.SecretName {
				ca, found = c, true
			}
		}
	}
	if !found || !ca.Spec.IsCA {
		t.Fatalf("no isCA Certificate writes the CA issuer's Secret %q", caIssuer.Spec.CA.SecretName)
	}
	var root issuer
	getLoose(t, objs, ca.Spec.IssuerRef.Kind, certNS, ca.Spec.IssuerRef.Name, &root)
	if root.Spec.SelfSigned == nil {
		t.Errorf("the CA certificate's issuer %s is not self-signed", ca.Spec.IssuerRef.Name)
	}
}

// checkPolicies asserts that both ValidatingAdmissionPolicies ship, bound,
// cluster-scoped, failing closed, and reading the init image that the webhook
// injects.
func checkPolicies(t *testing.T, objs []object, initImage string) {
	t.Helper()
	var params corev1.ConfigMap
	get(t, objs, "ConfigMap", systemNS, policyParams, &params)
	if got := params.Data["INIT_IMAGE"]; got != initImage {
		t.Errorf("the policies admit the init image %q, the webhook injects %q", got, initImage)
	}
	if got, ok := params.Data["PREVIOUS_INIT_IMAGES"]; !ok || got != "" {
		t.Errorf("PREVIOUS_INIT_IMAGES = %q (set: %v), want it present and empty: an overlay merges a value in during an upgrade", got, ok)
	}
	if got := params.Data["ALLOWED_SECRETS_DEFAULT"]; got != "any" {
		t.Errorf("ALLOWED_SECRETS_DEFAULT = %q, want any", got)
	}
	for _, name := range []string{"secretfetch-injected", "secretfetch-allowed-secrets"} {
		var p admissionregistrationv1.ValidatingAdmissionPolicy
		get(t, objs, "ValidatingAdmissionPolicy", "", name, &p)
		if p.Spec.FailurePolicy == nil || *p.Spec.FailurePolicy != admissionregistrationv1.Fail {
			t.Errorf("policy %s failurePolicy = %v, want Fail", name, deref(p.Spec.FailurePolicy))
		}
		if p.Spec.ParamKind == nil || p.Spec.ParamKind.Kind != "ConfigMap" {
			t.Errorf("policy %s paramKind = %+v, want ConfigMap", name, p.Spec.ParamKind)
		}
		var b admissionregistrationv1.ValidatingAdmissionPolicyBinding
		get(t, objs, "ValidatingAdmissionPolicyBinding", "", name, &b)
		ref := b.Spec.ParamRef
		if b.Spec.PolicyName != name || ref == nil || ref.Name != policyParams || ref.Namespace != systemNS ||
			ref.ParameterNotFoundAction == nil || *ref.ParameterNotFoundAction != admissionregistrationv1.AllowAction {
			// Deny would deny every pod in the cluster while the ConfigMap
			// is missing (TestPolicyWithoutParams).
			t.Errorf("binding %s = %+v, want policy %s, params %s/%s, Allow when they are missing", name, b.Spec, name, systemNS, policyParams)
		}
		if !slices.Equal(b.Spec.ValidationActions, []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}) {
			t.Errorf("binding %s validationActions = %v, want [Deny]", name, b.Spec.ValidationActions)
		}
	}
}

// TestPolicySwitches: each component switches off one policy and its
// binding, and nothing else.
func TestPolicySwitches(t *testing.T) {
	kubectl := findKubectl(t)
	root, _ := setup(t)
	for _, tt := range []struct{ component, off, on string }{
		{"without-injected-policy", "secretfetch-injected", "secretfetch-allowed-secrets"},
		{"without-allowed-secrets-policy", "secretfetch-allowed-secrets", "secretfetch-injected"},
	} {
		t.Run(tt.component, func(t *testing.T) {
			dir := writeKustomization(t, root, tt.component, "resources: [../base]\ncomponents: [../components/"+tt.component+"]\n")
			objs := render(t, kubectl, dir)
			for _, kind := range []string{"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} {
				if has(objs, kind, "", tt.off) {
					t.Errorf("%s %s is still rendered", kind, tt.off)
				}
				if !has(objs, kind, "", tt.on) {
					t.Errorf("%s %s is gone too", kind, tt.on)
				}
			}
			if !has(objs, "Deployment", systemNS, webhookName) {
				t.Error("the webhook is gone")
			}
		})
	}
}

func checkCABundle(t *testing.T, objs []object, wh admissionregistrationv1.MutatingWebhook, bundle *pki.Bundle) {
	t.Helper()
	if bundle == nil {
		t.Fatal("test bug: a ca-bundle overlay needs the generated bundle")
	}
	var s corev1.Secret
	get(t, objs, "Secret", systemNS, tlsSecret, &s)
	if s.Type != corev1.SecretTypeTLS {
		t.Errorf("Secret type = %q, want %q", s.Type, corev1.SecretTypeTLS)
	}
	for key, want := range map[string][]byte{"ca.crt": bundle.CACert, "tls.crt": bundle.Cert, "tls.key": bundle.Key} {
		if !bytes.Equal(s.Data[key], want) {
			t.Errorf("Secret data[%s]: %d bytes, want the %d bytes of the file", key, len(s.Data[key]), len(want))
		}
	}
	if !bytes.Equal(wh.ClientConfig.CABundle, bundle.CACert) {
		t.Fatalf("caBundle: %d bytes, want the %d bytes of ca.crt", len(wh.ClientConfig.CABundle), len(bundle.CACert))
	}
	// What the API server will do: trust caBundle, verify the serving
	// certificate in the Secret for the Service's DNS name.
	if err := pki.Verify(wh.ClientConfig.CABundle, s.Data["tls.crt"], serviceDNS); err != nil {
		t.Errorf("tls.crt and caBundle: %v", err)
	}
}

// checkGoMemLimit fails when GOMEMLIMIT is missing or not below the
// container's memory limit: the Go runtime must collect before the kernel
// kills it.
func checkGoMemLimit(t *testing.T, c corev1.Container) {
	t.Helper()
	for _, e := range c.Env {
		if e.Name != "GOMEMLIMIT" {
			continue
		}
		soft, err := resource.ParseQuantity(strings.TrimSuffix(e.Value, "B"))
		if err != nil {
			t.Fatalf("GOMEMLIMIT %q: %v", e.Value, err)
		}
		if limit := c.Resources.Limits.Memory(); soft.Cmp(*limit) >= 0 {
			t.Errorf("GOMEMLIMIT %s is not below the memory limit %s", e.Value, limit)
		}
		return
	}
	t.Error("no GOMEMLIMIT on the webhook container")
}

// restrictedViolations lists what keeps a pod spec from passing the
// `restricted` Pod Security Standard (the checks that apply to these pods).
func restrictedViolations(spec corev1.PodSpec) []string {
	var out []string
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		out = append(out, "host namespaces")
	}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			out = append(out, "hostPath volume "+v.Name)
		}
	}
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		sc := c.SecurityContext
		if sc == nil {
			out = append(out, c.Name+": no securityContext")
			continue
		}
		if sc.Privileged != nil && *sc.Privileged {
			out = append(out, c.Name+": privileged")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			out = append(out, c.Name+": allowPrivilegeEscalation is not false")
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			out = append(out, c.Name+": capabilities do not drop ALL")
		} else if slices.ContainsFunc(sc.Capabilities.Add, func(c corev1.Capability) bool { return c != "NET_BIND_SERVICE" }) {
			out = append(out, c.Name+": adds capabilities")
		}
		nonRoot := sc.RunAsNonRoot
		if nonRoot == nil {
			nonRoot = psc.RunAsNonRoot
		}
		if nonRoot == nil || !*nonRoot {
			out = append(out, c.Name+": runAsNonRoot is not true")
		}
		uid := sc.RunAsUser
		if uid == nil {
			uid = psc.RunAsUser
		}
		if uid != nil && *uid == 0 {
			out = append(out, c.Name+": runAsUser 0")
		}
		seccomp := sc.SeccompProfile
		if seccomp == nil {
			seccomp = psc.SeccompProfile
		}
		if seccomp == nil || (seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault && seccomp.Type != corev1.SeccompProfileTypeLocalhost) {
			out = append(out, c.Name+": seccompProfile is not RuntimeDefault or Localhost")
		}
	}
	return out
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// effectiveFlags returns the container's --name=value args after the
// kubelet's $(VAR) expansion, resolving env from the rendered ConfigMaps. An
// unresolvable reference fails the test: the kubelet would pass it on
// literally, or refuse to start the container.
func effectiveFlags(t *testing.T, objs []object, c corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			var cm corev1.ConfigMap
			get(t, objs, "ConfigMap", systemNS, ref.Name, &cm)
			v, ok := cm.Data[ref.Key]
			if !ok {
				t.Fatalf("env %s: ConfigMap %s has no key %s", e.Name, ref.Name, ref.Key)
			}
			env[e.Name] = v
		default:
			t.Fatalf("env %s: unexpected source %+v", e.Name, e.ValueFrom)
		}
	}
	flags := map[string]string{}
	for _, arg := range c.Args {
		expanded := varRef.ReplaceAllStringFunc(arg, func(ref string) string {
			name := varRef.FindStringSubmatch(ref)[1]
			v, ok := env[name]
			if !ok {
				t.Errorf("arg %q references $(%s), which no env var defines", arg, name)
			}
			return v
		})
		name, value, ok := strings.Cut(expanded, "=")
		if !ok || !strings.HasPrefix(name, "--") {
			t.Errorf("arg %q is not --name=value", arg)
			continue
		}
		flags[name] = value
	}
	return flags
}

func containerPort(t *testing.T, c corev1.Container, p intstr.IntOrString) int32 {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	t.Errorf("container %s has no port named %q", c.Name, p.StrVal)
	return 0
}

// deref formats what a pointer field holds, for failure messages.
func deref[T any](p *T) string {
	if p == nil {
		return "<unset>"
	}
	return fmt.Sprint(*p)
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

type object struct {
	Kind, Name, Namespace string
	doc                   []byte
}

func has(objs []object, kind, ns, name string) bool {
	return slices.ContainsFunc(objs, func(o object) bool { return o.Kind == kind && o.Namespace == ns && o.Name == name })
}

// get decodes the one object of that kind, namespace and name into out,
// rejecting unknown fields, so that a misspelt field fails here rather than
// being dropped by the API server.
func get(t *testing.T, objs []object, kind, ns, name string, out any) {
	t.Helper()
	decode(t, objs, kind, ns, name, out, true)
}

// getLoose is get for kinds without Go types here (cert-manager's).
func getLoose(t *testing.T, objs []object, kind, ns, name string, out any) {
	t.Helper()
	decode(t, objs, kind, ns, name, out, false)
}

func decode(t *testing.T, objs []object, kind, ns, name string, out any, strict bool) {
	t.Helper()
	var found []object
	for _, o := range objs {
		if o.Kind == kind && o.Namespace == ns && o.Name == name {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one %s %s/%s, found %d", kind, ns, name, len(found))
	}
	unmarshal := yaml.Unmarshal
	if strict {
		unmarshal = yaml.UnmarshalStrict
	}
	if err := unmarshal(found[0].doc, out); err != nil {
		t.Fatalf("decoding %s %s/%s: %v", kind, ns, name, err)
	}
}

func findKubectl(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("KUBECTL"); p != "" {
		return p
	}
	p, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not found in PATH (or $KUBECTL); skipping the kustomize render tests")
	}
	return p
}

// setup copies the manifests into a temporary directory and writes a fresh
// throwaway CA and serving pair into its ca-bundle overlay, so the test never
// reads or writes the certificate files of the working tree.
func setup(t *testing.T) (string, *pki.Bundle) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "manifests")
	if err := copyTree(".", root); err != nil {
		t.Fatalf("copying the manifests: %v", err)
	}
	b, err := pki.New(pki.Options{DNSNames: []string{serviceDNS, serviceDNS + ".cluster.local"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.WriteDir(filepath.Join(root, "overlays", "ca-bundle")); err != nil {
		t.Fatal(err)
	}
	return root, b
}

func writeKustomization(t *testing.T, root, name, body string) string {
	t.Helper()
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n" + body
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		switch filepath.Ext(p) {
		case ".yaml", ".yml":
		default:
			return nil // Go files, and certificate files a user left in ca-bundle
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}

// render runs `kubectl kustomize dir` and splits the YAML stream.
func render(t *testing.T, kubectl, dir string) []object {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, kubectl, "kustomize", dir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr.String())
	}
	var objs []object
	r := utilyaml.NewYAMLReader(bufio.NewReader(&stdout))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading the rendered stream: %v", err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var meta struct {
			Kind     string
			Metadata struct{ Name, Namespace string }
		}
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatalf("decoding a rendered document: %v", err)
		}
		if meta.Kind == "" || meta.Metadata.Name == "" {
			t.Fatalf("rendered a document without kind or name:\n%s", doc)
		}
		objs = append(objs, object{Kind: meta.Kind, Name: meta.Metadata.Name, Namespace: meta.Metadata.Namespace, doc: doc})
	}
	if len(objs) == 0 {
		t.Fatalf("kubectl kustomize %s rendered nothing", dir)
	}
	return objs
}
