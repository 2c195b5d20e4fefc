package mutate

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// maxDenialBytes is what a denial may weigh on the wire, its causes
// included: a few KB, whatever the pod sent.
const maxDenialBytes = 16 << 10

// TestHostilePods sends pods that once cost the webhook time and memory far
// beyond their size. Each must be denied with one message that names the
// limit or the bad entry, in an answer of a few KB.
func TestHostilePods(t *testing.T) {
	manyKeys := func(n int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("%sunknown-%d", Prefix, i)] = "x"
		}
		return m
	}
	tests := []struct {
		name string
		ann  map[string]string
		pod  func(*corev1.Pod)
		want []string // substrings of the message
	}{
		{
			// Each reader is looked up by name: quadratic in thousands of
			// containers (up to maxArrayLength). They carry what the API
			// server defaults: a review of emptier ones is refused before
			// it is decoded (see checkReviewBounds).
			name: "2,000 containers",
			ann:  map[string]string{SecretPrefix + "db": "prod/db"},
			pod: func(p *corev1.Pod) {
				for i := range 2000 {
					p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: "app",
						TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: corev1.TerminationMessageReadFile,
						ImagePullPolicy: corev1.PullIfNotPresent})
				}
			},
			want: []string{"spec.containers: Too many: 2003: must have at most 256 items"},
		},
		{
			// 8.6 KB in; it was a 65 MB answer, each empty entry quoting the list.
			name: "containers of 8,000 commas",
			ann:  map[string]string{SecretPrefix + "db": "prod/db", AnnotationContainers: strings.Repeat(",", 8000)},
			want: []string{"lists 8001 entries; it may list at most 128 containers"},
		},
		{
			// Minutes of CPU in the aggregate's quadratic de-duplication.
			name: "20,000 unknown keys",
			ann:  manyKeys(20000),
			want: []string{"the pod has 20001 secretfetch.io/ annotations; it may have at most 256"},
		},
		{
			name: "values beyond the byte limit",
			ann:  map[string]string{SecretPrefix + "db": "prod/db", PatternPrefix + "db": strings.Repeat("a", 70000)},
			want: []string{"take 70081 bytes (keys and values); a pod may use at most 65536"},
		},
		{
			// Under every annotation limit, but JSON escapes each '<' to six
			// bytes: the plan would not fit in one environment variable.
			name: "plan too large to start",
			ann:  map[string]string{SecretPrefix + "db": "prod/db", PatternPrefix + "db": strings.Repeat("<", 15000)},
			want: []string{"make a plan of 90", "the init container can start with at most 65536"},
		},
		{
			// Under the entry limit, each bad entry is quoted once, and only
			// the first problems are listed.
			name: "many bad container names",
			ann: map[string]string{SecretPrefix + "db": "prod/db",
				AnnotationContainers: badNames(120)},
			want: []string{`names no container or init container in this pod (it has "migrate", "app", "sidecar")`, " more]"},
		},
		{
			name: "empty entries are reported once",
			ann:  map[string]string{SecretPrefix + "db": "prod/db", AnnotationContainers: ",app,,"},
			want: []string{"an entry is empty"},
		},
	}
	wh := newWebhook(t, testConfig, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := basePod()
			for k, v := range tt.ann {
				pod.Annotations[k] = v
			}
			if tt.pod != nil {
				tt.pod(pod)
			}
			raw, err := json.Marshal(pod)
			if err != nil {
				t.Fatal(err)
			}
			rec := post(wh, "application/json", review(t, raw, admissionv1.Create, pod.Namespace, false))
			if rec.Code != http.StatusOK {
				t.Fatalf("HTTP %d", rec.Code)
			}
			if n := rec.Body.Len(); n > maxDenialBytes {
				t.Errorf("the answer is %d bytes, want at most %d", n, maxDenialBytes)
			}
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatal(err)
			}
			resp := out.Response
			if resp.Allowed || resp.Result == nil || resp.Result.Code != http.StatusForbidden {
				t.Fatalf("allowed=%v result=%+v, want a 403 denial", resp.Allowed, resp.Result)
			}
			msg := resp.Result.Message
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %.300q... does not say %q", msg, w)
				}
			}
			if n := strings.Count(msg, "an entry is empty"); n > 1 {
				t.Errorf("the empty entry is reported %d times, want once", n)
			}
			if n := len(resp.Result.Details.Causes); n > maxCauses {
				t.Errorf("%d causes, want at most %d", n, maxCauses)
			}
		})
	}
}

