package mutate

import (
	"encoding/json"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/secretfetch/secretfetch/internal/plan"
)

// fuzzAnnotations decodes a fuzz input into an annotation map: one
// key=value per line. A key without a '/' gets the secretfetch.io/ prefix,
// so that the fuzzer reaches the parser's keys quickly.
func fuzzAnnotations(data string) map[string]string {
	ann := map[string]string{}
	for _, line := range strings.Split(data, "\n") {
		k, v, _ := strings.Cut(line, "=")
		if !strings.Contains(k, "/") {
			k = Prefix + k
		}
		ann[k] = v
	}
	return ann
}

// fuzzPod builds a pod whose shape the bits of shape choose, so that the
// fuzzer also explores the owner rules, init containers and credentials.
func fuzzPod(shape uint8, ann map[string]string) *corev1.Pod {
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "fuzz", Namespace: "shop", Annotations: ann},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{},
			Containers:      []corev1.Container{{Name: "app", Image: "app"}},
		},
	}
	sc := pod.Spec.SecurityContext
	if shape&1 != 0 {
		sc.RunAsUser = ptr.To[int64](1000)
	}
	if shape&2 != 0 {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "sidecar", Image: "s",
			SecurityContext: &corev1.SecurityContext{RunAsUser: ptr.To[int64](2000)},
			VolumeMounts:    []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}})
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: "data"})
	}
	if shape&4 != 0 {
		sc.RunAsUser = ptr.To[int64](0)
	}
	if shape&8 != 0 {
		sc.FSGroup = ptr.To[int64](3000)
	}
	if shape&16 != 0 {
		pod.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: "m"},
			{Name: "proxy", Image: "p", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)}}
	}
	app := &pod.Spec.Containers[0]
	if shape&64 != 0 {
		app.Env = append(app.Env, corev1.EnvVar{Name: "AWS_ROLE_ARN", Value: "arn:aws:iam::111122223333:role/r"},
			corev1.EnvVar{Name: "AWS_WEB_IDENTITY_TOKEN_FILE", Value: "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"},
			corev1.EnvVar{Name: "AWS_REGION", Value: "eu-west-1"})
		app.VolumeMounts = append(app.VolumeMounts, corev1.VolumeMount{Name: "aws-iam-token", MountPath: "/var/run/secrets/eks.amazonaws.com/serviceaccount", ReadOnly: true})
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: "aws-iam-token"})
	}
	if shape&128 != 0 {
		app.Env = append(app.Env, corev1.EnvVar{Name: "AWS_CONTAINER_CREDENTIALS_FULL_URI", Value: "http://169.254.170.23/v1/credentials"},
			corev1.EnvVar{Name: "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", Value: "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token"})
	}
	return pod
}

func fuzzConfig(shape uint8) Config {
	cfg := testConfig
	if shape&32 != 0 {
		cfg.DefaultRegion = ""
	}
	return cfg
}

var fuzzSeeds = []struct {
	data  string
	shape uint8
}{
	{"inject=true\nsecret-db=prod/db", 1},
	{"inject=false\nsecret-db=../x", 0},
	{"inject=yes", 1},
	{"inject=true", 1},
	{"inject=true\nsecret-db=prod/db\nkey-db=a.b\nmode-db=0440\npattern-db=[a-z]+\nversion-stage-db=AWSPREVIOUS", 1 | 8 | 64},
	{"inject=true\nsecret-db=arn:aws:secretsmanager:us-east-1:111122223333:secret:x\nversion-id-db=EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE", 32 | 1},
	{"inject=true\nsecret-db=prod/db\nmode-db=0444\ncontainers=migrate,app", 4 | 16},
	{"inject=true\nsecret-..=x\nsecret-a/b=y\nmount-path=/etc\nregion=mars\nstatus=x\nbogus=1", 2},
	{"inject=true\nsecret-db=prod/db\nmount-path=/data/x\nmode-db=0440", 2 | 8 | 128},
	{"inject=true\nsecret-db=prod/db\nstatus=injected", 1 | 16 | 64 | 128},
	{"inject=true\nsecret-db=prod/db\nkey-db=password\nenv-db=DB_PASSWORD\nfile-db=false\nsecret-api=prod/api\nenv-api=API_KEY", 1 | 64},
	{"inject=true\nsecret-cfg=prod/cfg\nformat-cfg=yaml\nsecret-x=prod/x\nenv-x=AWS_REGION\ncontainers=migrate,app", 1 | 16 | 64},
}

