package charts_test

import (
	"bytes"
	"encoding/base64"
	"encoding/pem"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"

	"github.com/secretfetch/secretfetch/hack/certs/pki"
)

var update = flag.Bool("update", false, "rewrite the golden renders in testdata/ and the chart's copies of manifests/policy")

const (
	serviceDNS = "secretfetch-webhook.secretfetch-system.svc"
	tlsSecret  = "secretfetch-webhook-tls"
	digest     = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
)

func TestLint(t *testing.T) {
	helm := findHelm(t)
	for _, values := range []string{"", "testdata/cert-manager.values.yaml", "testdata/provided.values.yaml", "testdata/policies-off.values.yaml", "testdata/policy.values.yaml"} {
		args := []string{"lint", "--strict", chartDir, "--namespace", namespace, "--kube-version", kubeVersion}
		if values != "" {
			args = append(args, "-f", values)
		}
		if values == "testdata/policy.values.yaml" {
			args = append(args, "--kube-version", policyKubeVersion)
		}
		if out, err := run(t.Context(), helm, args...); err != nil {
			t.Errorf("%v\n%s", err, out)
		}
	}
}

// TestGolden compares renders with testdata/<name>.yaml. The self-signed
// certificate and key are new on every render, so they are checked (the
// caBundle verifies the serving certificate) and then masked.
func TestGolden(t *testing.T) {
	helm := findHelm(t)
	for _, name := range []string{"defaults", "cert-manager", "provided", "policies-off", "policy"} {
		t.Run(name, func(t *testing.T) {
			var args []string
			if name != "defaults" {
				args = []string{"-f", filepath.Join("testdata", name+".values.yaml")}
			}
			if name == "policy" {
				args = append(args, "--kube-version", policyKubeVersion)
			}
			out, err := run(t.Context(), helm, templateArgs(args...)...)
			if err != nil {
				t.Fatal(err)
			}
			objs := split(t, out)
			out = tidy(out)
			if name == "defaults" || name == "policies-off" {
				checkSelfSigned(t, objs)
				out = maskSelfSigned(t, out, objs)
			}
			golden := filepath.Join("testdata", name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(out)); diff != "" {
				t.Errorf("render differs from %s (-want +got; run with -update if intended):\n%s", golden, diff)
			}
		})
	}
}

// tidy trims the blank lines around each document and sorts the documents
// by kind and name: Helm 3 and Helm 4 differ in both (the order of kinds
// that Helm does not know, such as cert-manager's), so the golden files hold
// for either.
func tidy(stream []byte) []byte {
	docs := strings.Split(string(stream), "\n---\n")
	key := func(doc string) string {
		kind, name := docField.FindStringSubmatch(doc), docName.FindStringSubmatch(doc)
		if kind == nil || name == nil {
			return doc
		}
		return kind[1] + "/" + name[1]
	}
	for i, d := range docs {
		docs[i] = strings.TrimSpace(d)
	}
	docs = slices.DeleteFunc(docs, func(d string) bool { return d == "" })
	slices.SortStableFunc(docs, func(a, b string) int { return strings.Compare(key(a), key(b)) })
	return []byte("---\n" + strings.Join(docs, "\n---\n") + "\n")
}

var (
	docField = regexp.MustCompile(`(?m)^kind: (\S+)$`)
	docName  = regexp.MustCompile(`(?m)^  name: (\S+)$`)
)

// checkSelfSigned checks what the API server will do with the generated
// TLS: trust the caBundle, and verify the Secret's serving certificate for
// the Service's name with it.
func checkSelfSigned(t *testing.T, objs []object) {
	t.Helper()
	var s corev1.Secret
	into(t, find(t, objs, "Secret", namespace, tlsSecret), &s)
	if s.Type != corev1.SecretTypeTLS {
		t.Errorf("Secret type = %q, want %q", s.Type, corev1.SecretTypeTLS)
	}
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	into(t, find(t, objs, "MutatingWebhookConfiguration", "", "secretfetch"), &mwc)
	bundle := mwc.Webhooks[0].ClientConfig.CABundle
	if !bytes.Equal(bundle, s.Data["ca.crt"]) {
		t.Errorf("caBundle (%d bytes) is not the Secret's ca.crt (%d bytes)", len(bundle), len(s.Data["ca.crt"]))
	}
	if err := pki.Verify(bundle, s.Data["tls.crt"], serviceDNS, serviceDNS+".cluster.local"); err != nil {
		t.Errorf("tls.crt and caBundle: %v", err)
	}
	if key, _ := pem.Decode(s.Data["tls.key"]); key == nil || !strings.Contains(key.Type, "PRIVATE KEY") {
		t.Error("tls.key holds no PEM private key")
	}
}

