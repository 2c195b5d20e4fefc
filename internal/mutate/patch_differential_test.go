package mutate

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/google/go-cmp/cmp"
)

var patchCorpus = flag.String("patch-corpus", "testdata/fuzz/FuzzHandler",
	"FuzzHandler corpus that TestPatchDifferential runs; give $(go env GOCACHE)/fuzz/github.com/secretfetch/secretfetch/internal/mutate/FuzzHandler for the generated one")

// TestPatchDifferential holds buildPatch to referencePatch, the whole-view
// diff it replaced, over FuzzHandler's corpus (its seeds, its edits and the
// files under -patch-corpus) and every golden case: both patches, applied to
// the pod's JSON, give the same pod, and that pod is the one Apply makes.
func TestPatchDifferential(t *testing.T) {
	n := 0
	for _, in := range fuzzHandlerInputs(t) {
		n += checkPatchDifferential(t, in.data, in.shape, in.edit)
	}
	ins, _ := filepath.Glob("testdata/*/in.yaml")
	for _, in := range ins {
		dir := filepath.Dir(in)
		_, raw := readPod(t, in)
		n += checkPatchDifferentialRaw(t, filepath.Base(dir), raw, caseConfig(t, dir))
	}
	if n == 0 {
		t.Fatal("no input was mutated; the test compared nothing")
	}
	t.Logf("%d mutated pods compared", n)
}

// FuzzPatchDifferential: the same check for the inputs that FuzzHandler
// takes.
//
//	go test -run '^$' -fuzz '^FuzzPatchDifferential$' -fuzztime 2m ./internal/mutate
func FuzzPatchDifferential(f *testing.F) {
	for _, in := range fuzzHandlerInputs(f) {
		f.Add(in.data, in.shape, in.edit)
	}
	f.Fuzz(func(t *testing.T, data string, shape uint8, edit string) {
		checkPatchDifferential(t, data, shape, edit)
	})
}

type fuzzHandlerInput struct {
	data  string
	shape uint8
	edit  string
}

// fuzzHandlerInputs are FuzzHandler's seeds and the corpus files under
// -patch-corpus.
func fuzzHandlerInputs(t testing.TB) []fuzzHandlerInput {
	t.Helper()
	var ins []fuzzHandlerInput
	for _, s := range fuzzSeeds {
		ins = append(ins, fuzzHandlerInput{s.data, s.shape, ""})
		for _, edit := range fuzzEdits {
			ins = append(ins, fuzzHandlerInput{s.data, s.shape, edit}, fuzzHandlerInput{s.data, s.shape | 2, edit})
		}
	}
	files, err := filepath.Glob(filepath.Join(*patchCorpus, "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		in, ok := parseCorpusFile(string(b))
		if !ok {
			t.Fatalf("%s: not a FuzzHandler corpus file (string, byte, string)", file)
		}
		ins = append(ins, in)
	}
	return ins
}

// parseCorpusFile reads a "go test fuzz v1" file of FuzzHandler: a string,
// a byte (or uint8) and a string.
func parseCorpusFile(s string) (fuzzHandlerInput, bool) {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) != 4 || lines[0] != "go test fuzz v1" {
		return fuzzHandlerInput{}, false
	}
	str := func(l string) (string, bool) {
		inner, ok := strings.CutPrefix(l, "string(")
		if !ok || !strings.HasSuffix(inner, ")") {
			return "", false
		}
		v, err := strconv.Unquote(strings.TrimSuffix(inner, ")"))
		return v, err == nil
	}
	data, ok1 := str(lines[1])
	edit, ok2 := str(lines[3])
	var shape uint8
	ok3 := false
	if inner, ok := strings.CutPrefix(lines[2], "byte("); ok {
		if v, _, tail, err := strconv.UnquoteChar(strings.TrimSuffix(strings.TrimPrefix(inner, "'"), "')"), '\''); err == nil && tail == "" && v < 256 {
			shape, ok3 = uint8(v), true
		}
	} else if inner, ok := strings.CutPrefix(lines[2], "uint8("); ok {
		if v, err := strconv.ParseUint(strings.TrimSuffix(inner, ")"), 0, 8); err == nil {
			shape, ok3 = uint8(v), true
		}
	}
	return fuzzHandlerInput{data, shape, edit}, ok1 && ok2 && ok3
}