// FuzzParseAnnotations: the parser never panics; a denial always says what
// is wrong; an accepted pod has a plan that encodes and decodes to itself,
// an owner who is not root, and a mutation that is idempotent.
func FuzzParseAnnotations(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s.data, s.shape)
	}
	f.Fuzz(func(t *testing.T, data string, shape uint8) {
		pod := fuzzPod(shape, fuzzAnnotations(data))
		cfg := fuzzConfig(shape)
		requested, ferr := Requested(pod)
		if ferr != nil {
			if ferr.Error() == "" {
				t.Fatal("an inject error without a message")
			}
			return
		}
		if !requested {
			return
		}
		inj, errs := Parse(pod, cfg.DefaultRegion)
		if len(errs) > 0 {
			if inj != nil {
				t.Fatal("problems and an injection")
			}
			for _, e := range errs {
				if e.Field == "" || e.ErrorBody() == "" {
					t.Fatalf("a problem without a field or message: %#v", e)
				}
			}
			if errs.ToAggregate() == nil || errs.ToAggregate().Error() == "" {
				t.Fatal("a denial without a message")
			}
			return
		}
		if inj == nil || len(inj.Readers) == 0 || inj.UID == 0 {
			t.Fatalf("accepted with injection %+v", inj)
		}
		encoded, err := plan.Encode(&inj.Plan)
		if err != nil {
			t.Fatalf("the parsed plan does not encode: %v", err)
		}
		decoded, err := plan.Decode([]byte(encoded))
		if err != nil {
			t.Fatalf("the encoded plan does not decode: %v", err)
		}
		if diff := cmp.Diff(&inj.Plan, decoded); diff != "" {
			t.Fatalf("plan round trip (-parsed +decoded):\n%s", diff)
		}
		once := pod.DeepCopy()
		if err := Apply(once, inj, cfg); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		twice := once.DeepCopy()
		inj2, errs := Parse(twice, cfg.DefaultRegion)
		if len(errs) > 0 {
			t.Fatalf("the mutated pod is denied:\n%s", errorLines(errs))
		}
		if err := Apply(twice, inj2, cfg); err != nil {
			t.Fatalf("Apply again: %v", err)
		}
		if diff := cmp.Diff(once, twice); diff != "" {
			t.Fatalf("not idempotent (-once +twice):\n%s", diff)
		}
	})
}

// fuzzEdits are JSON patches (RFC 6902) that FuzzHandler applies to a pod's
// JSON: values of the wrong type where structs belong, and nulls, which the
// API server never sends but any client that reaches the webhook can.
var fuzzEdits = []string{
	`[{"op":"replace","path":"/spec/containers","value":[null,0,"x",true,{}]}]`,
	`[{"op":"add","path":"/spec/containers/-","value":null}]`,
	`[{"op":"add","path":"/spec/containers/0/env","value":[1,2]}]`,
	`[{"op":"add","path":"/spec/containers/0/env","value":[null,{"name":"A"}]}]`,
	`[{"op":"add","path":"/spec/volumes","value":["x"]}]`,
	`[{"op":"add","path":"/spec/volumes","value":[null,{"name":"v","emptyDir":null}]}]`,
	`[{"op":"add","path":"/spec/initContainers","value":[null]}]`,
	`[{"op":"add","path":"/spec/ephemeralContainers","value":[0]}]`,
	`[{"op":"add","path":"/spec/containers/0/volumeMounts","value":[0,null]}]`,
	`[{"op":"add","path":"/spec/containers/0/ports","value":[{"containerPort":"80"}]}]`,
	`[{"op":"add","path":"/metadata/labels","value":{"a":1}}]`,
	`[{"op":"add","path":"/metadata/annotations/secretfetch.io~1containers","value":0}]`,
	`[{"op":"replace","path":"/spec/securityContext","value":[]}]`,
	`[{"op":"replace","path":"","value":[null]}]`,
}

// maxFuzzEdit bounds what an edit may add by copying, so that a few "copy"
// operations cannot double the pod into gigabytes.
const maxFuzzEdit = 64 << 10

