package grammar

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/secretfetch/secretfetch/internal/plan"
)

// TestErrorText holds each kind of problem to the text of the field.Error
// the webhook turns it into, so that init-fetch, which cannot link
// apimachinery, fails with the words the webhook denies with.
func TestErrorText(t *testing.T) {
	fp := field.NewPath("metadata", "annotations").Key(SecretPrefix + "db")
	for _, tt := range []struct {
		got  *Error
		want *field.Error
	}{
		{invalid(annotation(SecretPrefix+"db"), "x\"y", "bad"), field.Invalid(fp, "x\"y", "bad")},
		{invalid(annotation(SecretPrefix+"db"), Omit, "bad"), field.Invalid(fp, field.OmitValueType{}, "bad")},
		{required(annotation(SecretPrefix+"db"), "add it"), field.Required(fp, "add it")},
		{forbidden(annotation(SecretPrefix+"db"), "no"), field.Forbidden(fp, "no")},
		{duplicate(annotation(SecretPrefix+"db"), "app"), field.Duplicate(fp, "app")},
		{notSupported(annotation(SecretPrefix+"db"), "yes", []string{"true", "false"}), field.NotSupported(fp, "yes", []string{"true", "false"})},
		{tooMany("spec.containers", 300, MaxContainers), field.TooMany(field.NewPath("spec", "containers"), 300, MaxContainers)},
		{internalError(AnnotationsField, errors.New("boom")), field.InternalError(field.NewPath("metadata", "annotations"), errors.New("boom"))},
	} {
		if tt.got.Error() != tt.want.Error() {
			t.Errorf("text:\n got %s\nwant %s", tt.got.Error(), tt.want.Error())
		}
		if tt.got.Body() != tt.want.ErrorBody() {
			t.Errorf("body:\n got %s\nwant %s", tt.got.Body(), tt.want.ErrorBody())
		}
		if string(tt.got.Type) != string(tt.want.Type) || tt.got.Field != tt.want.Field {
			t.Errorf("type and field = %s %s, want %s %s", tt.got.Type, tt.got.Field, tt.want.Type, tt.want.Field)
		}
	}
}

// TestEnvVarName holds the grammar's copy of the API server's rule for
// variable names to apimachinery's, messages included.
func TestEnvVarName(t *testing.T) {
	for _, name := range []string{"DB_PASSWORD", "my.env-name", "MyEnvName1", "_x", "-x", ".x", "1BAD", "", ".", "..", "..x", "a b", "A=B", "é", "x1", "X.1"} {
		if got, want := envVarNameErrors(name), validation.IsEnvVarName(name); !cmp.Equal(got, want) {
			t.Errorf("%q: got %q, want %q", name, got, want)
		}
	}
}

// recorder is PodChecks that records the calls and adds one problem per
// call, to show where Parse lists them.
type recorder struct{ calls []string }

func (r *recorder) add(call string) ErrorList {
	r.calls = append(r.calls, call)
	return ErrorList{forbidden("spec."+call, "recorded")}
}

func (r *recorder) Mounts(readers []string, readersOK bool, mountPath string, mountPathOK bool) ErrorList {
	return r.add(fmt.Sprintf("mounts(%s,%v,%s,%v)", strings.Join(readers, "+"), readersOK, mountPath, mountPathOK))
}
func (r *recorder) EnvVar(readers []string, key, name string) ErrorList {
	return r.add(fmt.Sprintf("envVar(%s,%s)", key, name))
}
func (r *recorder) EnvRefs(readers []string, vars map[string]string) ErrorList {
	return r.add(fmt.Sprintf("envRefs(%d)", len(vars)))
}
func (r *recorder) RestartInPlace() ErrorList { return r.add("restartInPlace") }
func (r *recorder) Owner(readers []string, secrets []plan.Secret) ErrorList {
	return r.add(fmt.Sprintf("owner(%s,%d)", strings.Join(readers, "+"), len(secrets)))
}
func (r *recorder) Platform() ErrorList { return r.add("platform") }