// maskSelfSigned replaces the generated base64 values with fixed markers.
func maskSelfSigned(t *testing.T, out []byte, objs []object) []byte {
	t.Helper()
	var s corev1.Secret
	into(t, find(t, objs, "Secret", namespace, tlsSecret), &s)
	for _, key := range []string{"ca.crt", "tls.crt", "tls.key"} {
		enc := b64(s.Data[key])
		if !bytes.Contains(out, []byte(enc)) {
			t.Fatalf("the render does not hold %s as base64", key)
		}
		out = bytes.ReplaceAll(out, []byte(enc), []byte("GENERATED-"+strings.ToUpper(strings.ReplaceAll(key, ".", "-"))))
	}
	return out
}

// TestOneTruth keeps the chart and the kustomize base from drifting: the
// default render holds the base's objects, field by field, apart from
// Helm's labels. The differences it allows are listed, each with its reason.
func TestOneTruth(t *testing.T) {
	helm, kubectl := findHelm(t), findKubectl(t)
	chart := helmTemplate(t, helm)
	base := kustomize(t, kubectl, filepath.Join("..", "manifests", "base"))

	// Objects only one side has.
	onlyBase := map[string]string{
		// Helm stores the release in its namespace before it installs
		// anything, so the namespace must exist first (the README creates
		// and labels it).
		"Namespace /" + namespace: "created before helm install",
	}
	onlyChart := map[string]string{
		// The base leaves TLS to its overlays; the chart's default makes it.
		"Secret " + namespace + "/" + tlsSecret: "the self-signed TLS",
	}
	sameObjects(t, chart, base, allowed{onlyBase: onlyBase, onlyChart: onlyChart})
}

// allowed lists the differences between a chart render and a kustomize
// render that sameObjects accepts.
type allowed struct {
	// The objects only one side has, with the reason.
	onlyBase, onlyChart map[string]string
	// Whether "\n\n" before indentation in a string equals "\n" there.
	foldedBlankLines bool
}

// sameObjects compares a chart render with a kustomize render, object by
// object, apart from Helm's labels and what allow lists.
func sameObjects(t *testing.T, chart, base []object, allow allowed) {
	t.Helper()
	onlyBase, onlyChart := allow.onlyBase, allow.onlyChart
	chartObjs := map[string]object{}
	for _, o := range chart {
		chartObjs[o.key()] = o
	}
	seen := map[string]bool{}
	for _, b := range base {
		seen[b.key()] = true
		c, ok := chartObjs[b.key()]
		if _, allowed := onlyBase[b.key()]; allowed {
			if ok {
				t.Errorf("%s: the chart renders it; remove it from onlyBase", b.key())
			}
			continue
		}
		if !ok {
			t.Errorf("%s: in the kustomize render, not in the chart's", b.key())
			continue
		}
		want, got := normalize(b.Body), normalize(c.Body)
		if allow.foldedBlankLines {
			want = dropFoldedBlankLines(want).(map[string]any)
		}
		if c.Kind == "MutatingWebhookConfiguration" {
			// The base's caBundle comes from an overlay.
			for _, wh := range dig(got, "webhooks").([]any) {
				delete(dig(wh.(map[string]any), "clientConfig").(map[string]any), "caBundle")
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s differs (-base +chart):\n%s", b.key(), diff)
		}
	}
	for _, c := range chart {
		if seen[c.key()] {
			continue
		}
		if _, allowed := onlyChart[c.key()]; !allowed {
			t.Errorf("%s: in the chart's render, not in the kustomize render", c.key())
		}
	}
}

// dropFoldedBlankLines returns v with every "\n\n" that comes before
// indentation in its strings made "\n".
func dropFoldedBlankLines(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = dropFoldedBlankLines(e)
		}
	case []any:
		for i, e := range v {
			v[i] = dropFoldedBlankLines(e)
		}
	case string:
		return foldedBlankLine.ReplaceAllString(v, "\n$1")
	}
	return v
}