// FuzzHandler: through AdmissionReview JSON, every answer is well formed: a
// denial carries a message, an allowed patch applies without removing
// anything and gives the pod that Apply makes, and the patched pod sent
// again gets no patch. When edit (a JSON patch) changes the pod's JSON, the
// edited pod gets a well-formed answer too, is refused if it does not decode,
// and the checks above hold for the API server's encoding of it.
func FuzzHandler(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s.data, s.shape, "")
	}
	for _, edit := range fuzzEdits {
		f.Add(fuzzSeeds[0].data, fuzzSeeds[0].shape, edit)
		f.Add(fuzzSeeds[6].data, fuzzSeeds[6].shape|2, edit)
	}
	f.Fuzz(func(t *testing.T, data string, shape uint8, edit string) {
		pod := fuzzPod(shape, fuzzAnnotations(data))
		raw, err := json.Marshal(pod)
		if err != nil {
			t.Fatal(err)
		}
		wh := newWebhook(t, fuzzConfig(shape), nil)
		if edit != "" {
			var ok bool
			if raw, ok = fuzzEdit(t, wh, raw, edit); !ok {
				return
			}
		}
		resp := serve(t, wh, review(t, raw, admissionv1.Create, "shop", false))
		if !checkAnswer(t, resp) {
			return
		}
		patched := applyPatch(t, raw, resp)
		// The patch, computed from the views of the pod, must give exactly
		// the pod that Apply makes of the whole.
		want := mustDecodePod(t, raw)
		if requested, _ := Requested(want); requested {
			// As the handler does for a pod made by a controller, which
			// arrives without a namespace (an edit may remove it).
			if want.Namespace == "" {
				want.Namespace = "shop"
			}
			inj, errs := Parse(want, fuzzConfig(shape).DefaultRegion)
			if len(errs) > 0 {
				t.Fatalf("allowed, but Parse denies:\n%s", errorLines(errs))
			}
			if err := Apply(want, inj, fuzzConfig(shape)); err != nil {
				t.Fatalf("Apply: %v", err)
			}
		}
		if diff := cmp.Diff(want, mustDecodePod(t, patched)); diff != "" {
			t.Fatalf("the patched pod is not the mutated pod (-Apply +patched):\n%s", diff)
		}
		again := serve(t, wh, review(t, patched, admissionv1.Create, "shop", false))
		if !again.Allowed || len(again.Patch) != 0 {
			t.Fatalf("the patched pod sent again: allowed=%v patch=%s", again.Allowed, again.Patch)
		}
	})
}

// fuzzEdit applies edit to raw and sends the result, as a client other than
// the API server could: its answer must be well formed, and a refusal if the
// pod does not decode. It returns what the API server would send for the
// edited pod, the encoding of the decoded pod, or false when edit is not a
// patch that applies or the pod does not decode.
func fuzzEdit(t *testing.T, wh *Endpoint, raw []byte, edit string) ([]byte, bool) {
	p, err := jsonpatch.DecodePatch([]byte(edit))
	if err != nil {
		return nil, false
	}
	opts := jsonpatch.NewApplyOptions()
	opts.AccumulatedCopySizeLimit = maxFuzzEdit
	edited, err := p.ApplyWithOptions(raw, opts)
	if err != nil || len(edited) > len(raw)+maxFuzzEdit {
		return nil, false
	}
	resp := serve(t, wh, review(t, edited, admissionv1.Create, "shop", false))
	allowed := checkAnswer(t, resp)
	decoded, err := decodePod(edited)
	if err != nil {
		if allowed {
			t.Fatalf("a pod that does not decode (%v) was allowed", err)
		}
		return nil, false
	}
	canonical, err := json.Marshal(decoded)
	if err != nil {
		t.Fatal(err)
	}
	return canonical, true
}

// checkAnswer fails the test on an answer that is an internal error or a
// refusal without a message, and reports whether the pod was allowed.
func checkAnswer(t *testing.T, resp admissionv1.AdmissionResponse) bool {
	t.Helper()
	if resp.Allowed {
		return true
	}
	if resp.Result == nil || resp.Result.Message == "" {
		t.Fatalf("a denial without a message: %+v", resp.Result)
	}
	if resp.Result.Code == 500 {
		t.Fatalf("an internal error: %s", resp.Result.Message)
	}
	return false
}
