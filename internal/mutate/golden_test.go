package mutate

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestGolden runs every case under testdata/<case>/: in.yaml is the pod the
// API server sends; want.yaml is the mutated pod, or error.txt the problems
// (one per line) of a denied pod. config.json, when present, replaces the
// webhook settings. Each case is checked three ways: the pure mutation, the
// mutation applied again (idempotence), and the full handler through
// AdmissionReview JSON, whose patch must turn in.yaml into want.yaml.
func TestGolden(t *testing.T) {
	ins, err := filepath.Glob("testdata/*/in.yaml")
	if err != nil || len(ins) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, in := range ins {
		dir := filepath.Dir(in)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			pod, raw := readPod(t, in)
			cfg := caseConfig(t, dir)
			got, errs := mutatePod(t, pod, cfg)
			wantFile, errFile := filepath.Join(dir, "want.yaml"), filepath.Join(dir, "error.txt")

			if *update {
				if errs != nil {
					writeGolden(t, errFile, []byte(errorLines(errs)))
					removeGolden(t, wantFile)
				} else {
					writeGolden(t, wantFile, podYAML(t, got))
					removeGolden(t, errFile)
				}
			}

			wh := newWebhook(t, cfg, nil)
			resp := serve(t, wh, review(t, raw, admissionv1.Create, pod.Namespace, false))

			if _, err := os.Stat(errFile); err == nil {
				wantErr, _ := os.ReadFile(errFile)
				if errs == nil {
					t.Fatalf("the pod was mutated, want denied with:\n%s", wantErr)
				}
				if diff := cmp.Diff(string(wantErr), errorLines(errs)); diff != "" {
					t.Errorf("problems (-want +got):\n%s", diff)
				}
				if resp.Allowed || resp.Result == nil || resp.Result.Code != 403 {
					t.Fatalf("handler: allowed=%v result=%+v, want a 403 denial", resp.Allowed, resp.Result)
				}
				if want := "secretfetch: " + errs.ToAggregate().Error(); resp.Result.Message != want {
					t.Errorf("denial message:\n got %s\nwant %s", resp.Result.Message, want)
				}
				if resp.Result.Details == nil || len(resp.Result.Details.Causes) != len(errs) {
					t.Errorf("denial causes = %+v, want one per problem (%d)", resp.Result.Details, len(errs))
				}
				return
			}

			if errs != nil {
				t.Fatalf("denied, want mutated:\n%s", errorLines(errs))
			}
			want, _ := readPod(t, wantFile)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("mutation (-want +got):\n%s", diff)
			}

			again, errs := mutatePod(t, want, cfg)
			if errs != nil {
				t.Fatalf("mutating want.yaml again: denied:\n%s", errorLines(errs))
			}
			if diff := cmp.Diff(want, again); diff != "" {
				t.Errorf("the mutation is not idempotent (-want +got):\n%s", diff)
			}

			if !resp.Allowed {
				t.Fatalf("handler denied: %+v", resp.Result)
			}
			patched := mustDecodePod(t, applyPatch(t, raw, resp))
			if diff := cmp.Diff(want, patched); diff != "" {
				t.Errorf("handler patch applied to in.yaml (-want +got):\n%s", diff)
			}

			if _, injected := want.Annotations[AnnotationStatus]; injected {
				if v := restrictedViolations(t, want); len(v) > 0 {
					t.Errorf("the init container breaks the restricted Pod Security Standard: %v", v)
				}
				if _, refresh := want.Annotations[AnnotationRefreshInterval]; refresh {
					checkRefreshSidecar(t, want)
				}
				if want.Spec.InitContainers[0].Name != InitContainerName && !strings.HasPrefix(filepath.Base(dir), "reinvocation") {
					t.Errorf("the first init container is %q, want %q", want.Spec.InitContainers[0].Name, InitContainerName)
				}
			}
		})
	}
}

func writeGolden(t *testing.T, file string, b []byte) {
	t.Helper()
	if old, err := os.ReadFile(file); err == nil && bytes.Equal(old, b) {
		return
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func removeGolden(t *testing.T, file string) {
	t.Helper()
	if err := os.Remove(file); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
}