// badNames lists n distinct names of 200-odd bytes that no container has.
func badNames(n int) string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("nosuch-%d-%s", i, strings.Repeat("x", 200))
	}
	return strings.Join(names, ",")
}

func TestDenialMessage(t *testing.T) {
	fp := annotationPath(AnnotationRegion)
	many := make(field.ErrorList, 1000)
	for i := range many {
		many[i] = field.Invalid(fp, fmt.Sprintf("bad-%d", i), "not a region")
	}
	t.Run("bounded, with the rest counted", func(t *testing.T) {
		msg, shown := denialMessage(many)
		if len(shown) != maxCauses {
			t.Errorf("listed %d problems, want %d", len(shown), maxCauses)
		}
		if !strings.HasSuffix(msg, fmt.Sprintf(", and %d more]", 1000-maxCauses)) {
			t.Errorf("message ends %q, want the rest counted", msg[len(msg)-40:])
		}
		if !strings.Contains(msg, `"bad-0"`) || strings.Contains(msg, `"bad-20"`) {
			t.Errorf("message lists the wrong problems: %.200s", msg)
		}
	})
	t.Run("long problems stop at the message limit", func(t *testing.T) {
		long := make(field.ErrorList, 30)
		for i := range long {
			long[i] = field.Invalid(fp, strings.Repeat(string(rune('a'+i%26)), 2000), "not a region")
		}
		msg, shown := denialMessage(long)
		if len(msg) > maxMessageBytes+maxCauseBytes {
			t.Errorf("message is %d bytes, want about %d at most", len(msg), maxMessageBytes)
		}
		if len(shown) == 0 || len(shown) >= maxCauses {
			t.Errorf("listed %d problems", len(shown))
		}
		if want := fmt.Sprintf(", and %d more]", 30-len(shown)); !strings.HasSuffix(msg, want) {
			t.Errorf("message does not end with %q", want)
		}
	})
	t.Run("one problem, as the aggregate wrote it", func(t *testing.T) {
		msg, _ := denialMessage(many[:1])
		if want := "secretfetch: " + many[0].Error(); msg != want {
			t.Errorf("got %q, want %q", msg, want)
		}
	})
	t.Run("repeated problems listed once", func(t *testing.T) {
		msg, shown := denialMessage(field.ErrorList{many[0], many[1], many[0]})
		if len(shown) != 2 || strings.Count(msg, `"bad-0"`) != 1 {
			t.Errorf("listed %d problems: %s", len(shown), msg)
		}
	})
}

func TestTruncate(t *testing.T) {
	s := strings.Repeat("é", 100) // two bytes each
	for n := 4; n < 20; n++ {
		got := truncate(s, n)
		if len(got) > n || !utf8.ValidString(got) || !strings.HasSuffix(got, "...") {
			t.Errorf("truncate(_, %d) = %q", n, got)
		}
	}
	if got := truncate("short", 10); got != "short" {
		t.Errorf("truncate(short) = %q", got)
	}
}

// TestHandlerStopsWhenCanceled: once the request's context has ended (the
// API server gave up), the handler answers at once, without parsing or
// mutating, and counts it.
func TestHandlerStopsWhenCanceled(t *testing.T) {
	m, reg := newMetrics(t)
	h, err := NewHandler(testConfig, m)
	if err != nil {
		t.Fatal(err)
	}
	pod := basePod()
	pod.Annotations[SecretPrefix+"db"] = "prod/db"
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "u", Operation: admissionv1.Create, Namespace: "shop",
		Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Kind:     metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
	}}
	req.Object.Object = pod
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	resp := h.Handle(ctx, req)
	if resp.Allowed || resp.Result == nil || resp.Result.Code != http.StatusServiceUnavailable {
		t.Fatalf("allowed=%v result=%+v, want a 503 error", resp.Allowed, resp.Result)
	}
	if _, ok := pod.Annotations[AnnotationStatus]; ok || len(pod.Spec.InitContainers) != 1 {
		t.Error("the pod was mutated after the context ended")
	}
	if got := counter(t, reg, ResultError, ReasonCanceled); got != 1 {
		t.Errorf("error/canceled counted %v times, want 1", got)
	}
}

