// Package offline is the secretfetch command: `secretfetch render` prints
// what the webhook, or the policy, would do to the pod templates of a
// manifest, or why it would deny them, with no cluster. It is the check a
// GitOps pipeline runs in review.
//
// It runs the webhook's own code on each pod template: mutate.Requested,
// mutate.Parse (the grammar package and the pod-spec checks) and
// mutate.Apply. The mutation reaches the manifest the way the webhook's
// reaches the API server, as a patch of the template as written, so
// everything the manifest says and the mutation does not touch is kept.
package offline

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/secretfetch/secretfetch/internal/mutate"
)

// Renderer renders manifests with one configuration of the webhook.
type Renderer struct {
	// Config is the webhook's settings (its flags), as the cluster's
	// version leaves them (see Options).
	Config mutate.Config
}

// Problem is one reason a pod template would be denied.
type Problem struct {
	// Source names the document: the file and the document's number in
	// it (from 1), its kind, namespace and name.
	Source string
	// Err is the problem, with the webhook's text.
	Err *field.Error
}

func (p Problem) String() string { return p.Source + ": " + p.Err.Error() }

// Result is what Render made of a manifest.
type Result struct {
	// Documents are the documents in order: the mutated ones as YAML, the
	// others as they were written. A denied document is left out.
	Documents [][]byte
	// Mutated counts the pod templates the mutation changed.
	Mutated int
	// Problems are every problem of every denied template.
	Problems []Problem
}

// maxDocuments bounds the documents of one manifest.
const maxDocuments = 10000

// Render reads a multi-document YAML manifest (file names it in problems)
// and runs the mutation on every pod template in it. An error is a
// manifest it cannot read; a pod's problems are in the Result.
func (r *Renderer) Render(manifest []byte, file string) (*Result, error) {
	res := &Result{}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(manifest)))
	for i := 0; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return res, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: document %d: %w", file, i+1, err)
		}
		if i >= maxDocuments {
			return nil, fmt.Errorf("reading %s: more than %d documents", file, maxDocuments)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		out, mutated, problems, err := r.document(doc, fmt.Sprintf("%s#%d", file, i+1))
		if err != nil {
			return nil, fmt.Errorf("reading %s: document %d: %w", file, i+1, err)
		}
		if mutated {
			res.Mutated++
		}
		res.Problems = append(res.Problems, problems...)
		if len(problems) == 0 {
			res.Documents = append(res.Documents, out)
		}
	}
}

// stripComments drops the comment lines of a document, to tell an empty one.
func stripComments(doc []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out = append(append(out, line...), '\n')
		}
	}
	return out
}

// document renders one document: unchanged unless it holds a pod template
// that opts in (a v1 List's items included).
func (r *Renderer) document(doc []byte, source string) (out []byte, mutated bool, problems []Problem, err error) {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, false, nil, err
	}
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber() // keep integers as they were written
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return doc, false, nil, nil // a scalar or a list: not a Kubernetes object
	}
	if obj["apiVersion"] == "v1" && obj["kind"] == "List" {
		items, _ := obj["items"].([]any)
		for i, item := range items {
			if o, ok := item.(map[string]any); ok {
				changed, p, err := r.object(o, fmt.Sprintf("%s items[%d]", source, i))
				if err != nil {
					return nil, false, nil, err
				}
				mutated, problems = mutated || changed, append(problems, p...)
			}
		}
	} else if mutated, problems, err = r.object(obj, source); err != nil {
		return nil, false, nil, err
	}
	if len(problems) > 0 || !mutated {
		return doc, false, problems, nil
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, false, nil, err
	}
	y, err := yaml.JSONToYAML(b)
	if err != nil {
		return nil, false, nil, err
	}
	return y, true, nil, nil
}

// object mutates the pod template of one object in place, and reports
// whether it changed it, or the template's problems.
func (r *Renderer) object(obj map[string]any, source string) (bool, []Problem, error) {
	kind, _ := obj["kind"].(string)
	apiVersion, _ := obj["apiVersion"].(string)
	path, ok := templatePath(apiVersion, kind)
	if !ok {
		return false, nil, nil
	}
	template, ok := lookup(obj, path)
	if !ok {
		return false, nil, nil
	}
	patched, changed, errs, err := r.template(template)
	if err != nil {
		return false, nil, err
	}
	if len(errs) > 0 {
		source += " " + kind + " " + objectName(obj)
		problems := make([]Problem, len(errs))
		for i, e := range errs {
			problems[i] = Problem{Source: source, Err: e}
		}
		return false, problems, nil
	}
	if changed {
		set(obj, path, patched)
	}
	return changed, nil, nil
}

