package mutate

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/secretfetch/secretfetch/internal/grammar"
	"github.com/secretfetch/secretfetch/internal/plan"
)

// basePod has two app containers and one init container, all running as
// UID 1000 through the pod's securityContext.
func basePod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", Annotations: map[string]string{AnnotationInject: "true"}},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000)},
			InitContainers:  []corev1.Container{{Name: "migrate", Image: "migrate"}},
			Containers:      []corev1.Container{{Name: "app", Image: "app"}, {Name: "sidecar", Image: "sidecar"}},
		},
	}
}

// wantErr is one expected problem: its type and the field it names.
type wantErr struct {
	Type  field.ErrorType
	Field string
}

func ann(key string) string { return "metadata.annotations[" + key + "]" }

func TestParse(t *testing.T) {
	const arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/db-AbCdEf"
	invalid := func(key string) wantErr { return wantErr{field.ErrorTypeInvalid, ann(key)} }
	invalidSpec := func(path string) wantErr { return wantErr{field.ErrorTypeInvalid, path} }
	tests := []struct {
		name   string
		ann    map[string]string // added to secretfetch.io/inject: "true"
		pod    func(*corev1.Pod) // changes to basePod
		region string            // the webhook's default region; "-" for none
		want   []wantErr
		check  func(t *testing.T, inj *Injection)
	}{
		{
			name: "one secret by name, defaults",
			ann:  map[string]string{"secretfetch.io/secret-db": "prod/db"},
			check: func(t *testing.T, inj *Injection) {
				want := plan.Plan{Version: 1, Dir: plan.DefaultDir, Subdir: plan.FilesSubdir, Region: "us-east-1",
					Secrets: []plan.Secret{{File: "db", ID: "prod/db"}}}
				if diff := cmp.Diff(want, inj.Plan); diff != "" {
					t.Errorf("plan (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff([]string{"app", "sidecar"}, inj.Readers); diff != "" {
					t.Errorf("readers (-want +got):\n%s", diff)
				}
				if inj.UID != 1000 || inj.GID != 1000 {
					t.Errorf("owner = %d:%d, want 1000:1000", inj.UID, inj.GID)
				}
			},
		},
		{
			name: "every per-secret key, sorted by name",
			ann: map[string]string{
				"secretfetch.io/secret-z.json": arn, "secretfetch.io/key-z.json": "db.password",
				"secretfetch.io/pattern-z.json": "[a-z]+", "secretfetch.io/mode-z.json": "0440",
				"secretfetch.io/secret-a_1": "prod/a", "secretfetch.io/version-stage-a_1": "AWSPREVIOUS",
				"secretfetch.io/secret-b": "prod/b", "secretfetch.io/version-id-b": "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE",
				"secretfetch.io/region": "ap-southeast-2", "secretfetch.io/mount-path": "/secrets",
				"secretfetch.io/containers": "sidecar, migrate",
			},
			check: func(t *testing.T, inj *Injection) {
				want := plan.Plan{Version: 1, Dir: "/secrets", Subdir: plan.FilesSubdir, Region: "ap-southeast-2", Secrets: []plan.Secret{
					{File: "a_1", ID: "prod/a", VersionStage: "AWSPREVIOUS"},
					{File: "b", ID: "prod/b", VersionID: "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE"},
					{File: "z.json", ID: arn, Key: "db.password", Mode: 0o440, Pattern: "[a-z]+"},
				}}
				if diff := cmp.Diff(want, inj.Plan); diff != "" {
					t.Errorf("plan (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff([]string{"sidecar", "migrate"}, inj.Readers); diff != "" {
					t.Errorf("readers (-want +got):\n%s", diff)
				}
			},
		},
		{
			name:   "ARNs need no region",
			ann:    map[string]string{"secretfetch.io/secret-db": arn},
			region: "-",
			check: func(t *testing.T, inj *Injection) {
				if inj.Plan.Region != "" || inj.Plan.RegionFor(inj.Plan.Secrets[0]) != "eu-west-1" {
					t.Errorf("region = %q, for the secret %q; want none, and the ARN's", inj.Plan.Region, inj.Plan.RegionFor(inj.Plan.Secrets[0]))
				}
			},
		},
		{
			name: "ARNs in every partition",
			ann: map[string]string{
				"secretfetch.io/secret-a": "arn:aws:secretsmanager:us-east-1:111122223333:secret:a",
				"secretfetch.io/secret-b": "arn:aws-cn:secretsmanager:cn-north-1:111122223333:secret:b",
				"secretfetch.io/secret-c": "arn:aws-us-gov:secretsmanager:us-gov-west-1:111122223333:secret:c",
			},
		},
		{
			name:   "a name needs a region",
			ann:    map[string]string{"secretfetch.io/secret-db": "prod/db", "secretfetch.io/secret-arn": arn},
			region: "-",
			want:   []wantErr{{field.ErrorTypeRequired, ann("secretfetch.io/region")}},
		},
		{
			name: "the annotation's region wins over the default",
			ann:  map[string]string{"secretfetch.io/secret-db": "prod/db", "secretfetch.io/region": "eu-north-1"},
			check: func(t *testing.T, inj *Injection) {
				if inj.Plan.Region != "eu-north-1" {
					t.Errorf("region = %q, want eu-north-1", inj.Plan.Region)
				}
			},
		},
		{
			name: "empty region",
			ann:  map[string]string{"secretfetch.io/secret-db": "arn:aws:secretsmanager:us-east-1:111122223333:secret:db", "secretfetch.io/region": ""},
			want: []wantErr{invalid("secretfetch.io/region")},
		},
		{
			name: "bad region",
			ann:  map[string]string{"secretfetch.io/secret-db": "prod/db", "secretfetch.io/region": "mars"},
			want: []wantErr{invalid("secretfetch.io/region")},
		},
		{
			name: "bad and traversing names",
			ann: map[string]string{
				"secretfetch.io/secret-..": "a", "secretfetch.io/secret-.env": "b", "secretfetch.io/secret-a/b": "c",
				"secretfetch.io/secret-x-": "d", "secretfetch.io/secret-": "e",
				"secretfetch.io/secret-" + strings.Repeat("n", plan.MaxNameLength+1): "f",
			},
			want: []wantErr{
				invalid("secretfetch.io/secret-"), invalid("secretfetch.io/secret-.."), invalid("secretfetch.io/secret-.env"),
				invalid("secretfetch.io/secret-a/b"), invalid("secretfetch.io/secret-" + strings.Repeat("n", plan.MaxNameLength+1)),
				invalid("secretfetch.io/secret-x-"),
			},
		},
		{
			name: "unknown keys",
			ann: map[string]string{"secretfetch.io/secret-db": "prod/db", "secretfetch.io/secrets-db": "prod/db",
				"secretfetch.io/mountpath": "/x", "secretfetch.io/secret": "prod/db", "other.io/secret-db": "ignored"},
			want: []wantErr{invalid("secretfetch.io/mountpath"), invalid("secretfetch.io/secret"), invalid("secretfetch.io/secrets-db")},
		},
		{
			name: "ARNs of another partition or service, or malformed",
			ann: map[string]string{
				"secretfetch.io/secret-a": "arn:aws-xx:secretsmanager:us-east-1:111122223333:secret:a",
				"secretfetch.io/secret-b": "arn:aws:ssm:us-east-1:111122223333:secret:b",
				"secretfetch.io/secret-c": "arn:aws:secretsmanager:us-east-1:111122223333:parameter/c",
				"secretfetch.io/secret-d": "arn:aws:secretsmanager:us-east-1:1111:secret:d",
				"secretfetch.io/secret-e": "not a name",
			},
			want: []wantErr{invalid("secretfetch.io/secret-a"), invalid("secretfetch.io/secret-b"), invalid("secretfetch.io/secret-c"),
				invalid("secretfetch.io/secret-d"), invalid("secretfetch.io/secret-e")},
		},
		{
			name: "version stage and version ID together",
			ann: map[string]string{"secretfetch.io/secret-db": "prod/db", "secretfetch.io/version-stage-db": "AWSCURRENT",
				"secretfetch.io/version-id-db": "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE"},
			want: []wantErr{{field.ErrorTypeForbidden, ann("secretfetch.io/version-id-db")}},
		},
		{
			name: "bad version stage and version ID",
			ann: map[string]string{"secretfetch.io/secret-a": "prod/a", "secretfetch.io/version-stage-a": "two words",
				"secretfetch.io/secret-b": "prod/b", "secretfetch.io/version-id-b": "short"},
			want: []wantErr{invalid("secretfetch.io/version-stage-a"), invalid("secretfetch.io/version-id-b")},
		},
		{
			name: "modes that are not read-only or not octal",
			ann: map[string]string{"secretfetch.io/secret-a": "a", "secretfetch.io/mode-a": "0600",
				"secretfetch.io/secret-b": "b", "secretfetch.io/mode-b": "400",
				"secretfetch.io/secret-c": "c", "secretfetch.io/mode-c": "0644",
				"secretfetch.io/secret-d": "d", "secretfetch.io/mode-d": "r--"},
			want: []wantErr{invalid("secretfetch.io/mode-a"), invalid("secretfetch.io/mode-b"), invalid("secretfetch.io/mode-c"), invalid("secretfetch.io/mode-d")},
		},
		{
			name: "a pattern that does not compile, a bad key path",
			ann: map[string]string{"secretfetch.io/secret-db": "prod/db", "secretfetch.io/pattern-db": "(a",
				"secretfetch.io/key-db": "a..b"},
			want: []wantErr{invalid("secretfetch.io/key-db"), invalid("secretfetch.io/pattern-db")},
		},
		{
			name: "keys for a name with no secret",
			ann: map[string]string{"secretfetch.io/secret-db": "prod/db", "secretfetch.io/key-api": "k",
				"secretfetch.io/mode-api": "0400", "secretfetch.io/pattern-tls": "x", "secretfetch.io/version-id-x": "y"},
			want: []wantErr{
				{field.ErrorTypeRequired, ann("secretfetch.io/secret-api")}, {field.ErrorTypeRequired, ann("secretfetch.io/secret-api")},
				{field.ErrorTypeRequired, ann("secretfetch.io/secret-tls")}, {field.ErrorTypeRequired, ann("secretfetch.io/secret-x")},
			},
		},
		{
			name: "opting in with no secret",
			ann:  map[string]string{"secretfetch.io/region": "us-east-1"},
			want: []wantErr{{field.ErrorTypeRequired, ann("secretfetch.io/secret-<name>")}},
		},
		{
			name: "status set by a user",
			ann:  map[string]string{"secretfetch.io/secret-db": "prod/db", "secretfetch.io/status": "done"},
			want: []wantErr{invalid("secretfetch.io/status")},
		},
		{
			name: "relative mount path",
			ann:  map[string]string{"secretfetch.io/secret-db": "prod/db", "secretfetch.io/mount-path": "secrets"},
			want: []wantErr{invalid("secretfetch.io/mount-path")},
		},
		{
			name: "unclean mount path",
			ann:  map[string]string{"secretfetch.io/secret-db": "prod/db", "secretfetch.io/mount-path": "/app/../etc"},
			want: []wantErr{invalid("secretfetch.io/mount-path")},
		},
		{
			name: "a dedicated mount path",
			ann:  map[string]string{"secretfetch.io/secret-db": "prod/db", "secretfetch.io/mount-path": "/var/run/secrets/db"},
		},
		{
			name: "mount path colliding with a reader's mount",
			ann:  map[string]string{"secretfetch.io/secret-db": "prod/db", "secretfetch.io/mount-path": "/data"},
			pod: func(p *corev1.Pod) {
				p.Spec.Containers[1].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data/cache"}}
			},
			want: []wantErr{invalid("secretfetch.io/mount-path")},
		},
		{
			name: "a non-reader's mount does not collide",
			ann: map[string]string{"secretfetch.io/secret-db": "prod/db", "secretfetch.io/mount-path": "/data",
				"secretfetch.io/containers": "app"},
			pod: func(p *corev1.Pod) {
				p.Spec.Containers[1].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
			},
		},
		{
			name: "containers that do not exist, empty, repeated or the webhook's own",
			ann: map[string]string{"secretfetch.io/secret-db": "prod/db",
				"secretfetch.io/containers": "app,,nope,app,secretfetch-init"},
			want: []wantErr{invalid("secretfetch.io/containers"), invalid("secretfetch.io/containers"),
				{field.ErrorTypeDuplicate, ann("secretfetch.io/containers")}, invalid("secretfetch.io/containers")},
		},
		{
			name: "reserved names used for something else",
			ann:  map[string]string{"secretfetch.io/secret-db": "prod/db"},
			pod: func(p *corev1.Pod) {
				p.Spec.Volumes = []corev1.Volume{{Name: VolumeName, VolumeSource: corev1.VolumeSource{
					HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}
				p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: InitContainerName})
			},
			// The extra container is a reader too, and runs as 1000 like the others.
			want: []wantErr{invalidSpec("spec.volumes[0].name"), invalidSpec("spec.containers[2].name")},
		},
		{
			name: "Windows pods",
			ann:  map[string]string{"secretfetch.io/secret-db": "prod/db"},
			pod:  func(p *corev1.Pod) { p.Spec.OS = &corev1.PodOS{Name: corev1.Windows} },
			want: []wantErr{{field.ErrorTypeForbidden, "spec.os.name"}},
		},
		{
			name: "container runAsUser wins over the pod's",
			ann:  map[string]string{"secretfetch.io/secret-db": "prod/db"},
			pod: func(p *corev1.Pod) {
				for i := range p.Spec.Containers {
					p.Spec.Containers[i].SecurityContext = &corev1.SecurityContext{RunAsUser: ptr.To[int64](2000)}
				}
			},
			check: func(t *testing.T, inj *Injection) {
				if inj.UID != 2000 || inj.GID != 2000 {
					t.Errorf("owner = %d:%d, want 2000:2000", inj.UID, inj.GID)
				}
			},
		},
		{
			name: "readers with no UID",
			ann:  map[string]string{"secretfetch.io/secret-db": "prod/db"},
			pod: func(p *corev1.Pod) {
				p.Spec.SecurityContext = nil
				p.Spec.Containers[1].SecurityContext = &corev1.SecurityContext{RunAsUser: ptr.To[int64](1000)}
			},
			want: []wantErr{{field.ErrorTypeRequired, "spec.containers[0].securityContext.runAsUser"}},
		},
		{
			name: "readers that disagree",
			ann:  map[string]string{"secretfetch.io/secret-db": "prod/db"},
			pod: func(p *corev1.Pod) {
				p.Spec.Containers[1].SecurityContext = &corev1.SecurityContext{RunAsUser: ptr.To[int64](2000)}
			},
			want: []wantErr{invalidSpec("spec.securityContext.runAsUser")},
		},
		{
			name: "readers that disagree, reading through fsGroup",
			ann:  map[string]string{"secretfetch.io/secret-db": "prod/db", "secretfetch.io/mode-db": "0440"},
			pod: func(p *corev1.Pod) {
				p.Spec.SecurityContext.FSGroup = ptr.To[int64](3000)
				p.Spec.Containers[1].SecurityContext = &corev1.SecurityContext{RunAsUser: ptr.To[int64](2000)}
			},
			check: func(t *testing.T, inj *Injection) {
				if inj.UID != NonRootUID || inj.GID != 3000 {
					t.Errorf("owner = %d:%d, want %d:3000", inj.UID, inj.GID, NonRootUID)
				}
			},
		},
		{
			name: "root readers with 0400",
			ann:  map[string]string{"secretfetch.io/secret-db": "prod/db"},
			pod:  func(p *corev1.Pod) { p.Spec.SecurityContext.RunAsUser = ptr.To[int64](0) },
			want: []wantErr{{field.ErrorTypeForbidden, "spec.securityContext.runAsUser"}, {field.ErrorTypeForbidden, "spec.securityContext.runAsUser"}},
		},
		{
			name: "a root container among non-root readers",
			ann:  map[string]string{"secretfetch.io/secret-db": "prod/db"},
			pod: func(p *corev1.Pod) {
				p.Spec.Containers[1].SecurityContext = &corev1.SecurityContext{RunAsUser: ptr.To[int64](0)}
			},
			want: []wantErr{{field.ErrorTypeForbidden, "spec.containers[1].securityContext.runAsUser"}, invalidSpec("spec.securityContext.runAsUser")},
		},
		{
			name: "root readers with 0444",
			ann:  map[string]string{"secretfetch.io/secret-db": "prod/db", "secretfetch.io/mode-db": "0444"},
			pod:  func(p *corev1.Pod) { p.Spec.SecurityContext.RunAsUser = ptr.To[int64](0) },
			check: func(t *testing.T, inj *Injection) {
				if inj.UID != NonRootUID || inj.GID != NonRootUID {
					t.Errorf("owner = %d:%d, want %d:%d", inj.UID, inj.GID, NonRootUID, NonRootUID)
				}
			},
		},
		{
			name: "0440 without fsGroup, readers in different groups",
			ann:  map[string]string{"secretfetch.io/secret-db": "prod/db", "secretfetch.io/mode-db": "0440"},
			pod: func(p *corev1.Pod) {
				p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsGroup: ptr.To[int64](10)}
				p.Spec.Containers[1].SecurityContext = &corev1.SecurityContext{RunAsGroup: ptr.To[int64](20)}
			},
			want: []wantErr{invalidSpec("spec.securityContext.runAsGroup")},
		},
		{
			name: "0400, readers in different groups",
			ann:  map[string]string{"secretfetch.io/secret-db": "prod/db"},
			pod: func(p *corev1.Pod) {
				p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsGroup: ptr.To[int64](10)}
				p.Spec.Containers[1].SecurityContext = &corev1.SecurityContext{RunAsGroup: ptr.To[int64](20)}
			},
			check: func(t *testing.T, inj *Injection) {
				if inj.UID != 1000 || inj.GID != 1000 {
					t.Errorf("owner = %d:%d, want 1000:1000", inj.UID, inj.GID)
				}
			},
		},
		{
			name: "a selected init container's own runAsUser",
			ann:  map[string]string{"secretfetch.io/secret-db": "prod/db", "secretfetch.io/containers": "migrate"},
			pod: func(p *corev1.Pod) {
				p.Spec.InitContainers[0].SecurityContext = &corev1.SecurityContext{RunAsUser: ptr.To[int64](5000), RunAsGroup: ptr.To[int64](5001)}
			},
			check: func(t *testing.T, inj *Injection) {
				if inj.UID != 5000 || inj.GID != 5001 {
					t.Errorf("owner = %d:%d, want 5000:5001", inj.UID, inj.GID)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := basePod()
			for k, v := range tt.ann {
				pod.Annotations[k] = v
			}
			if tt.pod != nil {
				tt.pod(pod)
			}
			region := "us-east-1"
			if tt.region == "-" {
				region = ""
			}
			before := pod.DeepCopy()
			inj, errs := Parse(pod, region)
			if diff := cmp.Diff(before, pod); diff != "" {
				t.Errorf("Parse changed the pod (-before +after):\n%s", diff)
			}
			var got []wantErr
			for _, e := range errs {
				got = append(got, wantErr{e.Type, e.Field})
				if e.Detail == "" && e.Type != field.ErrorTypeDuplicate {
					t.Errorf("%s has no detail", e.Field)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("problems (-want +got):\n%s\nall:\n%s", diff, errorLines(errs))
			}
			if len(errs) == 0 && inj == nil {
				t.Fatal("no problems and no injection")
			}
			if tt.check != nil {
				tt.check(t, inj)
			}
		})
	}
}

func TestRequested(t *testing.T) {
	for _, tt := range []struct {
		value   *string
		want    bool
		wantErr bool
	}{
		{value: nil, want: false},
		{value: ptr.To("true"), want: true},
		{value: ptr.To("false"), want: false},
		{value: ptr.To("yes"), wantErr: true},
		{value: ptr.To("True"), wantErr: true},
		{value: ptr.To(""), wantErr: true},
	} {
		name := "absent"
		if tt.value != nil {
			name = *tt.value
		}
		t.Run(name, func(t *testing.T) {
			pod := &corev1.Pod{}
			if tt.value != nil {
				pod.Annotations = map[string]string{AnnotationInject: *tt.value}
			}
			got, err := Requested(pod)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Fatalf("Requested = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
			if err != nil && (err.Field != ann(AnnotationInject) || err.Type != field.ErrorTypeNotSupported) {
				t.Errorf("error = %v, want NotSupported on %s", err, ann(AnnotationInject))
			}
		})
	}
}

func TestCheckMountPath(t *testing.T) {
	for _, tt := range []struct {
		path string
		ok   bool
	}{
		{"/var/run/secrets/app", true},
		{"/secrets", true},
		{"/app/config/secrets", true},
		{"/etc", false},
		{"/etc/app", false},
		{"/usr/local/secrets", false},
		{"/proc/self", false},
		{"/sys/x", false},
		{"/dev/shm/x", false},
		{"/bin", false},
		{"/lib64/x", false},
		{"/var/run/secrets/kubernetes.io/serviceaccount", false},
		{"/run/secrets/kubernetes.io", false},
		{"/var/run/secrets/eks.amazonaws.com/serviceaccount", false},
		{"/var/run/secrets/pods.eks.amazonaws.com/serviceaccount", false},
		{"/var/run/secrets", false}, // would hide the service account token
		{"/var/run", false},
		{"/var", false},
		{"/run", false},
		{"/", false},
		{"/etcetera", true},
		{"/var/run/secrets/kubernetes.io.bak", true},
	} {
		t.Run(tt.path, func(t *testing.T) {
			err := grammar.CheckMountPath(tt.path)
			if (err == nil) != tt.ok {
				t.Fatalf("grammar.CheckMountPath(%q) = %v, want ok=%v", tt.path, err, tt.ok)
			}
		})
	}
}

// TestVolumeSize: two sets of whole pages, each file at AWS's 64 KiB (a
// rendered one at three times that, plus a little), and the refresh state.
func TestVolumeSize(t *testing.T) {
	for _, tt := range []struct {
		raw, rendered, envOnly int
		want                   string
	}{
		{1, 0, 0, "1Mi"},
		{7, 0, 0, "1Mi"},
		{8, 0, 0, "1032Ki"}, // 2 x (8 x 64 KiB + a page of state)
		{10, 0, 0, "1288Ki"},
		{100, 0, 0, "12832Ki"},
		{0, 6, 0, "2360Ki"}, // 2 x (6 x 49 pages + a page of state)
		{0, 1, 9, "1Mi"},    // env-only secrets write no file here
	} {
		p := plan.Plan{Version: plan.Version, Dir: plan.DefaultDir}
		for i := range tt.raw + tt.rendered + tt.envOnly {
			s := plan.Secret{File: fmt.Sprintf("s%d", i), ID: fmt.Sprintf("prod/s%d", i)}
			switch {
			case i >= tt.raw+tt.rendered:
				s.Env, s.NoFile = fmt.Sprintf("E%d", i), true
			case i >= tt.raw:
				s.Format = plan.FormatJSON
			}
			p.Secrets = append(p.Secrets, s)
		}
		q := volumeSize(testConfig, &p, false)
		if got := q.String(); got != tt.want {
			t.Errorf("volumeSize(%d raw, %d rendered, %d env-only) = %s, want %s", tt.raw, tt.rendered, tt.envOnly, got, tt.want)
		}
	}
}