// TestPodChecksOrder: Parse asks the caller's pod checks where the webhook
// has always listed their problems: mounts after the containers annotation,
// each variable's clash right after its env- annotation, the env file's
// references after the outputs, the restart policy among the restart
// problems, and the owner and platform last.
func TestPodChecksOrder(t *testing.T) {
	r := &recorder{}
	_, errs := Parse(Input{
		Annotations: map[string]string{
			AnnotationInject: "true", SecretPrefix + "db": "prod/db", EnvPrefix + "db": "DB",
			SecretPrefix + "api": "prod/api", EnvPrefix + "api": "1BAD",
			AnnotationRegion: "us-east-1", AnnotationRefreshInterval: "5m", AnnotationRefreshRestart: "true",
		},
		Containers: []string{"app", "sidecar"},
	}, Settings{Restart: RestartSettings{Enabled: true}}, r)
	var got []string
	for _, e := range errs {
		got = append(got, e.Field)
	}
	want := []string{
		"spec.mounts(app+sidecar,true,/var/run/secrets/app,true)",
		annotation(EnvPrefix + "api"),
		"spec.envVar(" + EnvPrefix + "db,DB)",
		"spec.envRefs(1)",
		"spec.restartInPlace",
		"spec.owner(app+sidecar,2)",
		"spec.platform",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

// TestParseWithoutPod is the parse init-fetch makes: annotations and
// container names only.
func TestParseWithoutPod(t *testing.T) {
	res, errs := Parse(Input{
		Annotations: map[string]string{
			AnnotationInject: "true", AnnotationStatus: StatusInjected, "other.io/x": "y",
			SecretPrefix + "db": "prod/db", KeyPrefix + "db": "password", ModePrefix + "db": "0440",
			SecretPrefix + "api": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:api-AbCdEf", EnvPrefix + "api": "API_KEY", FilePrefix + "api": "false",
			AnnotationContainers: "app, worker", AnnotationRefreshInterval: "10m",
		},
		Containers:     []string{"app", "other"},
		InitContainers: []string{InitContainerName, "worker"},
	}, Settings{DefaultRegion: "us-east-1"}, nil)
	if len(errs) > 0 {
		t.Fatalf("problems: %v", errs)
	}
	want := &Result{
		Plan: plan.Plan{Version: plan.Version, Dir: plan.DefaultDir, Subdir: plan.FilesSubdir, Region: "us-east-1", EnvDir: EnvMountPath,
			Secrets: []plan.Secret{
				{File: "api", ID: "arn:aws:secretsmanager:eu-west-1:111122223333:secret:api-AbCdEf", Env: "API_KEY", NoFile: true},
				{File: "db", ID: "prod/db", Key: "password", Mode: 0o440},
			}},
		Readers: []string{"app", "worker"},
		Refresh: &Refresh{Interval: 10 * time.Minute},
	}
	if diff := cmp.Diff(want, res, cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Encoded" }, cmp.Ignore())); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	decoded, err := plan.Decode([]byte(res.Encoded))
	if err != nil {
		t.Fatalf("the encoded plan does not decode: %v", err)
	}
	if diff := cmp.Diff(&res.Plan, decoded); diff != "" {
		t.Errorf("encoded plan (-parsed +decoded):\n%s", diff)
	}
}

// TestParseErrors: problems found from the annotations and names alone,
// each naming its annotation and what is allowed.
func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   Input
		s    Settings
		want []string
	}{{
		name: "typo and a missing ID",
		in: Input{Annotations: map[string]string{SecretPrefix + "db": "prod/db", Prefix + "secrets-db": "x", KeyPrefix + "api": "a"},
			Containers: []string{"app"}},
		s: Settings{DefaultRegion: "us-east-1"},
		want: []string{
			"metadata.annotations[secretfetch.io/secrets-db]: Invalid value: this is not a secretfetch.io annotation; the keys are " + AllowedKeys,
			"metadata.annotations[secretfetch.io/secret-api]: Required value: secretfetch.io/key-api is set, so this secret ID is required too; add it, or remove secretfetch.io/key-api",
		},
	}, {
		name: "unknown reader",
		in: Input{Annotations: map[string]string{SecretPrefix + "db": "prod/db", AnnotationContainers: "app,ghost,app"},
			Containers: []string{"app"}, InitContainers: []string{InitContainerName}},
		s: Settings{DefaultRegion: "us-east-1"},
		want: []string{
			`metadata.annotations[secretfetch.io/containers]: Invalid value: "ghost": names no container or init container in this pod (it has "app")`,
			`metadata.annotations[secretfetch.io/containers]: Duplicate value: "app"`,
		},
	}, {
		name: "no region, env files off",
		in: Input{Annotations: map[string]string{SecretPrefix + "db": "prod/db", EnvPrefix + "db": "DB"},
			Containers: []string{"app"}},
		s: Settings{NoEnvFiles: true},
		want: []string{
			`metadata.annotations[secretfetch.io/region]: Required value: secret "db" given by name, not by ARN, so a region is needed: set secretfetch.io/region, or start the webhook with --default-region`,
			"metadata.annotations[secretfetch.io/env-db]: Forbidden: EnvFiles needs Kubernetes 1.35 or later, and this webhook runs with --env-files=false; deliver the secret as a file instead",
		},
	}, {
		name: "a refresh sidecar of the pod's own",
		in: Input{Annotations: map[string]string{SecretPrefix + "db": "prod/db"},
			Containers: []string{"app"}, InitContainers: []string{RefreshContainerName}},
		s: Settings{DefaultRegion: "us-east-1"},
		want: []string{
			`spec.initContainers[0].name: Invalid value: "secretfetch-refresh": this container name is reserved for secretfetch's refresh sidecar, which secretfetch.io/refresh-interval adds; rename the container`,
		},
	}, {
		name: "too many containers",
		in:   Input{Annotations: map[string]string{SecretPrefix + "db": "prod/db"}, Containers: make([]string, MaxContainers+1)},
		want: []string{"spec.containers: Too many: 257: must have at most 256 items"},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			res, errs := Parse(tt.in, tt.s, nil)
			if res != nil {
				t.Fatalf("parsed, want problems")
			}
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}