// TestInitContainerRebuilt: a pod that declares its own secretfetch-init
// gets exactly the init container the webhook builds, in the same place:
// nothing the pod put there survives, whatever the field.
func TestInitContainerRebuilt(t *testing.T) {
	plain := basePod()
	plain.Annotations[SecretPrefix+"db"] = "prod/db"
	want, errs := mutatePod(t, plain, testConfig)
	if len(errs) > 0 {
		t.Fatal(errorLines(errs))
	}

	always := corev1.ContainerRestartPolicyAlways
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}
	hostile := plain.DeepCopy()
	hostile.Spec.InitContainers = append([]corev1.Container{{
		Name: InitContainerName, Image: "evil/init:1", RestartPolicy: &always,
		Command: []string{"/bin/sh"}, Args: []string{"--allow-non-tmpfs", "--timeout=1ns"},
		WorkingDir: "/tmp", Stdin: true, TTY: true,
		EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "proxy"}}}},
		Env:     []corev1.EnvVar{{Name: "HTTPS_PROXY", Value: "http://evil:3128"}, {Name: "AWS_CA_BUNDLE", Value: "/evil/ca.pem"}},
		VolumeMounts: []corev1.VolumeMount{{Name: "host", MountPath: "/host"},
			{Name: VolumeName, MountPath: "/elsewhere", SubPath: "x"}},
		Lifecycle:      &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh"}}}},
		LivenessProbe:  probe,
		ReadinessProbe: probe,
		StartupProbe:   probe,
		Ports:          []corev1.ContainerPort{{ContainerPort: 80}},
	}}, hostile.Spec.InitContainers...)
	got, errs := mutatePod(t, hostile, testConfig)
	if len(errs) > 0 {
		t.Fatal(errorLines(errs))
	}
	if diff := cmp.Diff(want.Spec.InitContainers, got.Spec.InitContainers); diff != "" {
		t.Errorf("init containers (-built +got):\n%s", diff)
	}

	// Reinvocation changes nothing.
	again, errs := mutatePod(t, got, testConfig)
	if len(errs) > 0 {
		t.Fatal(errorLines(errs))
	}
	if diff := cmp.Diff(got, again); diff != "" {
		t.Errorf("reinvocation changed the pod (-first +second):\n%s", diff)
	}
}

// TestForeignMounts: the secrets volume is mounted only where the webhook
// mounts it. A pod's own mount of it in a container that is not a reader,
// or a second one in a reader, is denied by container and mount; a reader's
// single mount is taken over, read-only and without its subPath.
func TestForeignMounts(t *testing.T) {
	base := func() *corev1.Pod {
		pod := basePod()
		pod.Annotations[SecretPrefix+"db"] = "prod/db"
		pod.Annotations[AnnotationContainers] = "app"
		return pod
	}
	t.Run("not a reader", func(t *testing.T) {
		pod := base()
		pod.Spec.Containers[1].VolumeMounts = []corev1.VolumeMount{{Name: VolumeName, MountPath: "/steal"}}
		_, errs := mutatePod(t, pod, testConfig)
		want := `spec.containers[1].volumeMounts[0]: Forbidden: container "sidecar" mounts the secrets volume secretfetch-secrets, but it is not one of the containers that read the secrets`
		if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), want) {
			t.Errorf("got %v, want %q", errs, want)
		}
	})
	t.Run("not a reader, init container", func(t *testing.T) {
		pod := base()
		pod.Spec.InitContainers[0].VolumeMounts = []corev1.VolumeMount{{Name: VolumeName, MountPath: "/steal", ReadOnly: true}}
		_, errs := mutatePod(t, pod, testConfig)
		if len(errs) != 1 || errs[0].Field != "spec.initContainers[0].volumeMounts[0]" || !strings.Contains(errs[0].Detail, `"migrate"`) {
			t.Errorf("got %v, want the mount of migrate", errs)
		}
	})
	t.Run("a second mount in a reader", func(t *testing.T) {
		pod := base()
		pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{
			{Name: VolumeName, MountPath: "/var/run/secrets/app", ReadOnly: true}, {Name: VolumeName, MountPath: "/rw"}}
		_, errs := mutatePod(t, pod, testConfig)
		if len(errs) != 1 || errs[0].Field != "spec.containers[0].volumeMounts[1]" || !strings.Contains(errs[0].Detail, "more than once") {
			t.Errorf("got %v, want the second mount of app", errs)
		}
	})
	// Only the init containers of those names are the webhook's, rebuilt by
	// Apply; an app container that takes the refresh sidecar's name (refresh
	// off) is the pod's own, and its mounts are checked like any other.
	t.Run("an app container named as the refresh sidecar", func(t *testing.T) {
		pod := base()
		pod.Spec.Containers[1].Name = RefreshContainerName
		pod.Spec.Containers[1].VolumeMounts = []corev1.VolumeMount{{Name: VolumeName, MountPath: "/rw"}}
		_, errs := mutatePod(t, pod, testConfig)
		if len(errs) != 1 || errs[0].Field != "spec.containers[1].volumeMounts[0]" || !strings.Contains(errs[0].Detail, "not one of the containers that read") {
			t.Errorf("got %v, want the mount of %s", errs, RefreshContainerName)
		}
	})
	t.Run("an app container named as the refresh sidecar reads the env file", func(t *testing.T) {
		pod := base()
		pod.Annotations[EnvPrefix+"db"] = "DB"
		pod.Spec.Containers[1].Name = RefreshContainerName
		pod.Spec.Containers[1].Env = []corev1.EnvVar{{Name: "DB", ValueFrom: &corev1.EnvVarSource{FileKeyRef: &corev1.FileKeySelector{
			VolumeName: EnvVolumeName, Path: "env", Key: "DB"}}}}
		_, errs := mutatePod(t, pod, testConfig)
		if len(errs) != 1 || errs[0].Field != "spec.containers[1].env[0]" {
			t.Errorf("got %v, want the env entry of %s", errs, RefreshContainerName)
		}
	})
	t.Run("a reader's own mount is taken over", func(t *testing.T) {
		pod := base()
		pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: VolumeName, MountPath: "/rw", SubPath: "db"}}
		got, errs := mutatePod(t, pod, testConfig)
		if len(errs) > 0 {
			t.Fatal(errorLines(errs))
		}
		want := []corev1.VolumeMount{{Name: VolumeName, MountPath: "/var/run/secrets/app", SubPath: "files", ReadOnly: true}}
		if diff := cmp.Diff(want, got.Spec.Containers[0].VolumeMounts); diff != "" {
			t.Errorf("mounts (-want +got):\n%s", diff)
		}
	})
}