var foldedBlankLine = regexp.MustCompile(`\n\n( +)`)

// normalize drops Helm's labels, and the labels map itself when nothing
// else is left in it.
func normalize(body map[string]any) map[string]any {
	out, err := yaml.Marshal(body)
	if err != nil {
		panic(err)
	}
	var c map[string]any
	if err := yaml.Unmarshal(out, &c); err != nil {
		panic(err)
	}
	meta := c["metadata"].(map[string]any)
	if labels, ok := meta["labels"].(map[string]any); ok {
		for _, l := range helmLabels {
			delete(labels, l)
		}
		if len(labels) == 0 {
			delete(meta, "labels")
		}
	}
	return c
}

// TestSchema: a typo or a value outside what is allowed fails at render
// (and so at install) time, naming the key.
func TestSchema(t *testing.T) {
	helm := findHelm(t)
	tests := []struct {
		name string
		set  string
		want []string
	}{
		{"typo at the top", "replicaCont=3", []string{"replicaCont"}},
		{"a mode that does not exist", "mode=hybrid", []string{"mode", "webhook", "policy"}},
		{"typo in a nested key", "webhook.failurPolicy=Ignore", []string{"failurPolicy"}},
		{"typo in a policy switch", "policies.injected.enable=false", []string{"enable"}},
		{"a failurePolicy that does not exist", "webhook.failurePolicy=Open", []string{"failurePolicy"}},
		{"a digest that is not one", "image.digest=latest", []string{"digest"}},
		{"a cluster-wide default that is neither any nor none", "policies.allowedSecrets.default=some", []string{"default"}},
		{"a previous init image that is a list", `policies.injected.previousInitImages[0]=a\,b`, []string{"previousInitImages"}},
		{"a previous init image that is empty", "policies.injected.previousInitImages[0]=", []string{"previousInitImages"}},
		{"a refresh floor that is not a duration", "config.minRefreshInterval=soon", []string{"minRefreshInterval"}},
		{"envFiles as a string", "config.envFiles=yes", []string{"envFiles"}},
		{"an injected resource other than cpu and memory", "config.initResources.limits.gpu=1", []string{"initResources", "gpu"}},
		{"a max-in-flight of zero", "server.maxInFlight=0", []string{"maxInFlight"}},
		{"an extra arg that is not a flag", "extraArgs[0]=verbose", []string{"extraArgs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := run(t.Context(), helm, templateArgs("--set", tt.set)...)
			if err == nil {
				t.Fatalf("--set %s rendered; want a schema error", tt.set)
			}
			if !strings.Contains(err.Error(), "values don't meet the specifications of the schema") {
				t.Errorf("--set %s failed, but not on the schema: %v", tt.set, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("--set %s: the error does not name %q: %v", tt.set, w, err)
				}
			}
		})
	}
}

