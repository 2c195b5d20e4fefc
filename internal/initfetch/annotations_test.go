package initfetch

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/secretfetch/secretfetch/internal/grammar"
	"github.com/secretfetch/secretfetch/internal/plan"
)

// formatMap is the kubelet's downward-API form of a map, as
// k8s.io/kubernetes/pkg/fieldpath.FormatMap writes it (v1.37.1): keys
// sorted, key=strconv.Quote(value), lines joined by "\n" with none at the
// end. (The module does not depend on k8s.io/kubernetes, so it is copied.)
func formatMap(m map[string]string) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var dst []byte
	for _, k := range keys {
		if len(dst) > 0 {
			dst = append(dst, '\n')
		}
		dst = append(dst, k...)
		dst = append(dst, '=')
		dst = strconv.AppendQuote(dst, m[k])
	}
	return dst
}

func TestParseAnnotations(t *testing.T) {
	m := map[string]string{
		"secretfetch.io/secret-db":      "prod/db",
		"secretfetch.io/pattern-db":     `^[a-z"\\]+$`,
		"multi.example.com/line":        "a\nb\r\n\tc",
		"kubectl.kubernetes.io/applied": `{"a":"b=c"}`,
		"unicode":                       "héllo ✓ \u2028",
		"invalid-utf8":                  "a\xffb",
		"empty":                         "",
	}
	got, err := ParseAnnotations(formatMap(m))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, got); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"novalue", `=""`, `k=unquoted`, `k="open`, "k=\"a\"\nk=\"b\"", `k='x'`} {
		if _, err := ParseAnnotations([]byte(bad)); err == nil {
			t.Errorf("%q: parsed, want an error", bad)
		}
	}
}

// podAnnotations writes the annotations file of the policy mode and
// returns the environment the policy gives init-fetch.
func podAnnotations(t *testing.T, m map[string]string) map[string]string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "annotations")
	if err := os.WriteFile(path, formatMap(m), 0o644); err != nil {
		t.Fatal(err)
	}
	return map[string]string{EnvAnnotationsFile: path, EnvContainers: "app,worker", EnvInitContainers: "migrate", EnvDefaultRegion: "us-east-1"}
}

// TestRunFromAnnotations: with no encoded plan, init-fetch fetches what the
// pod's annotations ask for, as the webhook's plan would have it.
func TestRunFromAnnotations(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	want := h.secret(t, "app/db")
	env := podAnnotations(t, map[string]string{
		grammar.AnnotationInject: "true", grammar.AnnotationStatus: grammar.StatusInjected,
		grammar.AnnotationMountPath: dir, grammar.AnnotationContainers: "app,migrate",
		grammar.SecretPrefix + "db": "app/db", grammar.ModePrefix + "db": "0440",
		"app.kubernetes.io/name": "demo",
	})
	err, lines := h.run(t, env, "--allow-non-tmpfs")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, plan.FilesSubdir, "db")
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, %v; want the %d bytes of the secret", path, len(got), err, len(want))
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode() != 0o440 {
		t.Errorf("%s: mode %v (%v), want 0440", path, fi.Mode(), err)
	}
	if len(withMsg(lines, "wrote secrets")) != 1 {
		t.Errorf("no 'wrote secrets' line: %v", lines)
	}
}

// TestRunFromAnnotationsProblems: what admission let through fails the
// container with the webhook's denial message, and nothing is fetched.
func TestRunFromAnnotationsProblems(t *testing.T) {
	for _, tt := range []struct {
		name        string
		annotations map[string]string
		env         map[string]string
		want        string // the termination message
	}{{
		name:        "a typo",
		annotations: map[string]string{grammar.SecretPrefix + "db": "prod/db", "secretfetch.io/secrets-db": "x"},
		want:        "secretfetch: metadata.annotations[secretfetch.io/secrets-db]: Invalid value: this is not a secretfetch.io annotation; the keys are " + grammar.AllowedKeys,
	}, {
		name: "a bad pattern and an unknown reader",
		annotations: map[string]string{grammar.SecretPrefix + "db": "prod/db", grammar.PatternPrefix + "db": "(a",
			grammar.AnnotationContainers: "app,ghost"},
		want: `secretfetch: [metadata.annotations[secretfetch.io/containers]: Invalid value: "ghost": names no container or init container in this pod (it has "migrate", "app", "worker"), ` +
			"metadata.annotations[secretfetch.io/pattern-db]: Invalid value: \"(a\": not a valid RE2 pattern: error parsing regexp: missing closing ): `^(?:(a)$`]",
	}, {
		name:        "no region",
		annotations: map[string]string{grammar.SecretPrefix + "db": "prod/db"},
		env:         map[string]string{EnvDefaultRegion: ""},
		want:        `secretfetch: metadata.annotations[secretfetch.io/region]: Required value: secret "db" given by name, not by ARN, so a region is needed: set secretfetch.io/region, or start the webhook with --default-region`,
	}, {
		name:        "restart turned off",
		annotations: map[string]string{grammar.SecretPrefix + "db": "prod/db", grammar.AnnotationRefreshInterval: "5m", grammar.AnnotationRefreshRestart: "true"},
		env:         map[string]string{EnvRefreshRestart: "false"},
		want: "secretfetch: metadata.annotations[secretfetch.io/refresh-restart]: Forbidden: this cluster cannot restart a pod in place: the policy's parameters turn it off (SECRETFETCH_REFRESH_RESTART=false); " +
			"set secretfetch.io/refresh-notify to have the app reload its files, or roll the workload out after a rotation",
	}} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			if err := os.WriteFile(h.termLog, nil, 0o644); err != nil { // as kubelet does
				t.Fatal(err)
			}
			tt.annotations[grammar.AnnotationInject] = "true"
			env := podAnnotations(t, tt.annotations)
			for k, v := range tt.env {
				env[k] = v
			}
			err, _ := h.run(t, env, "--allow-non-tmpfs")
			var pe *grammar.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Run = %v, want a *grammar.ParseError", err)
			}
			if ExitCode(err) != 1 {
				t.Errorf("exit code %d, want 1", ExitCode(err))
			}
			msg, _ := os.ReadFile(h.termLog)
			if diff := cmp.Diff(tt.want, string(msg)); diff != "" {
				t.Errorf("termination message (-want +got):\n%s", diff)
			}
			if n := len(h.fk.Requests()); n != 0 {
				t.Errorf("%d requests sent to Secrets Manager", n)
			}
		})
	}
}