// TestConfigValidateInitResources: --init-resources takes cpu and memory
// only, positive, and never a request its limit (given, or the default) is
// below: the API server would refuse every injected pod.
func TestConfigValidateInitResources(t *testing.T) {
	q := resource.MustParse
	tests := []struct {
		name string
		r    corev1.ResourceRequirements
		want string // "" for valid
	}{
		{"none", corev1.ResourceRequirements{}, ""},
		{"limits only", corev1.ResourceRequirements{Limits: corev1.ResourceList{"cpu": q("1"), "memory": q("256Mi")}}, ""},
		{"request under its limit", corev1.ResourceRequirements{Requests: corev1.ResourceList{"memory": q("128Mi")},
			Limits: corev1.ResourceList{"memory": q("256Mi")}}, ""},
		{"another resource", corev1.ResourceRequirements{Limits: corev1.ResourceList{"nvidia.com/gpu": q("1")}},
			"limits.nvidia.com/gpu: only cpu and memory can be set"},
		{"zero", corev1.ResourceRequirements{Requests: corev1.ResourceList{"cpu": q("0")}}, "requests.cpu: 0 is not a positive quantity"},
		{"request above its limit", corev1.ResourceRequirements{Requests: corev1.ResourceList{"cpu": q("2")},
			Limits: corev1.ResourceList{"cpu": q("1")}}, "requests.cpu (2) is above limits.cpu (1)"},
		{"request above the default limit", corev1.ResourceRequirements{Requests: corev1.ResourceList{"memory": q("1Gi")}},
			"requests.memory (1Gi) is above the default limit (65Mi); set limits.memory too"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Config{InitImage: "i", InitResources: tt.r}.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("got %v, want valid", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), "--init-resources: "+tt.want)):
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
}

