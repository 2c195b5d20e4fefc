package offline

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/secretfetch/secretfetch/internal/grammar"
	"github.com/secretfetch/secretfetch/internal/mutate"
	"github.com/secretfetch/secretfetch/internal/plan"
)

// mutateCases are the webhook's golden cases: in.yaml, the pod; want.yaml,
// the mutated pod, or error.txt, the problems one a line; config.json, the
// webhook's settings when not the default.
const mutateCases = "../mutate/testdata"

// defaultConfig is the settings of the webhook's golden tests.
var defaultConfig = mutate.Config{InitImage: "secretfetch.local/init-fetch:dev", DefaultRegion: "us-east-1"}

// TestThreeDoors holds the three doors to the webhook's golden answers:
// render prints the pod the webhook's patch makes, or its problems in its
// words; and the grammar alone, as init-fetch runs it in the policy mode
// from the pod's annotations and container names, finds the same plan, or
// only problems the webhook reports too (the webhook adds those of the pod
// spec), in the same order.
func TestThreeDoors(t *testing.T) {
	ins, err := filepath.Glob(filepath.Join(mutateCases, "*", "in.yaml"))
	if err != nil || len(ins) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, in := range ins {
		dir := filepath.Dir(in)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			cfg := caseConfig(t, dir)
			manifest, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			r := &Renderer{Config: cfg}
			res, err := r.Render(manifest, "in.yaml")
			if err != nil {
				t.Fatal(err)
			}
			pod := readPod(t, manifest)
			want, wantErr := os.ReadFile(filepath.Join(dir, "error.txt"))
			if wantErr == nil {
				var got []string
				for _, p := range res.Problems {
					got = append(got, p.Err.Error())
				}
				if diff := cmp.Diff(string(want), strings.Join(got, "\n")+"\n"); diff != "" {
					t.Errorf("render's problems (-webhook +render):\n%s", diff)
				}
				checkGrammarProblems(t, pod, cfg, strings.Split(strings.TrimSuffix(string(want), "\n"), "\n"))
				return
			}
			if len(res.Problems) > 0 || len(res.Documents) != 1 {
				t.Fatalf("render: %d documents, problems %v; want the mutated pod", len(res.Documents), res.Problems)
			}
			wantYAML, err := os.ReadFile(filepath.Join(dir, "want.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			wantPod := readPod(t, wantYAML)
			if diff := cmp.Diff(wantPod, readPod(t, res.Documents[0])); diff != "" {
				t.Errorf("render's pod (-webhook +render):\n%s", diff)
			}
			if ok, _ := mutate.Requested(pod); ok {
				checkGrammarPlan(t, pod, cfg, wantPod)
			}
		})
	}
}

// checkGrammarPlan: the plan init-fetch would build from the annotations
// is the one the webhook encoded into the init container.
func checkGrammarPlan(t *testing.T, pod *corev1.Pod, cfg mutate.Config, mutated *corev1.Pod) {
	t.Helper()
	res, problems := grammar.Parse(grammarInput(pod), grammarSettings(cfg), nil)
	if len(problems) > 0 {
		t.Fatalf("the grammar alone finds problems the webhook does not: %v", problems)
	}
	var encoded string
	for _, c := range mutated.Spec.InitContainers {
		if c.Name == mutate.InitContainerName {
			for _, e := range c.Env {
				if e.Name == plan.EnvVar {
					encoded = e.Value
				}
			}
		}
	}
	if encoded != res.Encoded {
		t.Errorf("the grammar's plan differs from the webhook's:\n grammar %s\n webhook %s", res.Encoded, encoded)
	}
}

// checkGrammarProblems: what the grammar alone finds, the webhook reports
// too, in the same order.
func checkGrammarProblems(t *testing.T, pod *corev1.Pod, cfg mutate.Config, webhook []string) {
	t.Helper()
	var got []string
	if ok, perr := grammar.Requested(pod.Annotations); perr != nil {
		got = append(got, perr.Error())
	} else if ok {
		_, problems := grammar.Parse(grammarInput(pod), grammarSettings(cfg), nil)
		for _, p := range problems {
			got = append(got, p.Error())
		}
	}
	i := 0
	for _, p := range got {
		j := slices.Index(webhook[i:], p)
		if j < 0 {
			t.Errorf("the grammar alone reports a problem the webhook does not (or out of order): %s", p)
			return
		}
		i += j + 1
	}
}

func grammarInput(pod *corev1.Pod) grammar.Input {
	in := grammar.Input{Annotations: pod.Annotations}
	for _, c := range pod.Spec.Containers {
		in.Containers = append(in.Containers, c.Name)
	}
	for _, c := range pod.Spec.InitContainers {
		in.InitContainers = append(in.InitContainers, c.Name)
	}
	return in
}

// grammarSettings are the grammar's settings for the webhook's: what
// init-fetch reads from the policy's parameters.
func grammarSettings(cfg mutate.Config) grammar.Settings {
	s := grammar.Settings{DefaultRegion: cfg.DefaultRegion}
	for _, o := range cfg.ParseOptions() {
		o(&s)
	}
	return s
}

func caseConfig(t *testing.T, dir string) mutate.Config {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if os.IsNotExist(err) {
		return defaultConfig
	}
	if err != nil {
		t.Fatal(err)
	}
	var cfg mutate.Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("reading %s/config.json: %v", dir, err)
	}
	return cfg
}

func readPod(t *testing.T, y []byte) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{}
	if err := yaml.UnmarshalStrict(y, pod); err != nil {
		t.Fatalf("reading a pod: %v", err)
	}
	return pod
}
