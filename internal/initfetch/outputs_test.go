package initfetch

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/secretfetch/secretfetch/internal/envfile"
	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/render"
	"github.com/secretfetch/secretfetch/internal/smfake"
)

// visible lists the names an app sees in dir: not the layout's hidden
// "..data" link and data directory.
func visible(t *testing.T, dir string) []string {
	t.Helper()
	return slices.DeleteFunc(names(t, dir), func(n string) bool { return strings.HasPrefix(n, "..") })
}

// create stores a secret with the given value (which should hold the
// canary, so that the harness catches it in logs and errors).
func (h *harness) create(t *testing.T, id string, v smfake.Value) {
	t.Helper()
	if _, _, err := h.fk.CreateSecret(id, v); err != nil {
		t.Fatal(err)
	}
}

func TestRunEnvAndFormats(t *testing.T) {
	h := newHarness(t)
	dir, envDir := t.TempDir(), t.TempDir()
	h.create(t, "app/db", smfake.Value{String: `{"password":"pw-` + canary + `\nline 2","user":"app"}`})
	h.create(t, "app/api", smfake.Value{String: "api-" + canary})
	h.create(t, "app/config", smfake.Value{String: `{"HOST":"db.local","PORT":5432,"NOTE":"it's ` + canary + `"}`})
	p := planJSON(t, &plan.Plan{Version: 1, Dir: dir, EnvDir: envDir, Region: "us-east-1", Secrets: []plan.Secret{
		{File: "db", ID: "app/db", Key: "password", Env: "DB_PASSWORD", NoFile: true},
		{File: "api", ID: "app/api", Env: "API_KEY"},
		{File: "config.yaml", ID: "app/config", Format: plan.FormatYAML},
		{File: "config.json", ID: "app/config", Format: plan.FormatJSON},
	}})
	err, lines := h.run(t, map[string]string{plan.EnvVar: p}, "--allow-non-tmpfs")
	if err != nil {
		t.Fatal(err)
	}
	if got := visible(t, dir); !slices.Equal(got, []string{"api", "config.json", "config.yaml"}) {
		t.Errorf("files %q; want api and the two renderings, and no db (env only)", got)
	}
	if got := names(t, envDir); !slices.Equal(got, []string{plan.EnvFileName}) {
		t.Errorf("env dir holds %q, want only %s", got, plan.EnvFileName)
	}
	env, _ := os.ReadFile(filepath.Join(envDir, plan.EnvFileName))
	want, _ := envfile.Encode([]envfile.Var{
		{Name: "DB_PASSWORD", Value: []byte("pw-" + canary + "\nline 2")}, {Name: "API_KEY", Value: []byte("api-" + canary)}})
	if string(env) != string(want) {
		t.Errorf("the env file differs from Encode's (%d bytes, want %d)", len(env), len(want))
	}
	if fi, err := os.Stat(filepath.Join(envDir, plan.EnvFileName)); err != nil || fi.Mode() != 0o400 {
		t.Errorf("env file: %v, %v; want mode 0400", fi, err)
	}
	yaml, _ := os.ReadFile(filepath.Join(dir, "config.yaml"))
	if want := "\"HOST\": \"db.local\"\n\"PORT\": \"5432\"\n\"NOTE\": \"it's " + canary + "\"\n"; string(yaml) != want {
		t.Errorf("config.yaml is not the yaml rendering (%d bytes, want %d)", len(yaml), len(want))
	}
	if len(withMsg(lines, "wrote env file")) != 1 {
		t.Errorf("no 'wrote env file' line: %v", lines)
	}
}