// TestLongNamesQuotedBounded: a problem found per mount or env entry quotes
// the container's name (and the mount path) cut short, not whole. One long
// name with a few thousand such entries once cost 6 GB of allocations and
// 20 s of CPU for a 1 MB pod, before the denial was cut to maxCauses.
func TestLongNamesQuotedBounded(t *testing.T) {
	const n = 300
	long := strings.Repeat("x", 256<<10)
	ref := corev1.EnvVar{Name: "DB", ValueFrom: &corev1.EnvVarSource{FileKeyRef: &corev1.FileKeySelector{
		VolumeName: EnvVolumeName, Path: "env", Key: "DB"}}}
	repeat := func(n int, f func(i int)) {
		for i := range n {
			f(i)
		}
	}
	tests := []struct {
		name string
		ann  map[string]string
		pod  func(p *corev1.Pod)
	}{
		{"mounts of the secrets volume in a container that is not a reader", nil, func(p *corev1.Pod) {
			p.Spec.InitContainers[0].Name = long
			repeat(n, func(int) {
				p.Spec.InitContainers[0].VolumeMounts = append(p.Spec.InitContainers[0].VolumeMounts, corev1.VolumeMount{Name: VolumeName, MountPath: "/a"})
			})
		}},
		{"mounts of the secrets volume, again and again in a reader", nil, func(p *corev1.Pod) {
			p.Spec.Containers[0].Name = long
			repeat(n, func(int) {
				p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: VolumeName, MountPath: "/a"})
			})
		}},
		{"mounts that collide with a long mount path", map[string]string{AnnotationMountPath: "/s/" + strings.Repeat("p", 32<<10)}, func(p *corev1.Pod) {
			p.Spec.Containers[0].Name = long
			repeat(n, func(i int) {
				p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: fmt.Sprint("v", i), MountPath: "/s"})
			})
		}},
		{"env entries that clash with a variable", map[string]string{EnvPrefix + "db": "DB"}, func(p *corev1.Pod) {
			p.Spec.Containers[0].Name = long
			repeat(n, func(int) {
				p.Spec.Containers[0].Env = append(p.Spec.Containers[0].Env, corev1.EnvVar{Name: "DB", Value: "x"})
			})
		}},
		{"env entries that read the env file in a container that is not a reader", map[string]string{EnvPrefix + "db": "DB"}, func(p *corev1.Pod) {
			p.Spec.InitContainers[0].Name = long
			repeat(n, func(int) { p.Spec.InitContainers[0].Env = append(p.Spec.InitContainers[0].Env, ref) })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := basePod()
			pod.Annotations[SecretPrefix+"db"] = "prod/db"
			for k, v := range tt.ann {
				pod.Annotations[k] = v
			}
			tt.pod(pod)
			_, errs := Parse(pod, "us-east-1")
			if len(errs) < n-1 { // a reader's first mount of the volume is the webhook's own
				t.Fatalf("%d problems, want one per entry (%d):\n%.2000s", len(errs), n, errorLines(errs))
			}
			total := 0
			for _, e := range errs {
				total += len(e.Detail)
			}
			if limit := len(errs) * maxCauseBytes * 2; total > limit {
				t.Errorf("the %d problems' messages take %d bytes, want at most %d: each quotes what it names whole", len(errs), total, limit)
			}
		})
	}
}

// TestEnvEntriesBounded: each variable goes into every reader, so the env
// entries that Apply adds are variables x readers. A 16 KB pod of 250
// containers with 125 variables once cost 109 MB, and was admitted with a
// patch of 4.8 MB. Past MaxEnvEntries it is denied, with one message.
func TestEnvEntriesBounded(t *testing.T) {
	const containers, vars = 200, 30 // 6,000 entries
	pod := basePod()
	for i := range vars {
		pod.Annotations[fmt.Sprintf("%ss%d", SecretPrefix, i)] = "prod/db"
		pod.Annotations[fmt.Sprintf("%ss%d", EnvPrefix, i)] = fmt.Sprintf("V%d", i)
	}
	for i := range containers - len(pod.Spec.Containers) {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: "x"})
	}
	_, errs := Parse(pod, "us-east-1")
	want := fmt.Sprintf("metadata.annotations: Invalid value: %d variables (secretfetch.io/env-<name>) in %d containers would add %d env entries; a pod may get at most %d: list the containers that need them in secretfetch.io/containers, or use fewer variables",
		vars, containers, vars*containers, MaxEnvEntries)
	if got := errorLines(errs); got != want+"\n" {
		t.Errorf("problems:\n%s\nwant:\n%s", got, want)
	}

	// The same variables in the containers listed: admitted.
	pod.Annotations[AnnotationContainers] = "app,sidecar"
	if _, errs := Parse(pod, "us-east-1"); errs != nil {
		t.Errorf("with two containers listed: denied:\n%s", errorLines(errs))
	}
}
