package charts_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
)

// policyTemplates are the chart's copies of manifests/policy: the same text,
// with the chart's labels and the release namespace in paramRef, rendered
// only with mode: policy. The inject template also refuses what the mode
// cannot honour (secretfetch.checkPolicyMode).
var policyTemplates = []struct {
	manifest, template string
	check              bool
}{
	{"mutating-policy.yaml", "policy-inject.yaml", true},
	{"policy-checks.yaml", "policy-checks.yaml", false},
}

// policyTemplate derives a chart template from a manifest of
// manifests/policy.
func policyTemplate(src []byte, check bool) ([]byte, error) {
	if bytes.Contains(src, []byte("{{")) {
		return nil, fmt.Errorf("it holds {{, which Helm would read as a template action")
	}
	const (
		labels      = "  labels:\n    app.kubernetes.io/name: secretfetch-policy\n"
		chartLabels = labels + "    {{- include \"secretfetch.labels\" . | nindent 4 }}\n"
		ns          = "    namespace: secretfetch-system\n"
		chartNS     = "    namespace: {{ .Release.Namespace }}\n"
	)
	// The policy and its binding each have the labels; the binding has
	// the paramRef.
	if n := bytes.Count(src, []byte(labels)); n != 2 {
		return nil, fmt.Errorf("it has %d blocks of labels that are exactly app.kubernetes.io/name: secretfetch-policy; want 2 (the policy's and its binding's)", n)
	}
	if n := bytes.Count(src, []byte(ns)); n != 1 {
		return nil, fmt.Errorf("it has %d lines %q; want 1 (the binding's paramRef)", n, strings.TrimSpace(ns))
	}
	out := bytes.ReplaceAll(src, []byte(labels), []byte(chartLabels))
	out = bytes.ReplaceAll(out, []byte(ns), []byte(chartNS))
	head := "{{- if eq .Values.mode \"policy\" }}\n"
	if check {
		head += "{{- include \"secretfetch.checkPolicyMode\" . }}\n"
	}
	return slices.Concat([]byte(head), bytes.TrimRight(out, "\n"), []byte("\n{{- end }}\n")), nil
}

// TestPolicyTemplates keeps the chart's policy templates the text of
// manifests/policy (comments included); -update rewrites them from it.
// TestOneTruthPolicy then compares what the two render.
func TestPolicyTemplates(t *testing.T) {
	for _, p := range policyTemplates {
		t.Run(p.template, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join("..", "manifests", "policy", p.manifest))
			if err != nil {
				t.Fatal(err)
			}
			want, err := policyTemplate(src, p.check)
			if err != nil {
				t.Fatalf("manifests/policy/%s: %v", p.manifest, err)
			}
			path := filepath.Join(chartDir, "templates", p.template)
			if *update {
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s is not manifests/policy/%s (-want +got; run with -update to copy it):\n%s", path, p.manifest, diff)
			}
		})
	}
}

// TestOneTruthPolicy does the same for the policy mode: the chart with
// mode: policy renders manifests/overlays/policy, object by object.
func TestOneTruthPolicy(t *testing.T) {
	helm, kubectl := findHelm(t), findKubectl(t)
	chart := helmTemplate(t, helm, policyArgs()...)
	overlay := kustomize(t, kubectl, filepath.Join("..", "manifests", "overlays", "policy"))
	sameObjects(t, chart, overlay, allowed{
		onlyBase: map[string]string{
			"Namespace /" + namespace: "created before helm install",
		},
		// kustomize (kyaml, v5.5 and v5.8 alike) writes a folded (>-)
		// scalar back with a blank line before each more-indented line, so
		// the expressions it renders gain a newline there that the source
		// (and the chart, which copies the source) does not have. CEL skips
		// the whitespace; the comparison does too, there and only there.
		foldedBlankLines: true,
	})
}