// checkPatchDifferential builds FuzzHandler's pod for the input and checks
// it; it returns 1 if the pod was mutated, 0 if it was skipped or denied.
func checkPatchDifferential(t *testing.T, data string, shape uint8, edit string) int {
	t.Helper()
	raw, err := json.Marshal(fuzzPod(shape, fuzzAnnotations(data)))
	if err != nil {
		t.Fatal(err)
	}
	if edit != "" {
		p, err := jsonpatch.DecodePatch([]byte(edit))
		if err != nil {
			return 0
		}
		opts := jsonpatch.NewApplyOptions()
		opts.AccumulatedCopySizeLimit = maxFuzzEdit
		if raw, err = p.ApplyWithOptions(raw, opts); err != nil || len(raw) > maxFuzzEdit<<2 {
			return 0
		}
		// What the API server would send: the encoding of the decoded pod.
		pod, err := decodePod(raw)
		if err != nil {
			return 0
		}
		if raw, err = json.Marshal(pod); err != nil {
			t.Fatal(err)
		}
	}
	return checkPatchDifferentialRaw(t, "", raw, fuzzConfig(shape))
}

func checkPatchDifferentialRaw(t *testing.T, name string, raw []byte, cfg Config) int {
	t.Helper()
	pod, err := decodePod(raw)
	if err != nil {
		return 0
	}
	arrived := pod.Namespace
	if pod.Namespace == "" {
		pod.Namespace = "shop" // as the handler does, from the request
	}
	if requested, ferr := Requested(pod); ferr != nil || !requested {
		return 0
	}
	inj, errs := Parse(pod, cfg.DefaultRegion, cfg.parseOptions()...)
	if len(errs) > 0 {
		return 0
	}
	before := newPodView(pod)
	before.Metadata.Namespace = arrived
	snap, err := takeSnapshot(pod, arrived)
	if err != nil {
		t.Fatalf("%s: takeSnapshot: %v", name, err)
	}
	if err := Apply(pod, inj, cfg); err != nil {
		t.Fatalf("%s: Apply: %v", name, err)
	}
	got, ops, err := snap.buildPatch(pod)
	if err != nil {
		t.Fatalf("%s: buildPatch: %v", name, err)
	}
	ref, err := referencePatch(before, pod)
	if err != nil {
		t.Fatalf("%s: referencePatch: %v", name, err)
	}
	if (ops == 0) != (len(ref.Patches) == 0) {
		t.Fatalf("%s: buildPatch made %d operations, the reference %d", name, ops, len(ref.Patches))
	}
	want := raw
	if len(ref.Patches) > 0 {
		refJSON, err := json.Marshal(ref.Patches)
		if err != nil {
			t.Fatal(err)
		}
		want = applyJSONPatch(t, name+": the reference patch", raw, refJSON)
	}
	patched := raw
	if ops > 0 {
		patched = applyJSONPatch(t, name+": buildPatch's patch", raw, got)
	}
	wantPod, gotPod := mustDecodePod(t, want), mustDecodePod(t, patched)
	if diff := cmp.Diff(wantPod, gotPod); diff != "" {
		t.Fatalf("%s: the pods the two patches give differ (-reference +buildPatch):\n%s", name, diff)
	}
	if diff := cmp.Diff(pod, gotPod); diff != "" {
		t.Fatalf("%s: the patched pod is not the mutated pod (-Apply +patched):\n%s", name, diff)
	}
	return 1
}

func applyJSONPatch(t *testing.T, what string, raw, patch []byte) []byte {
	t.Helper()
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		t.Fatalf("%s does not decode: %v", what, err)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("%s does not apply: %v", what, err)
	}
	return out
}