// TestValues checks that values reach the objects they are for.
func TestValues(t *testing.T) {
	helm := findHelm(t)
	defaults := helmTemplate(t, helm)
	objs := helmTemplate(t, helm,
		"--set", "image.digest="+digest,
		"--set", "initImage.repository=registry.example.com/init-fetch",
		"--set", "initImage.tag=v9",
		"--set", "config.defaultRegion=eu-west-1",
		"--set", "config.envFiles=false",
		"--set", "config.initResources.limits.memory=256Mi",
		"--set", "logLevel=debug", "--set", "logFormat=json",
		"--set", "extraArgs[0]=--allow-node-credentials=false",
		"--set", "server.maxInFlight=16", "--set", "server.bodyReadTimeout=5s", "--set", "server.shutdownDelay=10s",
		"--set", "replicaCount=3",
		"--set", "priorityClassName=critical",
		"--set", "webhook.failurePolicy=Ignore",
		"--set", "webhook.namespaceSelector.matchLabels.team=a",
		"--set", "webhook.namespaceSelector.matchExpressions[0].key=tier",
		"--set", "webhook.namespaceSelector.matchExpressions[0].operator=Exists",
		"--set", "policies.allowedSecrets.default=none",
		"--set", "policies.injected.previousInitImages={registry.example.com/init-fetch:v8,registry.example.com/init-fetch:v9}",
		"--set", "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name=monitoring",
		"--set", "metrics.serviceMonitor.enabled=true",
		"--set", "podDisruptionBudget.enabled=false",
	)

	var dep appsv1.Deployment
	into(t, findKind(t, objs, "Deployment"), &dep)
	c := dep.Spec.Template.Spec.Containers[0]
	if want := "ghcr.io/secretfetch/webhook@" + digest; c.Image != want {
		t.Errorf("image = %q, want %q", c.Image, want)
	}
	if *dep.Spec.Replicas != 3 || dep.Spec.Template.Spec.PriorityClassName != "critical" {
		t.Errorf("replicas %d, priorityClassName %q", *dep.Spec.Replicas, dep.Spec.Template.Spec.PriorityClassName)
	}
	for _, arg := range []string{"--log-level=debug", "--log-format=json", "--allow-node-credentials=false",
		"--max-in-flight=16", "--body-read-timeout=5s", "--shutdown-delay=10s"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("args %q lack %q", c.Args, arg)
		}
	}

	// A changed setting renames the webhook's ConfigMap (kustomize's hash),
	// so the Deployment rolls; the Deployment follows the name.
	cm := find(t, objs, "ConfigMap", namespace, configName(t, objs))
	if cm.Name == configName(t, defaults) {
		t.Errorf("ConfigMap %s kept its name after its data changed", cm.Name)
	}
	if data := dig(cm.Body, "data").(map[string]any); data["INIT_IMAGE"] != "registry.example.com/init-fetch:v9" || data["DEFAULT_REGION"] != "eu-west-1" || data["ENV_FILES"] != "false" ||
		data["INIT_RESOURCES"] != `{"limits":{"memory":"256Mi"}}` {
		t.Errorf("webhook ConfigMap data = %v", data)
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef.Name != cm.Name {
			t.Errorf("env %s reads ConfigMap %s, want %s", e.Name, e.ValueFrom.ConfigMapKeyRef.Name, cm.Name)
		}
	}
	// The policies read the same init image, from their own parameters.
	params := find(t, objs, "ConfigMap", namespace, "secretfetch-policy-params")
	// The previous images, without the current one.
	if data := dig(params.Body, "data").(map[string]any); data["INIT_IMAGE"] != "registry.example.com/init-fetch:v9" || data["ALLOWED_SECRETS_DEFAULT"] != "none" ||
		data["PREVIOUS_INIT_IMAGES"] != "registry.example.com/init-fetch:v8" {
		t.Errorf("policy parameters = %v", data)
	}
	for _, o := range objs {
		if o.Kind == "ValidatingAdmissionPolicyBinding" {
			if got := dig(o.Body, "spec", "paramRef", "name"); got != params.Name {
				t.Errorf("%s paramRef.name = %v, want %s", o.key(), got, params.Name)
			}
		}
	}

	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	into(t, findKind(t, objs, "MutatingWebhookConfiguration"), &mwc)
	wh := mwc.Webhooks[0]
	if *wh.FailurePolicy != admissionregistrationv1.Ignore {
		t.Errorf("failurePolicy = %s", *wh.FailurePolicy)
	}
	sel := wh.NamespaceSelector
	if sel.MatchLabels["team"] != "a" || len(sel.MatchExpressions) != 2 ||
		sel.MatchExpressions[0].Key != "kubernetes.io/metadata.name" || sel.MatchExpressions[0].Values[0] != namespace ||
		sel.MatchExpressions[1].Key != "tier" {
		t.Errorf("namespaceSelector = %+v, want the release namespace excluded and the user's selector added", sel)
	}

	findKind(t, objs, "ServiceMonitor")
	// The metrics port admits only metricsFrom; the webhook port stays open
	// to any source (the API server's address is not portable).
	var np networkingv1.NetworkPolicy
	into(t, findKind(t, objs, "NetworkPolicy"), &np)
	if np.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"] != "secretfetch-webhook" || len(np.Spec.Ingress) != 2 ||
		len(np.Spec.Ingress[0].From) != 0 || np.Spec.Ingress[0].Ports[0].Port.StrVal != "webhook" ||
		len(np.Spec.Ingress[1].From) != 1 || np.Spec.Ingress[1].Ports[0].Port.StrVal != "metrics" {
		t.Errorf("NetworkPolicy spec = %+v, want the webhook port from anywhere and metrics from metricsFrom", np.Spec)
	}
	off := helmTemplate(t, helm, "--set", "networkPolicy.enabled=false")
	if slices.ContainsFunc(off, func(o object) bool { return o.Kind == "NetworkPolicy" }) {
		t.Error("networkPolicy.enabled=false still renders one")
	}
	if slices.ContainsFunc(objs, func(o object) bool { return o.Kind == "PodDisruptionBudget" }) {
		t.Error("podDisruptionBudget.enabled=false still renders one")
	}
}