func TestRunEnvValueNotCarried(t *testing.T) {
	h := newHarness(t)
	dir, envDir := t.TempDir(), t.TempDir()
	if err := os.WriteFile(h.termLog, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h.create(t, "app/quote", smfake.Value{String: "it's-" + canary})
	h.create(t, "app/bin", smfake.Value{Binary: []byte(canary)})
	h.create(t, "app/ok", smfake.Value{String: "ok-" + canary})
	// Keys are part of the value: the one dotenv cannot carry is named
	// by its position, in the termination message and in the log.
	const key = "db.host-K3Y-CANARY"
	h.create(t, "app/cfg", smfake.Value{String: `{"` + key + `":"` + canary + `"}`})
	p := planJSON(t, &plan.Plan{Version: 1, Dir: dir, EnvDir: envDir, Region: "us-east-1", Secrets: []plan.Secret{
		{File: "ok", ID: "app/ok", Env: "OK"},
		{File: "quote", ID: "app/quote", Env: "DB_PASSWORD"},
		{File: "bin", ID: "app/bin", Env: "BLOB", NoFile: true},
		{File: "cfg.env", ID: "app/cfg", Format: plan.FormatDotenv},
	}})
	err, lines := h.run(t, map[string]string{plan.EnvVar: p}, "--allow-non-tmpfs")
	var oe *OutputsError
	if !errors.As(err, &oe) {
		t.Fatalf("Run = %v, want an *OutputsError", err)
	}
	if log, _ := json.Marshal(lines); strings.Contains(err.Error(), "K3Y-CANARY") || strings.Contains(string(log), "K3Y-CANARY") {
		t.Error("the error or the log names a key of the secret")
	}
	var got []string
	for _, f := range oe.Failures {
		got = append(got, f.ID+" "+f.Env+" "+f.Code)
	}
	want := []string{"app/bin BLOB " + CodeBinaryEnv, "app/cfg  " + render.CodeUnsupportedKey, "app/quote DB_PASSWORD " + envfile.CodeUnsupportedValue}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("failures %q, want %q", got, want)
	}
	if n := names(t, dir); len(n) != 0 {
		t.Errorf("files %q written after a failure, want none", n)
	}
	if n := names(t, envDir); len(n) != 0 {
		t.Errorf("env dir holds %q after a failure, want nothing", n)
	}
	msg, _ := os.ReadFile(h.termLog)
	for _, want := range []string{"app/quote (env DB_PASSWORD): UnsupportedEnvValue: it contains a single quote",
		"app/bin (env BLOB): BinaryEnvValue", `app/cfg (file cfg.env): UnsupportedKey: rendering as dotenv: UnsupportedKey: key #1: `} {
		if !strings.Contains(string(msg), want) {
			t.Errorf("termination message %q lacks %q", msg, want)
		}
	}
	if strings.Contains(string(msg), "K3Y-CANARY") {
		t.Error("the termination message names a key of the secret")
	}
}

// TestRunDotenvProcessKeys: a dotenv file refuses a key that changes how a
// process runs, naming it by position only, and writes it when the plan
// allows that exact key.
func TestRunDotenvProcessKeys(t *testing.T) {
	h := newHarness(t)
	if err := os.WriteFile(h.termLog, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h.create(t, "app/cfg", smfake.Value{String: `{"HOST":"db.local","NODE_OPTIONS":"--require=/x-` + canary + `"}`})
	secret := plan.Secret{File: "app.env", ID: "app/cfg", Format: plan.FormatDotenv}

	dir := t.TempDir()
	err, lines := h.run(t, map[string]string{plan.EnvVar: planJSON(t, &plan.Plan{Version: 1, Dir: dir, Region: "us-east-1", Secrets: []plan.Secret{secret}})}, "--allow-non-tmpfs")
	var oe *OutputsError
	if !errors.As(err, &oe) || len(oe.Failures) != 1 || oe.Failures[0].Code != render.CodeProcessKey {
		t.Fatalf("Run = %v, want one %s failure", err, render.CodeProcessKey)
	}
	msg, _ := os.ReadFile(h.termLog)
	if !strings.Contains(string(msg), "app/cfg (file app.env): ProcessKey: rendering as dotenv: ProcessKey: key #2: ") {
		t.Errorf("termination message %q does not name key #2 of app/cfg", msg)
	}
	if log, _ := json.Marshal(lines); strings.Contains(string(msg), "NODE_OPTIONS") || strings.Contains(string(log), "NODE_OPTIONS") {
		t.Error("the termination message or the log names the key")
	}
	if n := visible(t, dir); len(n) != 0 {
		t.Errorf("files %q written after a failure", n)
	}

	dir = t.TempDir()
	secret.AllowKeys = []string{"NODE_OPTIONS"}
	if err, _ := h.run(t, map[string]string{plan.EnvVar: planJSON(t, &plan.Plan{Version: 1, Dir: dir, Region: "us-east-1", Secrets: []plan.Secret{secret}})}, "--allow-non-tmpfs"); err != nil {
		t.Fatalf("Run with NODE_OPTIONS allowed: %v", err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "app.env"))
	if want := "HOST='db.local'\nNODE_OPTIONS='--require=/x-" + canary + "'\n"; string(got) != want {
		t.Errorf("app.env holds %d bytes, want the %d of both keys", len(got), len(want))
	}
}

func TestRunEnvDirChecked(t *testing.T) {
	h := newHarness(t)
	h.secret(t, "app/db")
	p := planJSON(t, &plan.Plan{Version: 1, Dir: t.TempDir(), EnvDir: filepath.Join(t.TempDir(), "missing"), Region: "us-east-1",
		Secrets: []plan.Secret{{File: "db", ID: "app/db", Env: "DB"}}})
	err, _ := h.run(t, map[string]string{plan.EnvVar: p}, "--allow-non-tmpfs")
	if err == nil || !strings.Contains(err.Error(), "env file's directory") {
		t.Fatalf("Run = %v, want a failure to open the env file's directory", err)
	}
	if got := len(h.fk.Requests()); got != 0 {
		t.Errorf("%d requests before the directory check failed, want 0", got)
	}
}