// TestPolicySettings: a bad setting is the operator's, named by its variable.
func TestPolicySettings(t *testing.T) {
	for _, tt := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{EnvDefaultRegion: "Mars"}, EnvDefaultRegion},
		{map[string]string{EnvDefaultFailoverRegion: "Venus"}, EnvDefaultFailoverRegion},
		{map[string]string{EnvMinRefreshInterval: "soon"}, EnvMinRefreshInterval},
		{map[string]string{EnvMinRefreshInterval: "10ms"}, EnvMinRefreshInterval},
		{map[string]string{EnvEnvFiles: "no"}, EnvEnvFiles},
		{map[string]string{EnvRefreshRestart: "maybe"}, EnvRefreshRestart},
		{map[string]string{EnvRefreshRestartWindow: "48h"}, EnvRefreshRestartWindow},
	} {
		_, err := policySettings(func(k string) string { return tt.env[k] })
		if err == nil || !strings.Contains(err.Error(), "$"+tt.want) {
			t.Errorf("%v: %v, want an error naming $%s", tt.env, err, tt.want)
		}
	}
	s, err := policySettings(func(k string) string {
		return map[string]string{EnvDefaultRegion: "eu-west-1", EnvDefaultFailoverRegion: "eu-central-1", EnvMinRefreshInterval: "2s", EnvEnvFiles: "false"}[k]
	})
	want := grammar.Settings{DefaultRegion: "eu-west-1", DefaultFailoverRegion: "eu-central-1", MinRefreshInterval: 2e9, NoEnvFiles: true,
		Restart: grammar.RestartSettings{Enabled: true}}
	if err != nil || s != want {
		t.Errorf("policySettings = %+v, %v; want %+v", s, err, want)
	}
}

// TestNoPlanNamesAnnotations: without any plan, the error says how to give
// one, the annotations file included.
func TestNoPlanNamesAnnotations(t *testing.T) {
	if _, err := os.Stat(DefaultAnnotationsFile); err == nil {
		t.Skipf("skipping: %s exists here", DefaultAnnotationsFile)
	}
	h := newHarness(t)
	err, _ := h.run(t, nil)
	if err == nil || !strings.Contains(err.Error(), EnvAnnotationsFile) {
		t.Errorf("Run = %v, want an error naming %s", err, EnvAnnotationsFile)
	}
	env := map[string]string{EnvAnnotationsFile: filepath.Join(t.TempDir(), "absent")}
	if err, _ := h.run(t, env); err == nil || !strings.Contains(err.Error(), "downward API") {
		t.Errorf("Run with a missing file = %v, want an error naming the downward API", err)
	}
}

// FuzzParseAnnotations: whatever the annotations, the kubelet's file of them
// reads back as the same map.
func FuzzParseAnnotations(f *testing.F) {
	f.Add("secretfetch.io/secret-db", "prod/db", "x", "a\nb")
	f.Add("k", `"quoted" = \ back`, "z", "\xff\x00\u2028")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		m := map[string]string{}
		for _, kv := range [][2]string{{k1, v1}, {k2, v2}} {
			// Annotation keys are qualified names: never empty, no '=', no
			// line break (the API server refuses others).
			if kv[0] == "" || strings.ContainsAny(kv[0], "=\n\r") {
				return
			}
			m[kv[0]] = kv[1]
		}
		got, err := ParseAnnotations(formatMap(m))
		if err != nil {
			t.Fatalf("ParseAnnotations: %v", err)
		}
		if !cmp.Equal(m, got) {
			t.Fatalf("read back %d annotations, want %d, or a value differs", len(got), len(m))
		}
	})
}