// template mutates one pod template ({metadata, spec}, or a Pod) as the
// webhook would mutate a pod made from it: the new template, whether the
// mutation changed it, or the problems.
func (r *Renderer) template(template map[string]any) (map[string]any, bool, field.ErrorList, error) {
	raw, err := json.Marshal(template)
	if err != nil {
		return nil, false, nil, err
	}
	pod := &corev1.Pod{}
	// As the API server decodes a pod: field names match case-sensitively.
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, pod); err != nil {
		return nil, false, nil, fmt.Errorf("decoding the pod template: %w", err)
	}
	requested, ferr := mutate.Requested(pod)
	if ferr != nil {
		return nil, false, field.ErrorList{ferr}, nil
	}
	if !requested {
		return template, false, nil, nil
	}
	before, err := json.Marshal(pod)
	if err != nil {
		return nil, false, nil, err
	}
	inj, errs := mutate.Parse(pod, r.Config.DefaultRegion, r.Config.ParseOptions()...)
	if len(errs) > 0 {
		return nil, false, errs, nil
	}
	if err := mutate.Apply(pod, inj, r.Config); err != nil {
		return nil, false, nil, fmt.Errorf("mutating the pod template: %w", err)
	}
	after, err := json.Marshal(pod)
	if err != nil {
		return nil, false, nil, err
	}
	// The change from the typed pod before the mutation to the one after,
	// as a strategic merge patch (lists merged by their keys: containers
	// and volumes by name, mounts by path), applied to the template as
	// written. Both sides carry what encoding a typed pod adds
	// (creationTimestamp, resources: {}), so the patch holds only what the
	// mutation did, and the rest of the template is kept as it was.
	patch, err := strategicpatch.CreateTwoWayMergePatch(before, after, corev1.Pod{})
	if err != nil {
		return nil, false, nil, fmt.Errorf("computing the patch: %w", err)
	}
	if string(patch) == "{}" {
		return template, false, nil, nil
	}
	patchedJSON, err := strategicpatch.StrategicMergePatch(raw, patch, corev1.Pod{})
	if err != nil {
		return nil, false, nil, fmt.Errorf("applying the patch: %w", err)
	}
	var patched map[string]any
	dec := json.NewDecoder(bytes.NewReader(patchedJSON))
	dec.UseNumber()
	if err := dec.Decode(&patched); err != nil {
		return nil, false, nil, err
	}
	return patched, true, nil, nil
}

// templatePath is where a kind keeps its pod template; ok is false for a
// kind that has none.
func templatePath(apiVersion, kind string) ([]string, bool) {
	group, _, _ := strings.Cut(apiVersion, "/")
	if !strings.Contains(apiVersion, "/") {
		group = ""
	}
	switch {
	case group == "" && kind == "Pod":
		return nil, true
	case group == "" && kind == "ReplicationController",
		group == "apps" && (kind == "Deployment" || kind == "StatefulSet" || kind == "DaemonSet" || kind == "ReplicaSet"),
		group == "batch" && kind == "Job":
		return []string{"spec", "template"}, true
	case group == "batch" && kind == "CronJob":
		return []string{"spec", "jobTemplate", "spec", "template"}, true
	}
	return nil, false
}

func lookup(obj map[string]any, path []string) (map[string]any, bool) {
	cur := obj
	for _, k := range path {
		next, ok := cur[k].(map[string]any)
		if !ok {
			return nil, false
		}
		cur = next
	}
	return cur, true
}

// set puts v at path; lookup has found the path.
func set(obj map[string]any, path []string, v map[string]any) {
	if len(path) == 0 {
		clear(obj)
		for k, x := range v {
			obj[k] = x
		}
		return
	}
	cur := obj
	for _, k := range path[:len(path)-1] {
		cur = cur[k].(map[string]any)
	}
	cur[path[len(path)-1]] = v
}

// objectName is "namespace/name" or "name".
func objectName(obj map[string]any) string {
	md, _ := obj["metadata"].(map[string]any)
	name, _ := md["name"].(string)
	if ns, _ := md["namespace"].(string); ns != "" {
		return ns + "/" + name
	}
	return name
}