// TestProvidedTLS: with an existing Secret, the chart makes no Secret,
// mounts the given one, and puts the given CA into the caBundle.
func TestProvidedTLS(t *testing.T) {
	helm := findHelm(t)
	b, err := pki.New(pki.Options{DNSNames: []string{serviceDNS}})
	if err != nil {
		t.Fatal(err)
	}
	values := filepath.Join(t.TempDir(), "values.yaml")
	v, err := yaml.Marshal(map[string]any{"tls": map[string]any{"existingSecret": "my-tls", "caBundle": string(b.CACert)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(values, v, 0o600); err != nil {
		t.Fatal(err)
	}
	objs := helmTemplate(t, helm, "-f", values)
	if slices.ContainsFunc(objs, func(o object) bool { return o.Kind == "Secret" }) {
		t.Error("the chart renders a Secret although tls.existingSecret is set")
	}
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	into(t, findKind(t, objs, "MutatingWebhookConfiguration"), &mwc)
	if !bytes.Equal(mwc.Webhooks[0].ClientConfig.CABundle, b.CACert) {
		t.Error("caBundle is not tls.caBundle")
	}
	var dep appsv1.Deployment
	into(t, findKind(t, objs, "Deployment"), &dep)
	if got := dep.Spec.Template.Spec.Volumes[0].Secret.SecretName; got != "my-tls" {
		t.Errorf("mounted Secret = %q, want my-tls", got)
	}

	// Two sources for one certificate is a mistake, not a choice.
	_, err = run(t.Context(), helm, templateArgs("-f", values, "--set", "certManager.enabled=true")...)
	if err == nil || !strings.Contains(err.Error(), "set one") {
		t.Errorf("existingSecret with certManager: err = %v, want one saying to set one", err)
	}

	// Without the CA, the API server could not trust the webhook.
	_, err = run(t.Context(), helm, templateArgs("--set", "tls.existingSecret=my-tls")...)
	if err == nil || !strings.Contains(err.Error(), "tls.caBundle") {
		t.Errorf("existingSecret without caBundle: err = %v, want one naming tls.caBundle", err)
	}
}

// configName is the name of the webhook's ConfigMap, which carries a hash.
func configName(t *testing.T, objs []object) string {
	t.Helper()
	for _, o := range objs {
		if o.Kind == "ConfigMap" && strings.HasPrefix(o.Name, "secretfetch-webhook-config-") {
			return o.Name
		}
	}
	t.Fatal("no secretfetch-webhook-config-<hash> ConfigMap rendered")
	return ""
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
