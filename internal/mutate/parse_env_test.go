package mutate

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/secretfetch/secretfetch/internal/plan"
)

// TestParseOutputs: env-, file- and format- keys become plan fields, and
// every misuse is denied with a message that names the annotation and says
// what to do. The clash, uniqueness, name and --env-files denials are in the
// golden cases deny-env-clash and deny-env-files-off.
func TestParseOutputs(t *testing.T) {
	tests := []struct {
		name string
		ann  map[string]string
		pod  func(*corev1.Pod)
		opts []ParseOption
		want []string // every problem, as errorLines prints it; nil for none
		plan func(p *plan.Plan)
	}{
		{
			name: "env, env only, rendered",
			ann: map[string]string{
				"secretfetch.io/secret-db": "prod/db", "secretfetch.io/env-db": "DB_PASSWORD", "secretfetch.io/file-db": "false",
				"secretfetch.io/secret-api": "prod/api", "secretfetch.io/env-api": "api.key-2",
				"secretfetch.io/secret-cfg": "prod/cfg", "secretfetch.io/format-cfg": "yaml", "secretfetch.io/file-cfg": "true",
			},
			plan: func(p *plan.Plan) {
				p.EnvDir = EnvMountPath
				p.Secrets = []plan.Secret{
					{File: "api", ID: "prod/api", Env: "api.key-2"},
					{File: "cfg", ID: "prod/cfg", Format: plan.FormatYAML},
					{File: "db", ID: "prod/db", Env: "DB_PASSWORD", NoFile: true},
				}
			},
		},
		{
			name: "--env-files on by option",
			ann:  map[string]string{"secretfetch.io/secret-db": "prod/db", "secretfetch.io/env-db": "DB"},
			opts: []ParseOption{WithEnvFiles(false), WithEnvFiles(true)},
			plan: func(p *plan.Plan) {
				p.EnvDir = EnvMountPath
				p.Secrets = []plan.Secret{{File: "db", ID: "prod/db", Env: "DB"}}
			},
		},
		{
			name: "file is not a boolean",
			ann:  map[string]string{"secretfetch.io/secret-db": "prod/db", "secretfetch.io/env-db": "DB", "secretfetch.io/file-db": "no"},
			want: []string{`metadata.annotations[secretfetch.io/file-db]: Unsupported value: "no": supported values: "true", "false"`},
		},
		{
			name: "format unknown",
			ann:  map[string]string{"secretfetch.io/secret-db": "prod/db", "secretfetch.io/format-db": "env"},
			want: []string{`metadata.annotations[secretfetch.io/format-db]: Unsupported value: "env": supported values: "dotenv", "json", "properties", "yaml"`},
		},
		{
			name: "format and mode without a file",
			ann: map[string]string{"secretfetch.io/secret-db": "prod/db", "secretfetch.io/env-db": "DB", "secretfetch.io/file-db": "false",
				"secretfetch.io/format-db": "json", "secretfetch.io/mode-db": "0440"},
			want: []string{
				`metadata.annotations[secretfetch.io/format-db]: Forbidden: secretfetch.io/file-db is "false", so there is no file to render; remove one of the two`,
				`metadata.annotations[secretfetch.io/mode-db]: Forbidden: secretfetch.io/file-db is "false", so there is no file to give a mode; remove one of the two`,
				`metadata.annotations[secretfetch.io/env-db]: Forbidden: secretfetch.io/format-db renders a file of many keys, and a variable takes one value; use secretfetch.io/key-db to pick one field`,
			},
		},
		{
			name: "env without a secret",
			ann:  map[string]string{"secretfetch.io/secret-db": "prod/db", "secretfetch.io/env-api": "API"},
			want: []string{`metadata.annotations[secretfetch.io/secret-api]: Required value: secretfetch.io/env-api is set, so this secret ID is required too; add it, or remove secretfetch.io/env-api`},
		},
		{
			name: "env name with '..'",
			ann:  map[string]string{"secretfetch.io/secret-db": "prod/db", "secretfetch.io/env-db": "..DB"},
			want: []string{`metadata.annotations[secretfetch.io/env-db]: Invalid value: "..DB": must not start with '..'`},
		},
		{
			name: "mount path over the env file",
			ann:  map[string]string{"secretfetch.io/secret-db": "prod/db", "secretfetch.io/env-db": "DB", "secretfetch.io/mount-path": "/var/run/secretfetch-env/app"},
			want: []string{`metadata.annotations[secretfetch.io/mount-path]: Invalid value: "/var/run/secretfetch-env/app": overlaps /var/run/secretfetch-env, where the init container writes the env file; choose another directory`},
		},
		{
			name: "env volume name taken",
			ann:  map[string]string{"secretfetch.io/secret-db": "prod/db"},
			pod: func(p *corev1.Pod) {
				p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: EnvVolumeName, VolumeSource: corev1.VolumeSource{
					ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "x"}}}})
			},
			want: []string{`spec.volumes[0].name: Invalid value: "secretfetch-env": this volume name is reserved for secretfetch's env file; rename the volume`},
		},
		{
			name: "clash in a selected init container",
			ann: map[string]string{"secretfetch.io/secret-db": "prod/db", "secretfetch.io/env-db": "DB",
				"secretfetch.io/containers": "migrate"},
			pod: func(p *corev1.Pod) {
				p.Spec.InitContainers[0].Env = []corev1.EnvVar{{Name: "X", Value: "1"}, {Name: "DB", Value: "2"}}
			},
			want: []string{`metadata.annotations[secretfetch.io/env-db]: Invalid value: "DB": container "migrate" already sets this variable (spec.initContainers[0].env[1]); remove it there, or choose another name`},
		},
		{
			// The env file's volume need not be mounted to be read through
			// fileKeyRef: an entry in a container that the pod did not
			// select would hand it the value.
			name: "a container that is not a reader reads the env file",
			ann: map[string]string{"secretfetch.io/secret-db": "prod/db", "secretfetch.io/env-db": "DB",
				"secretfetch.io/containers": "app"},
			pod: func(p *corev1.Pod) {
				p.Spec.Containers[1].Env = []corev1.EnvVar{{Name: "DB", ValueFrom: &corev1.EnvVarSource{FileKeyRef: &corev1.FileKeySelector{
					VolumeName: EnvVolumeName, Path: plan.EnvFileName, Key: "DB"}}}}
				p.Spec.InitContainers[0].Env = []corev1.EnvVar{{Name: "EARLY", ValueFrom: &corev1.EnvVarSource{FileKeyRef: &corev1.FileKeySelector{
					VolumeName: EnvVolumeName, Path: plan.EnvFileName, Key: "DB"}}}}
			},
			want: []string{
				`spec.initContainers[0].env[0]: Forbidden: container "migrate" reads secretfetch's env file (volume secretfetch-env) through fileKeyRef, but it is not one of the containers that read the secrets; remove the entry, or list the container in secretfetch.io/containers`,
				`spec.containers[1].env[0]: Forbidden: container "sidecar" reads secretfetch's env file (volume secretfetch-env) through fileKeyRef, but it is not one of the containers that read the secrets; remove the entry, or list the container in secretfetch.io/containers`,
			},
		},
		{
			name: "a reader reads the env file under a name of its own",
			ann:  map[string]string{"secretfetch.io/secret-db": "prod/db", "secretfetch.io/env-db": "DB"},
			pod: func(p *corev1.Pod) {
				p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "COPY", ValueFrom: &corev1.EnvVarSource{FileKeyRef: &corev1.FileKeySelector{
					VolumeName: EnvVolumeName, Path: plan.EnvFileName, Key: "DB"}}}}
			},
			want: []string{
				`spec.containers[0].env[0]: Forbidden: container "app" reads key "DB" of secretfetch's env file as COPY; the webhook sets each variable of secretfetch.io/env-<name> itself, so remove this entry`,
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
			inj, errs := Parse(pod, "us-east-1", tt.opts...)
			if tt.want != nil {
				var got []string
				if errs != nil {
					got = strings.Split(strings.TrimSuffix(errorLines(errs), "\n"), "\n")
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("problems (-want +got):\n%s", diff)
				}
				return
			}
			if errs != nil {
				t.Fatalf("denied:\n%s", errorLines(errs))
			}
			want := plan.Plan{Version: 1, Dir: plan.DefaultDir, Subdir: plan.FilesSubdir, Region: "us-east-1"}
			tt.plan(&want)
			if diff := cmp.Diff(want, inj.Plan); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}