// TestPolicyMode: mode: policy renders the policies, their parameters and
// nothing of the webhook's server, whatever the server's values say; the
// settings reach the parameters; the bindings follow the release namespace.
func TestPolicyMode(t *testing.T) {
	helm := findHelm(t)
	const ns = "team-secrets"
	objs := helmTemplate(t, helm, policyArgs(
		"--namespace", ns,
		"--set", "initImage.digest="+digest,
		"--set", "config.defaultRegion=eu-west-1",
		"--set", "config.defaultFailoverRegion=eu-central-1",
		"--set", "config.secretsManagerEndpoint=https://vpce-1.secretsmanager.eu-west-1.vpce.amazonaws.com",
		"--set", "config.stsEndpoint=https://sts.eu-west-1.amazonaws.com",
		"--set", "config.volumeSizeLimit=4Mi",
		"--set", "config.minRefreshInterval=30s",
		"--set", "config.refreshRestartWindow=5m",
		"--set", "config.refreshRestartSpacing=1h",
		"--set", "policies.allowedSecrets.default=none",
		// The server's values render nothing in this mode.
		"--set", "metrics.serviceMonitor.enabled=true",
		"--set", "certManager.enabled=true",
		"--set", "networkPolicy.enabled=true",
		"--set", "podDisruptionBudget.enabled=true",
		"--set", "serviceAccount.create=true",
	)...)

	var got []string
	for _, o := range objs {
		got = append(got, o.key())
	}
	slices.Sort(got)
	want := []string{
		"ConfigMap " + ns + "/secretfetch-policy-params",
		"MutatingAdmissionPolicy /secretfetch-inject",
		"MutatingAdmissionPolicyBinding /secretfetch-inject",
		"ValidatingAdmissionPolicy /secretfetch-allowed-secrets",
		"ValidatingAdmissionPolicy /secretfetch-injected",
		"ValidatingAdmissionPolicy /secretfetch-policy-checks",
		"ValidatingAdmissionPolicyBinding /secretfetch-allowed-secrets",
		"ValidatingAdmissionPolicyBinding /secretfetch-injected",
		"ValidatingAdmissionPolicyBinding /secretfetch-policy-checks",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mode: policy renders other objects (-want +got):\n%s", diff)
	}

	params := find(t, objs, "ConfigMap", ns, "secretfetch-policy-params")
	wantData := map[string]any{
		"MODE":                    "policy",
		"INIT_IMAGE":              "ghcr.io/secretfetch/init-fetch@" + digest,
		"PREVIOUS_INIT_IMAGES":    "",
		"ALLOWED_SECRETS_DEFAULT": "none",
		"DEFAULT_REGION":          "eu-west-1",
		"DEFAULT_FAILOVER_REGION": "eu-central-1",
		"SECRETSMANAGER_ENDPOINT": "https://vpce-1.secretsmanager.eu-west-1.vpce.amazonaws.com",
		"STS_ENDPOINT":            "https://sts.eu-west-1.amazonaws.com",
		"VOLUME_SIZE_LIMIT":       "4Mi",
		"MIN_REFRESH_INTERVAL":    "30s",
		"REFRESH_RESTART_WINDOW":  "5m",
		"REFRESH_RESTART_SPACING": "1h",
	}
	if diff := cmp.Diff(wantData, dig(params.Body, "data")); diff != "" {
		t.Errorf("secretfetch-policy-params data (-want +got):\n%s", diff)
	}

	// Every binding reads those parameters, in the release namespace.
	var mpb admissionregistrationv1.MutatingAdmissionPolicyBinding
	into(t, findKind(t, objs, "MutatingAdmissionPolicyBinding"), &mpb)
	refs := map[string]*admissionregistrationv1.ParamRef{mpb.Name: mpb.Spec.ParamRef}
	for _, o := range objs {
		if o.Kind == "ValidatingAdmissionPolicyBinding" {
			var b admissionregistrationv1.ValidatingAdmissionPolicyBinding
			into(t, o, &b)
			refs[o.key()] = b.Spec.ParamRef
		}
	}
	for key, ref := range refs {
		if ref == nil || ref.Name != params.Name || ref.Namespace != ns {
			t.Errorf("%s paramRef = %+v, want %s in %s", key, ref, params.Name, ns)
		}
	}
	var mp admissionregistrationv1.MutatingAdmissionPolicy
	into(t, findKind(t, objs, "MutatingAdmissionPolicy"), &mp)
	if mp.Spec.ParamKind == nil || mp.Spec.ParamKind.Kind != "ConfigMap" || len(mp.Spec.Mutations) == 0 {
		t.Errorf("MutatingAdmissionPolicy spec: paramKind %+v, %d mutations", mp.Spec.ParamKind, len(mp.Spec.Mutations))
	}

	// The validating policies of both modes keep their switches; the
	// policy mode's own two objects and the parameters stay.
	off := helmTemplate(t, helm, policyArgs("--set", "policies.injected.enabled=false", "--set", "policies.allowedSecrets.enabled=false")...)
	got = got[:0]
	for _, o := range off {
		got = append(got, o.Kind+"/"+o.Name)
	}
	slices.Sort(got)
	want = []string{
		"ConfigMap/secretfetch-policy-params",
		"MutatingAdmissionPolicy/secretfetch-inject",
		"MutatingAdmissionPolicyBinding/secretfetch-inject",
		"ValidatingAdmissionPolicy/secretfetch-policy-checks",
		"ValidatingAdmissionPolicyBinding/secretfetch-policy-checks",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mode: policy with policies.*.enabled=false (-want +got):\n%s", diff)
	}
}

// TestPolicyModeRefuses: what the policy mode cannot honour fails the
// install with an error naming the value, rather than being ignored.
func TestPolicyModeRefuses(t *testing.T) {
	helm := findHelm(t)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"a cluster older than 1.36", []string{"--kube-version", "v1.35.2"}, []string{"mode: policy", "1.36", "v1.35.2"}},
		{"init container resources", []string{"--set", "config.initResources.limits.memory=128Mi"}, []string{"config.initResources", "mode: policy"}},
		{"env files denied", []string{"--set", "config.envFiles=false"}, []string{"config.envFiles", "mode: policy"}},
		{"restart on change denied", []string{"--set-string", "config.refreshRestart=false"}, []string{"config.refreshRestart", "mode: policy"}},
		{"failover endpoint", []string{"--set", "config.failoverSecretsManagerEndpoint=https://secretsmanager.us-west-2.amazonaws.com"}, []string{"config.failoverSecretsManagerEndpoint", "mode: policy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := run(t.Context(), helm, templateArgs(policyArgs(tt.args...)...)...)
			if err == nil {
				t.Fatalf("%v rendered; want an error", tt.args)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v: the error does not name %q: %v", tt.args, w, err)
				}
			}
		})
	}
	// The webhook mode takes them all.
	if _, err := run(t.Context(), helm, templateArgs("--set", "config.initResources.limits.memory=128Mi", "--set", "config.envFiles=false", "--set-string", "config.refreshRestart=false")...); err != nil {
		t.Errorf("mode: webhook: %v", err)
	}
}
