package mutate

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/secretfetch/secretfetch/internal/grammar"
	"github.com/secretfetch/secretfetch/internal/plan"
)

// TestParseAllowKeys: allow-keys-<name> lists the dotenv keys that change
// how a process runs and that the pod lets its file hold; it becomes
// plan.Secret.AllowKeys, and every misuse is denied with a message that
// names the annotation and says what is allowed.
func TestParseAllowKeys(t *testing.T) {
	const ap = "metadata.annotations[secretfetch.io/allow-keys-cfg]: "
	dotenv := map[string]string{"secretfetch.io/secret-cfg": "prod/cfg", "secretfetch.io/format-cfg": "dotenv"}
	tests := []struct {
		name  string
		ann   map[string]string
		want  []string // every problem, as errorLines prints it; nil for none
		allow []string
	}{
		{name: "two keys", ann: map[string]string{"secretfetch.io/allow-keys-cfg": "PATH,NODE_OPTIONS"}, allow: []string{"PATH", "NODE_OPTIONS"}},
		{name: "spaces and a prefix of the list", ann: map[string]string{"secretfetch.io/allow-keys-cfg": " LD_PRELOAD , BASH_FUNC_x ,https_proxy"},
			allow: []string{"LD_PRELOAD", "BASH_FUNC_x", "https_proxy"}},
		{name: "a key dotenv does not refuse", ann: map[string]string{"secretfetch.io/allow-keys-cfg": "PATH,DB_HOST"},
			want: []string{ap + `Invalid value: "DB_HOST": a dotenv rendering writes this key anyway; list only keys that change how a process runs (the README lists them), such as PATH or NODE_OPTIONS`}},
		{name: "not a shell name", ann: map[string]string{"secretfetch.io/allow-keys-cfg": "PATH,1X,A-B"},
			want: []string{
				ap + `Invalid value: "1X": not a shell variable name: use letters, digits and '_', not starting with a digit`,
				ap + `Invalid value: "A-B": not a shell variable name: use letters, digits and '_', not starting with a digit`,
			}},
		{name: "empty entries", ann: map[string]string{"secretfetch.io/allow-keys-cfg": "PATH,,IFS,"},
			want: []string{ap + `Invalid value: "PATH,,IFS,": an entry is empty; list key names separated by commas`}},
		{name: "empty", ann: map[string]string{"secretfetch.io/allow-keys-cfg": ""},
			want: []string{ap + `Invalid value: "": an entry is empty; list key names separated by commas`}},
		{name: "twice", ann: map[string]string{"secretfetch.io/allow-keys-cfg": "PATH,IFS,PATH"},
			want: []string{ap + `Duplicate value: "PATH"`}},
		{name: "too many", ann: map[string]string{"secretfetch.io/allow-keys-cfg": strings.Repeat("PATH,", plan.MaxAllowKeys) + "IFS"},
			want: []string{ap + `Invalid value: "<65 entries>": at most 64 keys may be listed`}},
		{name: "not dotenv", ann: map[string]string{"secretfetch.io/format-cfg": "json", "secretfetch.io/allow-keys-cfg": "PATH"},
			want: []string{ap + `Forbidden: only a dotenv rendering refuses keys, and secretfetch.io/format-cfg is "json"; remove this annotation`}},
		{name: "no format", ann: map[string]string{"secretfetch.io/format-cfg": "", "secretfetch.io/allow-keys-cfg": "PATH"},
			want: []string{
				`metadata.annotations[secretfetch.io/format-cfg]: Unsupported value: "": supported values: "dotenv", "json", "properties", "yaml"`,
			}},
		{name: "no format key", ann: map[string]string{"secretfetch.io/secret-raw": "prod/raw", "secretfetch.io/allow-keys-raw": "PATH"},
			want: []string{`metadata.annotations[secretfetch.io/allow-keys-raw]: Forbidden: only a dotenv rendering refuses keys, and there is no secretfetch.io/format-raw; set it to dotenv, or remove this annotation`}},
		{name: "without a secret", ann: map[string]string{"secretfetch.io/allow-keys-other": "PATH"},
			want: []string{`metadata.annotations[secretfetch.io/secret-other]: Required value: secretfetch.io/allow-keys-other is set, so this secret ID is required too; add it, or remove secretfetch.io/allow-keys-other`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := basePod()
			for k, v := range dotenv {
				pod.Annotations[k] = v
			}
			for k, v := range tt.ann {
				pod.Annotations[k] = v
			}
			inj, errs := Parse(pod, "us-east-1")
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
			want := []plan.Secret{{File: "cfg", ID: "prod/cfg", Format: plan.FormatDotenv, AllowKeys: tt.allow}}
			if diff := cmp.Diff(want, inj.Plan.Secrets); diff != "" {
				t.Errorf("secrets (-want +got):\n%s", diff)
			}
			if !strings.Contains(inj.encoded, `"allowKeys":[`) {
				t.Error("the encoded plan does not carry allowKeys")
			}
		})
	}
}

// TestAllowKeysAnnotationIsKnown: the new key is not an unknown
// secretfetch.io annotation, and the denial for one lists it.
func TestAllowKeysAnnotationIsKnown(t *testing.T) {
	if !strings.Contains(grammar.AllowedKeys, "allow-keys-<name>") {
		t.Errorf("grammar.AllowedKeys does not list allow-keys-<name>: %s", grammar.AllowedKeys)
	}
	if AllowKeysPrefix != "secretfetch.io/allow-keys-" {
		t.Errorf("AllowKeysPrefix = %q", AllowKeysPrefix)
	}
}
