package charts_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

const (
	chartDir  = "secretfetch"
	release   = "secretfetch"
	namespace = "secretfetch-system"
	// kubeVersion is the cluster version the renders assume: Helm's default
	// depends on how the binary was built (a plain go build of Helm 3 says
	// v1.20, which the chart's kubeVersion >= 1.30 refuses).
	kubeVersion = "v1.33.0"
)

// policyKubeVersion is the cluster version that renders of mode: policy
// assume: MutatingAdmissionPolicy is GA from 1.36, and the chart refuses
// the mode below it.
const policyKubeVersion = "v1.36.0"

// policyArgs are the extra arguments of a mode: policy render (after
// templateArgs' own --kube-version, which the later one overrides).
func policyArgs(extra ...string) []string {
	return slices.Concat([]string{"--set", "mode=policy", "--kube-version", policyKubeVersion}, extra)
}

// templateArgs is `helm template` as `helm install -n secretfetch-system`
// would render, plus extra arguments (-f, --set).
func templateArgs(extra ...string) []string {
	return slices.Concat([]string{"template", release, chartDir, "--namespace", namespace, "--kube-version", kubeVersion}, extra)
}

// helmLabels are the labels that the chart adds and the kustomize base does
// not: Helm's own bookkeeping.
var helmLabels = []string{
	"helm.sh/chart",
	"app.kubernetes.io/managed-by",
	"app.kubernetes.io/instance",
	"app.kubernetes.io/version",
}

// object is one rendered document, decoded generically so that two renders
// compare field by field whatever the kind.
type object struct {
	Kind, Namespace, Name string
	Body                  map[string]any
	doc                   []byte
}

func (o object) key() string { return o.Kind + " " + o.Namespace + "/" + o.Name }

func findHelm(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("HELM"); p != "" {
		return p
	}
	t.Skip("HELM is not set; `make chart-test` builds the pinned Helm and runs these tests")
	return ""
}

func findKubectl(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("KUBECTL"); p != "" {
		return p
	}
	p, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not found in PATH (or $KUBECTL); skipping the comparison with the kustomize base")
	}
	return p
}

// run runs a command and returns its stdout; stderr goes into the error.
func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// helmTemplate renders the chart as `helm install -n secretfetch-system`
// would, with the given extra arguments (-f, --set).
func helmTemplate(t *testing.T, helm string, args ...string) []object {
	t.Helper()
	out, err := run(t.Context(), helm, templateArgs(args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return split(t, out)
}

func kustomize(t *testing.T, kubectl, dir string) []object {
	t.Helper()
	out, err := run(t.Context(), kubectl, "kustomize", dir)
	if err != nil {
		t.Fatal(err)
	}
	return split(t, out)
}

// split decodes a YAML stream into objects, in their order.
func split(t *testing.T, stream []byte) []object {
	t.Helper()
	var objs []object
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading the rendered stream: %v", err)
		}
		var body map[string]any
		if err := yaml.Unmarshal(doc, &body); err != nil {
			t.Fatalf("decoding a rendered document: %v\n%s", err, doc)
		}
		if len(body) == 0 {
			continue
		}
		o := object{Body: body, doc: doc}
		o.Kind, _ = body["kind"].(string)
		meta, _ := body["metadata"].(map[string]any)
		o.Name, _ = meta["name"].(string)
		o.Namespace, _ = meta["namespace"].(string)
		if o.Kind == "" || o.Name == "" {
			t.Fatalf("rendered a document without kind or name:\n%s", doc)
		}
		objs = append(objs, o)
	}
	return objs
}

func find(t *testing.T, objs []object, kind, ns, name string) object {
	t.Helper()
	for _, o := range objs {
		if o.Kind == kind && o.Namespace == ns && o.Name == name {
			return o
		}
	}
	t.Fatalf("no %s %s/%s rendered", kind, ns, name)
	return object{}
}

func findKind(t *testing.T, objs []object, kind string) object {
	t.Helper()
	var found []object
	for _, o := range objs {
		if o.Kind == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one %s, rendered %d", kind, len(found))
	}
	return found[0]
}

// into decodes an object into a typed value, rejecting unknown fields.
func into(t *testing.T, o object, out any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(o.doc, out); err != nil {
		t.Fatalf("decoding %s: %v", o.key(), err)
	}
}

// dig returns the value at a path of map keys, or nil.
func dig(m map[string]any, path ...string) any {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[p]
	}
	return v
}
